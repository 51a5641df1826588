/* Library page (2/9): the statistics cards and the duplicates card. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;
  const L = SO.library;
  const { API, STATUSES, roots, emptyBlock, errorBlock, plural, scriptLink, statusBadge } = L;

  // -- statistics -------------------------------------------------------------------
  const stats = { data: null };
  function setStat(name, value) {
    for (const node of $$(`[data-stat="${name}"]`)) {
      if (value instanceof Node) SO.clear(node).append(value);
      else node.textContent = value;
    }
  }
  async function loadStats() {
    try {
      stats.data = await SO.api("GET", `${API}/stats`);
    } catch (err) {
      for (const name of ["total_scripts", "total_lines", "active", "dup_groups"]) setStat(name, "–");
      setStat("scripts_foot", `Statistics unavailable: ${err.message}`);
      return;
    }
    const s = stats.data;
    setStat("total_scripts", fmt.number(s.total_scripts));
    const foot = [`in ${plural(s.roots, "root")}`];
    if (s.missing) foot.push(`${fmt.number(s.missing)} missing`);
    setStat("scripts_foot", foot.join(" · "));
    setStat("total_lines", fmt.number(s.total_lines));
    const languages = Object.keys(s.by_language || {});
    setStat("bytes_foot", `${fmt.bytes(s.total_bytes)} · ${plural(languages.length, "language")}`);
    const byStatus = s.by_status || {};
    setStat("active", fmt.number(byStatus.active || 0));
    const total = s.total_scripts || 0;
    const bar = h("span.status-meter-track");
    const legend = h("span.status-legend-items");
    for (const status of STATUSES) {
      const n = byStatus[status] || 0;
      if (total && n) {
        const seg = h(`span.status-seg.seg-${status}`, { title: `${status}: ${n}` });
        seg.style.width = `${(n / total) * 100}%`;
        bar.append(seg);
      }
      if (status !== "active") legend.append(h("span", null, h(`span.legend-dot.seg-${status}`), `${status} ${fmt.number(n)}`));
    }
    setStat("status_bar", bar);
    setStat("status_foot", legend);
    const dups = s.duplicates || {};
    const byName = dups.name || { groups: 0, scripts: 0 };
    const byContent = dups.content || { groups: 0, scripts: 0 };
    setStat("dup_groups", fmt.number(byName.groups));
    setStat("dup_unit", Number(byName.groups) === 1 ? "group" : "groups");
    setStat("dup_foot", `${plural(byName.scripts, "script")} · ${plural(byContent.groups, "group")} by content`);
    L.fillLanguageFilter(languages);
  }

  // -- duplicates ---------------------------------------------------------------------------
  let dupKind = "name";
  async function loadDups() {
    const body = $("#dups-body");
    let data;
    try {
      data = await SO.api("GET", `${API}/duplicates?kind=${dupKind}`);
    } catch (err) {
      SO.clear(body).append(errorBlock("Could not look for duplicates", err));
      return;
    }
    const groups = data.groups || [];
    const copies = groups.reduce((n, g) => n + (g.count || 0), 0);
    $("#dups-summary").textContent = groups.length ? `${plural(data.group_count ?? groups.length, "group")} · ${plural(copies, "script")}` : "";
    $("#dups-list").hidden = !groups.length;
    SO.clear(body);
    if (!groups.length) {
      body.append(
        emptyBlock(
          "No duplicates",
          dupKind === "name" ? "No two scripts share a name, a size and a line count." : "No two scripts have the same content.",
        ),
      );
      return;
    }
    const list = h("ul.dup-groups");
    for (const group of groups) {
      const key = group.key || {};
      const title =
        group.kind === "content" || dupKind === "content"
          ? [h("span", null, "Same content "), h("code", { title: key.sha256 }, `${String(key.sha256 || "").slice(0, 12)}…`)]
          : [h("strong", null, key.name), h("span.muted", null, ` · ${fmt.bytes(key.size)} · ${plural(key.line_count, "line")}`)];
      const members = h("ul.dup-members");
      for (const s of group.scripts || []) {
        const root = roots.byId.get(String(s.root_id));
        members.append(
          h(
            "li",
            null,
            h("a.mono", { href: scriptLink(s.id), title: s.path }, s.relpath),
            root ? h("span.muted.small", null, ` in ${root.name}`) : null,
            dupKind === "content" ? h("span.muted.small", null, ` · ${s.name}`) : null,
            statusBadge(s.status),
          ),
        );
      }
      const head = h("div.dup-head", null, ...title, h("span.badge.badge-count", null, `${group.count} copies`));
      list.append(h("li.dup-group", { dataset: { testid: "dup-group" } }, head, members));
    }
    body.append(list);
  }
  for (const button of $$("[data-dup-kind]")) {
    button.addEventListener("click", () => {
      dupKind = button.dataset.dupKind;
      for (const b of $$("[data-dup-kind]")) {
        b.classList.toggle("on", b === button);
        b.setAttribute("aria-pressed", b === button ? "true" : "false");
      }
      loadDups();
    });
  }
  // "List them with the scripts": the scripts table, filtered to the duplicates of this kind.
  $("#dups-list").addEventListener("click", () => L.filterBy({ duplicates: dupKind }, { scroll: true }));

  Object.assign(L, { loadStats, loadDups });
})();
