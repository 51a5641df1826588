/* Library page (6/9): the script browser — the filtered, paged table of indexed scripts
 * (filters, pager and URL through SO.listView). */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt } = SO;
  const L = SO.library;
  const { can, API, roots, tags, isoTime, langBadge, missingBadge, parseErrorBadge, plural, runButton, scriptLink, statusBadge, tagChip } = L;

  const els = {
    body: $("#scripts-body"),
    language: $("#f-language"),
    tag: $("#f-tag"),
    root: $("#f-root"),
    dups: $("#f-dups"),
  };

  const list = (L.list = SO.listView({
    filters: ["search", "language", "status", "tag", "root_id", "check", "ordering", "missing", "duplicates"],
    passive: ["ordering"],
    controls: {
      search: $("#f-search"),
      language: els.language,
      status: $("#f-status"),
      tag: els.tag,
      root_id: els.root,
      check: $("#f-check"),
      ordering: $("#f-ordering"),
      missing: $("#f-missing"),
    },
    form: $("#script-filters"),
    url: () => `${API}/scripts`,
    wrap: $("#scripts-wrap"),
    noun: (n) => plural(n, "script"),
    keepHash: true, // #script=<id> opens the script's sheet
    onPage: (results) => {
      state.empty = !results.length;
      if (state.empty) renderScriptsEmpty();
      else SO.clear(els.body).append(...results.map(scriptRow));
    },
    onError: (err) => renderScriptsEmpty(err.message),
    onFilter: () => L.renderTags(), // the pressed state of the tag chips
    onSync: () => {
      // The duplicates filter has no control of its own: a chip says it is on.
      els.dups.hidden = !state.duplicates;
      $("#f-dups-label").textContent = state.duplicates === "content" ? "same content" : "same name, size, lines";
    },
  }));
  const state = list.state;

  /** Filter the scripts (``{tag: "3"}``), from anywhere on the page; ``scroll`` brings the table into view. */
  function filterBy(changes, { scroll = false } = {}) {
    list.set(changes);
    if (scroll) $("#scripts-card").scrollIntoView({ block: "start", behavior: "smooth" });
  }
  els.dups.addEventListener("click", () => {
    filterBy({ duplicates: "" });
    $("#f-search").focus();
  });

  // -- the filters' options, from the stats, the tags and the roots -------------------------
  function fillSelect(select, options, current) {
    const first = select.options[0];
    SO.clear(select).append(first);
    const values = new Set();
    for (const [value, label] of options) {
      values.add(String(value));
      select.append(h("option", { value: String(value) }, label));
    }
    // A filter from the URL stays selectable even when nothing matches it any more.
    if (current && !values.has(current)) select.append(h("option", { value: current }, current));
    select.value = current || "";
  }
  function fillLanguageFilter(languages) {
    fillSelect(
      els.language,
      [...languages].sort().map((l) => [l, l]),
      state.language,
    );
  }
  function fillTagFilter() {
    fillSelect(
      els.tag,
      tags.list.map((t) => [t.id, t.name]),
      state.tag,
    );
  }
  function fillRootFilter() {
    fillSelect(
      els.root,
      roots.list.map((r) => [r.id, r.name]),
      state.root_id,
    );
  }

  // -- rows ---------------------------------------------------------------------------------
  function scriptRow(script) {
    const tr = h("tr", { dataset: { id: script.id, status: script.status }, class: script.missing ? "is-missing" : undefined });
    const dir = fmt.dirname(script.relpath);
    const sub = [script.root_name, dir].filter(Boolean).join(" / ");
    const tagsCell = h("td.col-tags");
    const chips = h("span.chips");
    for (const tag of (script.tags || []).slice(0, 3)) chips.append(tagChip(tag));
    if ((script.tags || []).length > 3) chips.append(h("span.chip.muted", { title: script.tags.slice(3).map((t) => t.name).join(", ") }, `+${script.tags.length - 3}`));
    tagsCell.append(chips);
    const statusCell = h("td.col-status", null, h("span.badge-group", null, statusBadge(script.status), script.missing ? missingBadge(script.missing_since) : null, script.parse_error ? parseErrorBadge(script.parse_error) : null, L.checkBadge(script.check)));
    const actions = h("span.actions");
    if (can.execute) actions.append(runButton(script, "sm"));
    actions.append(h("a.btn.btn-sm.btn-link", { href: scriptLink(script.id), dataset: { action: "open" }, "aria-label": `Details of ${script.relpath}` }, "Details"));
    tr.append(
      h(
        "td.col-script",
        null,
        h("a.script-name", { href: scriptLink(script.id), title: script.path, dataset: { action: "open-name" } }, script.name),
        h("div.script-sub.muted", null, sub ? h("span.mono", null, sub) : null, script.description ? ` — ${script.description.split("\n")[0]}` : null),
      ),
      h("td.col-lang", null, langBadge(script.language)),
      statusCell,
      tagsCell,
      h("td.col-num", null, fmt.number(script.line_count)),
      h("td.col-num.col-size", null, fmt.bytes(script.size)),
      h("td.col-time", null, SO.relTime(isoTime(script.mtime))),
      h("td.col-actions", null, actions),
    );
    return tr;
  }

  function renderScriptsEmpty(message) {
    const cell = h("td.empty", { colspan: "8" });
    if (message) cell.append(h("div.empty-title", null, "Could not load the scripts"), h("div.muted", null, message));
    else if (list.active()) {
      cell.append(h("div.empty-title", null, "No scripts match these filters"), h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: list.clear }, "Clear filters"));
    } else if (roots.loaded && !roots.list.length) {
      cell.append(
        h("div.empty-title", null, "No scripts yet"),
        h(
          "div.muted",
          null,
          can.admin ? "Register a folder root and scan it: its scripts appear here." : "Scripts appear here once an admin registers a folder root and it is scanned.",
        ),
      );
      if (can.admin) cell.append(h("button.btn.btn-primary.btn-sm", { type: "button", onclick: () => L.openRootForm() }, "Register a root"));
    } else {
      const how = can.edit ? "Scan a folder root above to index its scripts." : "Scripts appear here once a folder root is scanned.";
      cell.append(h("div.empty-title", null, "No scripts indexed yet"), h("div.muted", null, how));
    }
    SO.clear(els.body).append(h("tr.empty-row", null, cell));
  }

  Object.assign(L, {
    filterBy,
    fillLanguageFilter,
    fillTagFilter,
    fillRootFilter,
    renderScriptsEmpty,
    loadScripts: () => list.load(),
  });
})();
