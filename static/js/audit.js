/* Audit page: the audit log (admins only), filtered and paged, with a CSV export link. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt } = SO;
  const COLUMNS = 7;
  const FILTERS = ["actor", "action", "object_type", "object_id", "since", "until"];
  const els = { body: $("#audit-body"), wrap: $("#audit-wrap"), csv: $("#audit-csv"), error: $("#audit-error") };

  function emptyRow(title, detail) {
    return h("tr.empty-row", null, h("td.empty", { colspan: String(COLUMNS) }, h("div.empty-title", null, title), detail ? h("div.muted", null, detail) : null));
  }

  function row(event) {
    const object = event.object_type ? `${event.object_type}${event.object_id ? ` ${event.object_id}` : ""}` : "–";
    return h(
      "tr",
      { "data-testid": "audit-row", "data-action": event.action },
      h("td.nowrap", { title: event.at }, fmt.dateTime(event.at)),
      // No actor: a signed-out client (a failed sign-in) when there is an address, else the system.
      h("td", null, event.actor || h("span.muted", null, event.ip ? "anonymous" : "system")),
      h("td.mono", null, event.action),
      h("td.mono", null, object),
      h("td", null, event.summary || "–"),
      h("td.mono", null, event.ip || "–"),
      h("td.small.muted", { title: event.user_agent || "" }, event.user_agent ? event.user_agent.slice(0, 60) : "–"),
    );
  }

  function csvLink() {
    const q = new URLSearchParams();
    for (const name of FILTERS) if (list.state[name]) q.set(name, list.state[name]);
    const qs = q.toString();
    els.csv.href = `/api/audit/export${qs ? `?${qs}` : ""}`;
  }

  const list = SO.listView({
    filters: FILTERS,
    controls: {
      actor: $("#f-actor"),
      action: $("#f-action"),
      object_type: $("#f-object-type"),
      object_id: $("#f-object-id"),
      since: $("#f-since"),
      until: $("#f-until"),
    },
    form: $("#audit-filters"),
    url: () => "/api/audit",
    wrap: els.wrap,
    noun: (n) => `${fmt.number(n)} event${n === 1 ? "" : "s"}`,
    onPage: (results) => {
      els.error.hidden = true;
      SO.clear(els.body);
      if (!results.length) {
        els.body.append(
          list.active()
            ? emptyRow("No events match these filters", "Clear a filter to see more.")
            : emptyRow("No events yet", "Sign-ins, key, user, run, library and scheduler changes appear here."),
        );
        return;
      }
      els.body.append(...results.map(row));
    },
    onError: (err) => {
      els.error.textContent = err.message;
      els.error.hidden = false;
      SO.clear(els.body).append(emptyRow("Could not load the audit log", err.message));
    },
    onSync: csvLink,
  });
  csvLink();
  list.load();
})();
