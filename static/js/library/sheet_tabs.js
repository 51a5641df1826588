/* Library page (8/9): the script sheet's Content (server-side highlighted), History
 * (the audit of its curation) and Runs tabs. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;
  const L = SO.library;
  const { can, API, sheet, panels, emptyBlock, errorBlock, listOf, plural, runButton, thead } = L;

  const CODE_TAGS = new Set(["DIV", "PRE", "SPAN", "TABLE", "TBODY", "TR", "TD", "TH", "THEAD", "A", "CODE"]);
  /** Pygments HTML → a fragment holding only its own kinds of nodes (no scripts, no handlers). */
  function cleanCode(html) {
    const template = document.createElement("template");
    template.innerHTML = html; // inert: nothing in a template runs or loads
    const walker = document.createTreeWalker(template.content, NodeFilter.SHOW_ELEMENT);
    const drop = [];
    while (walker.nextNode()) {
      const node = walker.currentNode;
      if (!CODE_TAGS.has(node.tagName)) {
        drop.push(node);
        continue;
      }
      for (const attr of Array.from(node.attributes)) {
        const keep = attr.name === "class" || attr.name === "id" || attr.name === "name" || (attr.name === "href" && /^#L-\d+$/.test(attr.value));
        if (!keep) node.removeAttribute(attr.name);
      }
    }
    for (const node of drop) node.replaceWith(document.createTextNode(node.textContent));
    return template.content;
  }

  /**
   * The Pygments stylesheet, once, with every rule scoped under .highlight. Adopted as a
   * constructed stylesheet: the Content-Security-Policy (style-src 'self') blocks a
   * <style> element, not the CSSOM.
   */
  let codeCssAdopted = false;
  function injectCodeCss(css) {
    if (!css || codeCssAdopted) return;
    const scoped = css
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/([^{}]+)\{/g, (match, selectors) => {
        const list = selectors
          .split(",")
          .map((sel) => sel.trim())
          .filter(Boolean)
          .map((sel) => (sel.startsWith(".highlight") ? sel : `.highlight ${sel}`));
        return `${list.join(", ")} {`;
      });
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(scoped);
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    codeCssAdopted = true;
  }

  async function loadContent() {
    const s = sheet.script;
    const panel = SO.clear(panels.content);
    panel.append(h("p.loading-row", null, h("span.spinner"), " Highlighting…"));
    const res = await SO.request("GET", `${API}/scripts/${s.id}/content?format=html`);
    if (!sheet.script || sheet.script.id !== s.id) return;
    SO.clear(panel);
    if (!res.ok) {
      const message = res.data && res.data.message ? res.data.message : `The server answered ${res.status}.`;
      const title = { 413: "Too large to preview", 415: "Not a text file", 410: "Gone from disk", 409: "Not served" }[res.status] || "Could not load the content";
      const attrs = { role: "alert", dataset: { testid: "content-error", status: res.status } };
      panel.append(h("div.alert.alert-error.content-error", attrs, h("strong", null, `${title}. `), message));
      return;
    }
    const data = res.data;
    injectCodeCss(data.css);
    const viewer = h("div.code-view", { dataset: { testid: "content-viewer" }, tabindex: "0", "aria-label": `Content of ${s.relpath}` });
    viewer.append(cleanCode(data.html || ""));
    // Line-number links would change the page's hash (which drives this sheet): scroll instead.
    viewer.addEventListener("click", (event) => {
      const link = event.target.closest("a[href^='#L-']");
      if (!link) return;
      event.preventDefault();
      const target = viewer.querySelector(`[id="${CSS.escape(link.getAttribute("href").slice(1))}"]`);
      if (target) {
        target.scrollIntoView({ block: "center" });
        for (const old of $$(".line-hit", viewer)) old.classList.remove("line-hit");
        link.classList.add("line-hit");
      }
    });
    panel.append(
      h(
        "div.code-toolbar",
        null,
        h("span.badge.badge-lang", null, data.lexer || data.language || "text"),
        h("span.muted.small", null, `${plural(s.line_count, "line")} · ${fmt.bytes(s.size)}`),
        h("span.code-path.mono.small", { title: data.path || s.path }, data.path || s.path),
      ),
      viewer,
    );
  }

  // -- history and runs ------------------------------------------------------------------------
  const ACTION_LABELS = { update: "Updated", tag_attached: "Tag attached", tag_detached: "Tag removed", create: "Created" };

  function changeChips(entry) {
    const chips = h("span.chips");
    const changes = entry.changes || {};
    for (const [field, value] of Object.entries(changes)) {
      if (Array.isArray(value) && value.length === 2) {
        const [before, after] = value.map((v) => (v === null || v === "" ? "∅" : String(v)));
        chips.append(h("span.chip.chip-kv", null, h("span.chip-k", null, field), h("span.chip-v", null, `${before} → ${after}`)));
      } else {
        chips.append(h("span.chip.chip-kv", null, h("span.chip-k", null, field), h("span.chip-v", null, typeof value === "object" ? JSON.stringify(value) : String(value))));
      }
    }
    return chips;
  }

  async function loadHistory() {
    const s = sheet.script;
    const panel = SO.clear(panels.history);
    panel.append(h("p.loading-row", null, h("span.spinner"), " Loading the history…"));
    let entries;
    try {
      entries = listOf(await SO.api("GET", `${API}/scripts/${s.id}/history?page_size=100`));
    } catch (err) {
      SO.clear(panel).append(errorBlock("Could not load the history", err));
      return;
    }
    if (!sheet.script || sheet.script.id !== s.id) return;
    SO.clear(panel);
    if (!entries.length) {
      panel.append(emptyBlock("No changes yet", "Changes to the status, owner, environment, notes, limits and tags are recorded here."));
      return;
    }
    const list = h("ol.timeline.history", { dataset: { testid: "history" } });
    for (const entry of entries) {
      const tone = entry.action === "tag_detached" ? "tone-warn" : entry.action === "tag_attached" ? "tone-good" : "tone-info";
      list.append(
        h(
          `li.tl-event.${tone}`,
          { dataset: { action: entry.action } },
          h("span.tl-dot", { "aria-hidden": "true" }),
          h(
            "div.tl-body",
            null,
            h("div.tl-line", null, h("strong", null, ACTION_LABELS[entry.action] || entry.action), SO.relTime(entry.at)),
            h("div.muted.small", null, `by ${entry.user || "the system"}`),
            changeChips(entry),
          ),
        ),
      );
    }
    panel.append(list);
  }

  async function loadRuns() {
    const s = sheet.script;
    const panel = SO.clear(panels.runs);
    panel.append(h("p.loading-row", null, h("span.spinner"), " Loading runs…"));
    let data;
    try {
      data = await SO.api("GET", `${API}/scripts/${s.id}/runs?page_size=20`);
    } catch (err) {
      SO.clear(panel).append(errorBlock("Could not load the runs", err));
      return;
    }
    if (!sheet.script || sheet.script.id !== s.id) return;
    const runs = listOf(data);
    SO.clear(panel);
    if (!runs.length) {
      panel.append(emptyBlock("No runs yet", "Runs launched from the library with ▶ Run are listed here.", can.execute && !s.missing ? runButton(s, "sm") : null));
      return;
    }
    const body = h("tbody");
    for (const run of runs) {
      body.append(
        h(
          "tr",
          { dataset: { id: run.id } },
          h("td", null, h("a.mono.cid", { href: `/runs/${run.id}/` }, fmt.shortId(run.correlation_id || run.id))),
          h("td.col-status", null, SO.runBadges(run)),
          h("td.col-time", null, SO.relTime(run.started_at || run.created_at)),
          h("td.col-num", null, fmt.duration(run.duration)),
          h("td.col-num", null, run.exit_code === null || run.exit_code === undefined ? "–" : String(run.exit_code)),
          h("td", null, run.created_by || h("span.muted", null, run.source || "–")),
        ),
      );
    }
    const total = Array.isArray(data) ? runs.length : data.count;
    panel.append(
      h(
        "div.table-wrap",
        null,
        h("table.table.table-compact", { dataset: { testid: "script-runs" } }, thead("Run", "Status", "Started", "#Duration", "#Exit", "By"), body),
      ),
    );
    if (total > runs.length) panel.append(h("p.muted.small.more-note", null, `The ${runs.length} most recent of ${fmt.number(total)} runs.`));
  }

  Object.assign(L, { loadContent, loadHistory, loadRuns });
})();
