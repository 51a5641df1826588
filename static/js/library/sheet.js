/* Library page (7/9): the script sheet — a modal side panel opened by #script=<id>: its
 * head, the tabs, the overview (details, parameters, the curation form) and its tags.
 * The other tabs (content, history, runs) are in sheet_tabs.js. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;
  const L = SO.library;
  const { can, API, STATUSES, tags, sheet, panels, errorBlock, isoTime, langBadge, missingBadge, plural, runButton, statusBadge, tagChip, thead } = L;

  function routeHash() {
    const match = /^#script=([\w-]+)$/.exec(location.hash);
    if (match) openScript(match[1]);
    else if (sheet.el.open) sheet.el.close();
  }
  window.addEventListener("hashchange", routeHash);

  async function openScript(id, { refresh = false } = {}) {
    const sameScript = String(sheet.id) === String(id);
    if (!sheet.el.open) {
      sheet.opener = document.activeElement;
      sheet.el.showModal();
    }
    if (!sameScript || !refresh) {
      sheet.id = String(id);
      sheet.script = null;
      sheet.loaded = {};
      selectTab("overview", { focus: false });
      $("#sheet-title").textContent = "Loading…";
      SO.clear($("#sheet-path"));
      SO.clear($("#sheet-badges"));
      SO.clear($("#sheet-run-slot"));
      $("#runs-count").textContent = "";
      $("#sheet-status").textContent = "";
      for (const panel of Object.values(panels)) SO.clear(panel);
      panels.overview.append(h("p.loading-row", null, h("span.spinner"), " Loading the script…"));
    }
    const seq = ++sheet.seq;
    let script;
    try {
      script = await SO.api("GET", `${API}/scripts/${encodeURIComponent(id)}`);
    } catch (err) {
      if (seq !== sheet.seq) return;
      $("#sheet-title").textContent = err.status === 404 ? "Script not found" : "Could not load the script";
      SO.clear(panels.overview).append(errorBlock(err.status === 404 ? "Not in the library" : "Error", err));
      return;
    }
    if (seq !== sheet.seq) return; // another script was opened meanwhile
    sheet.script = script;
    renderSheetHead();
    // A refresh (a scan ended, say) never throws away edits being typed in the form.
    const form = $("form.meta-form", panels.overview);
    if (!refresh || !form || form.dataset.dirty !== "1") renderOverview();
    if (refresh) sheet.loaded = { overview: true }; // the other panels reload when shown
    if (sheet.tab !== "overview" && !sheet.loaded[sheet.tab]) loadTab(sheet.tab);
    if (!refresh) $("#sheet-title").focus();
  }

  sheet.el.addEventListener("close", () => {
    sheet.seq += 1;
    const id = sheet.id;
    sheet.id = null;
    sheet.script = null;
    if (/^#script=/.test(location.hash)) history.replaceState(null, "", location.pathname + location.search);
    const back =
      (sheet.opener && sheet.opener.isConnected && sheet.opener !== document.body && sheet.opener) ||
      $(`#scripts-body tr[data-id="${CSS.escape(String(id))}"] .script-name`);
    if (back) back.focus();
  });
  // A click on the backdrop (the dialog box itself, outside .sheet-inner) closes it.
  sheet.el.addEventListener("click", (event) => {
    if (event.target === sheet.el) sheet.el.close();
  });
  $("#sheet-close").addEventListener("click", () => sheet.el.close());

  function renderSheetHead() {
    const s = sheet.script;
    $("#sheet-title").textContent = s.name;
    $("#sheet-title").title = s.path;
    SO.clear($("#sheet-path")).append(`${s.root_name || ""}${s.root_name ? " / " : ""}${s.relpath}`);
    // (append() would write a null as the text "null": skip the absent badges.)
    const badges = [langBadge(s.language), statusBadge(s.status)];
    if (s.missing || s.missing_since) badges.push(missingBadge(s.missing_since));
    if (s.is_binary) badges.push(h("span.badge.badge-lang", null, "binary"));
    SO.clear($("#sheet-badges")).append(...badges);
    const slot = SO.clear($("#sheet-run-slot"));
    if (can.execute) slot.append(runButton(s, "md"));
    $("#runs-count").textContent = s.run_count ? fmt.number(s.run_count) : "";
  }

  // Tabs: arrow keys move between them (the WAI-ARIA tabs pattern).
  const tabs = $$("#sheet-tabs [role=tab]");
  function selectTab(name, { focus = true } = {}) {
    sheet.tab = name;
    for (const tab of tabs) {
      const on = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      tab.classList.toggle("on", on);
      if (on && focus) tab.focus();
    }
    for (const [key, panel] of Object.entries(panels)) panel.hidden = key !== name;
    if (sheet.script && !sheet.loaded[name]) loadTab(name);
  }
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab.dataset.tab));
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      let next = null;
      if (event.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
      else if (event.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next.dataset.tab);
      }
    });
  }
  function loadTab(name) {
    sheet.loaded[name] = true;
    if (name === "content") L.loadContent();
    else if (name === "history") L.loadHistory();
    else if (name === "runs") L.loadRuns();
  }

  function metaItem(label, value, wide) {
    const empty = value === null || value === undefined || value === "";
    return h(`div.meta-item${wide ? ".meta-wide" : ""}`, null, h("dt", null, label), h("dd", null, empty ? h("span.muted", null, "–") : value));
  }

  function renderOverview() {
    const s = sheet.script;
    sheet.loaded.overview = true;
    const panel = SO.clear(panels.overview);
    if (s.missing || s.missing_since) {
      const since = s.missing_since ? ` since ${fmt.dateTime(s.missing_since)}` : "";
      panel.append(
        h("div.alert.alert-warn", { role: "note" }, `The file is missing from disk${since}. Restore it and rescan, or it leaves the library after the grace period.`),
      );
    }
    if (s.parse_error) panel.append(h("div.alert.alert-error", { dataset: { alert: "parse-error" } }, `It does not parse: ${s.parse_error}`));
    if (s.read_error) panel.append(h("div.alert.alert-error", null, `The last scan could not read it: ${s.read_error}`));
    if (s.status === "archived") panel.append(h("div.alert.alert-warn", { role: "note" }, "Archived: it cannot run unless an admin forces it."));

    const left = h("div.overview-main");
    left.append(
      s.description
        ? h("p.script-desc", null, s.description)
        : h("p.script-desc.muted", null, "No description. A docstring or a leading comment block becomes one at the next scan."),
    );
    const lastRun = s.last_run
      ? h("span", null, h("a", { href: `/runs/${s.last_run.id}/` }, fmt.shortId(s.last_run.id)), " ", s.last_run.status ? SO.runBadges(s.last_run) : null)
      : null;
    const sha = s.sha256 ? h("code", { title: s.sha256 }, `${s.sha256.slice(0, 16)}…`) : null;
    const path = h("span.copyable", null, h("span.mono", null, s.path), copyButton(s.path));
    left.append(
      h("h3.section-title", null, "Details"),
      h(
        "dl.meta-grid.sheet-meta",
        null,
        metaItem("Path", path, true),
        metaItem("Folder root", s.root_name),
        metaItem("Size", `${fmt.bytes(s.size)} · ${plural(s.line_count, "line")}`),
        metaItem("Modified", SO.relTime(isoTime(s.mtime))),
        metaItem("Shebang", s.shebang ? h("code", null, s.shebang) : null),
        metaItem("SHA-256", sha),
        metaItem("First seen", SO.relTime(s.first_seen)),
        metaItem("Last scanned", SO.relTime(s.last_scanned_at)),
        metaItem("Runs", s.run_count !== undefined ? fmt.number(s.run_count) : null),
        metaItem("Last run", lastRun),
      ),
      h("h3.section-title", null, "Pre-run checks"),
      h("div.sheet-checks", { id: "sheet-checks", dataset: { testid: "sheet-checks" } }),
      h("h3.section-title", null, "Recent runs"),
      h("div.sheet-trend", { id: "sheet-trend", dataset: { testid: "script-trend" } }),
      h("h3.section-title", null, "Parameters", s.parameters && s.parameters.length ? h("span.muted.small", null, ` ${s.parameters.length} from argparse`) : null),
      parametersTable(s),
      h("h3.section-title", null, "Presets"),
      h("div.sheet-presets", { id: "sheet-presets", dataset: { testid: "sheet-presets" } }, h("span.muted.small", null, "Loading…")),
    );

    const right = h("div.overview-side");
    right.append(h("h3.section-title", null, "Curation"), can.edit ? metaForm(s) : metaReadonly(s));
    right.append(h("h3.section-title", null, "Tags"), h("div.sheet-tags", { id: "sheet-tags", dataset: { testid: "sheet-tags" } }));
    panel.append(h("div.overview-grid", null, left, right));
    renderSheetTags();
    const opened = sheet.id;
    L.renderTrend($("#sheet-trend", panel), s, () => sheet.id !== opened || !sheet.el.open);
    L.renderChecks($("#sheet-checks", panel), s, () => sheet.id === opened && sheet.el.open);
    renderPresets($("#sheet-presets", panel), s);
  }

  /** The script's presets (yours and the shared ones), each launching the form filled
   *  with it; they are made and changed in the launch form. */
  async function renderPresets(box, s) {
    let presets = [];
    try {
      presets = (await SO.api("GET", `/api/library/scripts/${encodeURIComponent(s.id)}/presets`)).results || [];
    } catch (err) {
      SO.clear(box).append(h("span.muted.small", null, `Could not load the presets: ${err.message}`));
      return;
    }
    const launch = `/?script_id=${encodeURIComponent(s.id)}`;
    if (!presets.length) {
      SO.clear(box).append(
        h("p.muted.small", null, "No presets yet. ", SO.can.execute ? h("a", { href: launch }, "Open the launch form") : null, SO.can.execute ? " and save one with “Save as preset…”." : null),
      );
      return;
    }
    const list = h("ul.preset-list");
    for (const p of presets) {
      const args = (p.options.args || []).join(" ");
      list.append(
        h(
          "li",
          { dataset: { preset: String(p.id) } },
          h("strong", null, p.name),
          h("span.muted.small", null, p.shared ? " · shared" : " · yours"),
          args ? h("code.preset-args", null, args) : null,
          SO.can.execute ? h("a.btn.btn-ghost.btn-sm", { href: `${launch}&preset=${p.id}`, dataset: { testid: "preset-launch" } }, "Launch with it…") : null,
        ),
      );
    }
    SO.clear(box).append(list);
  }

  /** A message inside the sheet (toasts would sit under the modal's backdrop). */
  function sheetNote(text, kind = "info") {
    const box = $("#sheet-status");
    box.className = `sheet-status alert alert-${kind === "error" ? "error" : "info"}`;
    box.textContent = text;
    clearTimeout(sheetNote.timer);
    if (kind !== "error") sheetNote.timer = setTimeout(() => (box.textContent = ""), 5000);
  }

  function copyButton(text) {
    const button = h("button.copy-btn", { type: "button", "aria-label": "Copy the path", title: "Copy" }, SO.icon("copy"));
    button.addEventListener("click", async () => {
      if (await SO.copy(text)) {
        button.classList.add("copied");
        sheetNote("Path copied.");
      }
    });
    return button;
  }

  function parametersTable(s) {
    const list = s.parameters || [];
    if (!list.length) {
      const why = s.language === "python" ? "No argparse parameters found" : "Parameters are read from Python argparse definitions";
      return h("p.muted.small", null, `${why}: arguments are passed as typed.`);
    }
    const body = h("tbody");
    for (const p of list) {
      const kind = p.positional ? "positional" : p.type === "flag" || p.type === "count" ? p.type : p.choices ? "choice" : p.type || "text";
      body.append(
        h(
          "tr",
          null,
          h("td", null, h("code", null, (p.flags || [p.name]).join(", ")), p.required ? h("span.badge.badge-req", null, "required") : null),
          h("td", null, kind, p.nargs !== null && p.nargs !== undefined ? h("span.muted", null, ` ×${p.nargs}`) : null),
          h("td", null, p.default === null || p.default === undefined ? h("span.muted", null, "–") : h("code", null, String(p.default))),
          h("td", null, p.choices ? h("span.chips", null, p.choices.map((c) => h("span.chip.mono", null, String(c)))) : null, p.help || null),
        ),
      );
    }
    return h("div.table-wrap", null, h("table.table.table-compact.params-table", null, thead("Argument", "Kind", "Default", "Help"), body));
  }


  function metaReadonly(s) {
    return h(
      "dl.meta-grid.sheet-meta.curation-readonly",
      null,
      metaItem("Status", statusBadge(s.status)),
      metaItem("Owner", s.owner),
      metaItem("Environment", s.environment),
      metaItem("Max concurrent runs", s.max_concurrent ? String(s.max_concurrent) : "unlimited"),
      metaItem("Notes", s.notes ? h("span.notes-text", null, s.notes) : null, true),
    );
  }

  function metaForm(s) {
    const field = (label, input, name, hint) =>
      h("label.field", null, h("span.field-label", null, label), input, hint ? h("span.field-hint", null, hint) : null, h("span.field-error", { dataset: { errorFor: name } }));
    const status = h("select", { name: "status", dataset: { testid: "meta-status" } }, ...STATUSES.map((v) => h("option", { value: v }, v)));
    status.value = s.status;
    const saved = h("span.save-state.muted.small", { role: "status", "aria-live": "polite" });
    const form = h(
      "form.meta-form",
      { novalidate: true, autocomplete: "off", "aria-label": "Curation", dataset: { testid: "meta-form" } },
      h("div.alert.alert-error", { dataset: { errorFor: "non_field_errors" }, hidden: true }),
      h(
        "div.meta-form-grid",
        null,
        field("Status", status, "status"),
        field(
          "Max concurrent runs",
          h("input", { type: "number", name: "max_concurrent", min: "1", step: "1", placeholder: "unlimited", value: s.max_concurrent ?? "" }),
          "max_concurrent",
        ),
        field(
          "Owner",
          h("input", { type: "text", name: "owner", maxlength: "150", value: s.owner || "", placeholder: "who looks after it", dataset: { testid: "meta-owner" } }),
          "owner",
        ),
        field("Environment", h("input", { type: "text", name: "environment", maxlength: "64", value: s.environment || "", placeholder: "e.g. production" }), "environment"),
      ),
      field("Notes", h("textarea", { name: "notes", rows: "3", placeholder: "How to use it, caveats, links…" }, s.notes || ""), "notes"),
      h("div.meta-form-foot", null, saved, h("button.btn.btn-primary", { type: "submit", dataset: { testid: "meta-save" } }, "Save changes")),
    );
    form.addEventListener("input", () => {
      form.dataset.dirty = "1";
      saved.textContent = "";
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      SO.clearFieldErrors(form);
      const f = form.elements;
      const current = sheet.script;
      const values = {
        status: f.status.value,
        owner: f.owner.value.trim(),
        environment: f.environment.value.trim(),
        notes: f.notes.value,
        max_concurrent: f.max_concurrent.value === "" ? null : Number(f.max_concurrent.value),
      };
      const changes = {};
      for (const [key, value] of Object.entries(values)) {
        const before = current[key] === undefined ? null : current[key];
        if ((before ?? "") !== (value ?? "")) changes[key] = value;
      }
      if (!Object.keys(changes).length) {
        saved.textContent = "Nothing to save.";
        return;
      }
      const submit = $("[type=submit]", form);
      submit.disabled = true;
      submit.classList.add("busy");
      saved.textContent = "";
      try {
        const updated = await SO.api("PATCH", `${API}/scripts/${current.id}`, changes);
        sheet.script = { ...current, ...(updated && typeof updated === "object" ? updated : changes) };
        form.dataset.dirty = "";
        renderSheetHead();
        saved.textContent = `Saved ${SO.fmt.time(new Date())}.`;
        sheet.loaded.history = false;
        L.loadScripts();
        L.loadStats();
      } catch (err) {
        SO.showFieldErrors(form, err);
      } finally {
        submit.disabled = false;
        submit.classList.remove("busy");
      }
    });
    return form;
  }

  function renderSheetTags() {
    const box = $("#sheet-tags");
    if (!box || !sheet.script) return;
    const s = sheet.script;
    const attached = s.tags || [];
    SO.clear(box);
    const chips = h("div.chips.sheet-tag-chips");
    for (const tag of attached) {
      const fresh = tags.byId.get(String(tag.id)) || tag;
      chips.append(tagChip(fresh, { onRemove: can.edit ? () => toggleTag(fresh, false) : undefined }));
    }
    if (!attached.length) chips.append(h("span.muted.small", null, "No tags."));
    box.append(chips);
    if (!can.edit) return;
    const ids = new Set(attached.map((t) => String(t.id)));
    const free = tags.list.filter((t) => !ids.has(String(t.id)));
    if (!free.length) {
      box.append(h("p.muted.small", null, tags.list.length ? "Every tag is attached." : "Create tags in the Tags card to attach them here."));
      return;
    }
    const select = h("select.select-sm", { id: "sheet-tag-select", dataset: { testid: "tag-select" } }, ...free.map((t) => h("option", { value: String(t.id) }, t.name)));
    const add = h("button.btn.btn-sm.btn-secondary", { type: "button", dataset: { testid: "tag-attach" } }, "Attach");
    add.addEventListener("click", () => {
      const tag = tags.byId.get(select.value);
      if (tag) toggleTag(tag, true);
    });
    box.append(h("div.tag-attach", null, h("label.sr-only", { for: "sheet-tag-select" }, "Tag to attach"), select, add));
  }

  async function toggleTag(tag, attach) {
    const s = sheet.script;
    try {
      const res = await SO.api(attach ? "POST" : "DELETE", `${API}/scripts/${s.id}/tags/${tag.id}`);
      s.tags = res && res.tags ? res.tags : attach ? [...(s.tags || []), tag] : (s.tags || []).filter((t) => t.id !== tag.id);
      renderSheetTags();
      const focusTarget = attach ? $("#sheet-tag-select") || $("#sheet-tags .tag-remove") : $("#sheet-tags .tag-remove") || $("#sheet-tag-select");
      if (focusTarget) focusTarget.focus();
      sheetNote(attach ? `Tag ${tag.name} attached.` : `Tag ${tag.name} removed.`);
      sheet.loaded.history = false;
      L.loadScripts();
      L.loadTags();
    } catch (err) {
      sheetNote(`Could not ${attach ? "attach" : "remove"} the tag ${tag.name}: ${err.message}`, "error");
    }
  }

  Object.assign(L, { routeHash, openScript, renderSheetTags });
})();
