/* Library page: folder roots and their live scans, tags, the script browser, the script
 * detail sheet (metadata editor, syntax-highlighted content, history, runs), duplicates
 * and statistics. Everything comes from /api/library/ and /api/browse; scan progress
 * arrives on the runs feed (/ws/runs/, ``scan_progress``) or, while it is down, by polling.
 *
 * Text from the server is only ever inserted with textContent / text nodes. The one
 * exception is the Pygments markup of the content viewer: it is parsed into an inert
 * <template> and only the elements and attributes Pygments emits are kept (see cleanCode).
 */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;

  const pageRoot = $("#library");
  const can = {
    execute: SO.can.execute,
    edit: pageRoot.dataset.canEdit === "1", // scripts' metadata, tags, scans (user and up)
    admin: pageRoot.dataset.isAdmin === "1", // folder roots (admin)
  };
  const ALLOWED_ROOTS = JSON.parse($("#allowed-roots").textContent || "[]");
  const API = "/api/library";
  const STATUSES = ["active", "draft", "deprecated", "archived"];
  const TAG_PALETTE = ["#4355e8", "#12805c", "#c5283d", "#a15c00", "#6d3fc6", "#1f6fd1", "#0f766e", "#be185d", "#4b5563"];

  // -- small helpers ----------------------------------------------------------------
  const listOf = (data) => (Array.isArray(data) ? data : (data && data.results) || []);
  const plural = (n, word, many) => `${fmt.number(n)} ${Number(n) === 1 ? word : many || `${word}s`}`;
  const safeColor = (value) => (/^#[0-9a-fA-F]{6}$/.test(value || "") ? value : "#6b7280");
  // The API sends times as ISO 8601; a bare number is seconds since the epoch.
  const isoTime = (value) => (typeof value === "number" ? new Date(value * 1000).toISOString() : value || null);
  const scriptLink = (id) => `#script=${encodeURIComponent(id)}`;
  const runHref = (id) => `/?script_id=${encodeURIComponent(id)}`;

  function tagChip(tag, { onClick, onRemove, pressed } = {}) {
    const chip = h(
      "span.tag-chip",
      { dataset: { tagId: tag.id, tag: tag.name }, title: tag.description || undefined },
      h("span.tag-dot", { "aria-hidden": "true" }),
      h("span.tag-name", null, tag.name),
    );
    if (onClick) {
      const button = h(
        "button.tag-chip.tag-chip-button",
        {
          type: "button",
          dataset: { tagId: tag.id, tag: tag.name },
          title: tag.description || `Show scripts tagged ${tag.name}`,
          "aria-pressed": pressed ? "true" : "false",
          onclick: onClick,
        },
        ...chip.childNodes,
      );
      button.style.setProperty("--tag", safeColor(tag.color));
      return button;
    }
    chip.style.setProperty("--tag", safeColor(tag.color));
    if (onRemove) {
      chip.append(
        h("button.tag-remove", { type: "button", "aria-label": `Remove the tag ${tag.name}`, title: "Remove", onclick: onRemove }, "×"),
      );
    }
    return chip;
  }

  const statusBadge = (status) =>
    h(`span.badge.badge-lib-${STATUSES.includes(status) ? status : "other"}`, { dataset: { badge: "lib-status", value: status } }, status);
  const langBadge = (language) => h("span.badge.badge-lang", { dataset: { badge: "language", value: language } }, language || "other");
  const missingBadge = (since) =>
    h("span.badge.badge-missing", { dataset: { badge: "missing" }, title: since ? `Missing since ${fmt.dateTime(since)}` : undefined }, "missing");

  function emptyBlock(title, text, ...extra) {
    return h("div.lib-empty", null, h("div.empty-title", null, title), text ? h("div.muted", null, text) : null, ...extra);
  }

  function errorBlock(title, err) {
    return h("div.alert.alert-error.lib-error", { role: "alert" }, h("strong", null, `${title}: `), err.message);
  }

  // -- confirmation dialog ----------------------------------------------------------
  /** A modal yes/no question; resolves to true when confirmed. Focus returns to the opener. */
  function confirmDialog({ title, text, ok = "Delete" }) {
    const dialog = $("#confirm-dialog");
    const opener = document.activeElement;
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = ok;
    dialog.returnValue = "";
    dialog.showModal();
    $("#confirm-cancel").focus(); // the safe choice is the default one
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          resolve(dialog.returnValue === "ok");
          if (opener && opener.isConnected) opener.focus();
        },
        { once: true },
      );
    });
  }

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
    fillLanguageFilter(languages);
  }

  // -- folder roots and scans ---------------------------------------------------------
  const roots = { list: [], byId: new Map(), loaded: false, loadedAt: 0 };
  const scans = new Map(); // root id -> the newest scan seen (from the list, a POST, the feed or a poll)
  const isActiveScan = (scan) => !!scan && (scan.state === "queued" || scan.state === "running");
  const scanTime = (scan) => Date.parse(scan.started_at || scan.created_at || "") || (isActiveScan(scan) ? Infinity : 0);

  async function loadRoots() {
    const list = $("#roots-list");
    try {
      const data = await SO.api("GET", `${API}/folder-roots?page_size=200`);
      roots.list = listOf(data);
    } catch (err) {
      SO.clear(list).append(h("li.root-item", null, errorBlock("Could not load the folder roots", err)));
      return;
    }
    roots.byId = new Map(roots.list.map((r) => [String(r.id), r]));
    roots.loaded = true;
    roots.loadedAt = Date.now();
    for (const root of roots.list) {
      for (const scan of [root.last_scan, root.active_scan]) {
        if (scan && typeof scan === "object") mergeScan({ ...scan, root_id: root.id });
        else if (scan && root.active_scan === scan) mergeScan({ id: scan, root_id: root.id, state: "queued" });
      }
    }
    renderRoots();
    fillRootFilter();
    // The scripts' empty state depends on whether there are roots at all.
    if (state.empty) renderScriptsEmpty();
    ensurePolling();
  }

  /** Keep the newest scan per root; returns the one it replaced (or undefined). */
  function mergeScan(scan) {
    const key = String(scan.root_id);
    const known = scans.get(key);
    if (known && known.id === scan.id) {
      scans.set(key, { ...known, ...scan });
      return known;
    }
    if (known && scanTime(scan) < scanTime(known)) return null; // an older scan: ignore it
    scans.set(key, scan);
    return known;
  }

  function renderRoots() {
    // A re-render (after a scan, say) must not drop the keyboard focus: remember where it was.
    const focused = document.activeElement;
    const focusItem = focused && focused.closest ? focused.closest("#roots-list [data-root-id]") : null;
    const refocus = focusItem && focused.dataset.action ? [focusItem.dataset.rootId, focused.dataset.action] : null;
    const list = SO.clear($("#roots-list"));
    $("#roots-count").textContent = roots.list.length ? plural(roots.list.length, "root") : "";
    if (!roots.list.length) {
      const where = h("span.allowed-list", null, ...ALLOWED_ROOTS.flatMap((r, i) => [i ? ", " : null, h("code", null, r)]));
      const li = h(
        "li.root-empty",
        { dataset: { testid: "roots-empty" } },
        h("div.empty-title", null, "No folder roots yet"),
        h("div.muted", null, "Register one inside ", where, can.admin ? " — its scripts are indexed when you scan it." : ". Only an admin can register folder roots."),
      );
      if (can.admin) li.append(h("button.btn.btn-primary.btn-sm", { type: "button", onclick: openRootForm }, "Register a root"));
      list.append(li);
      return;
    }
    for (const root of roots.list) list.append(rootItem(root));
    if (refocus) {
      const again = $(`#roots-list [data-root-id="${CSS.escape(refocus[0])}"] [data-action="${CSS.escape(refocus[1])}"]`);
      if (again && !again.disabled) again.focus();
    }
  }

  function rootItem(root) {
    const li = h("li.root-item", { dataset: { rootId: root.id, testid: "root" } });
    const counts = h(
      "span.root-counts",
      null,
      h("span", { dataset: { testid: "root-script-count" } }, plural(root.script_count || 0, "script")),
      root.missing_count ? h("span.badge.badge-missing", { title: "Files a scan no longer found" }, `${fmt.number(root.missing_count)} missing`) : null,
    );
    const actions = h("span.actions.root-actions");
    actions.append(
      h(
        "button.btn.btn-sm.btn-link",
        { type: "button", dataset: { action: "show-scripts" }, onclick: () => filterBy({ root_id: String(root.id) }, { scroll: true }) },
        "Show scripts",
      ),
    );
    if (can.edit) {
      const scanButton = h(
        "button.btn.btn-sm.btn-secondary",
        { type: "button", dataset: { action: "scan" }, "aria-label": `Scan ${root.name}` },
        root.last_scan ? "Rescan" : "Scan",
      );
      scanButton.addEventListener("click", () => startScan(root, scanButton));
      actions.append(scanButton);
    }
    if (can.admin) {
      const del = h(
        "button.btn.btn-sm.btn-danger-ghost",
        { type: "button", dataset: { action: "delete-root" }, "aria-label": `Remove the root ${root.name}` },
        "Remove",
      );
      del.addEventListener("click", () => deleteRoot(root));
      actions.append(del);
    }
    const patterns = [
      root.recursive ? "with subfolders" : "top level only",
      `${plural((root.include_patterns || []).length, "include pattern")}`,
      `${plural((root.exclude_patterns || []).length, "exclude pattern")}`,
    ].join(" · ");
    li.append(
      h("div.root-head", null, h("div.root-title", null, h("strong.root-name", null, root.name), counts), actions),
      h("div.root-path.mono", { title: root.path }, root.path),
      h("div.root-meta.muted.small", { title: [...(root.include_patterns || []), ...(root.exclude_patterns || []).map((p) => `!${p}`)].join(" ") }, patterns),
      h("div.scan-area", { dataset: { testid: "scan-area" } }),
      h("div.sr-only", { "aria-live": "polite", dataset: { announce: "" } }),
    );
    renderScan(li, root);
    return li;
  }

  function scanPercent(scan) {
    if (typeof scan.progress === "number") return Math.max(0, Math.min(100, Math.round(scan.progress)));
    if (scan.phase === "reading" && scan.files_total) return Math.min(100, Math.round((100 * (scan.files_processed || 0)) / scan.files_total));
    if (scan.phase === "sweeping" || scan.phase === "done") return 100;
    return null; // queued or walking: the total is not known yet
  }

  function phaseLabel(scan) {
    if (scan.state === "queued") return "Queued — waiting for a worker…";
    if (scan.phase === "reading" && scan.files_total !== null && scan.files_total !== undefined) {
      return `Reading ${fmt.number(scan.files_processed || 0)} of ${plural(scan.files_total, "file")}`;
    }
    if (scan.phase === "sweeping") return "Looking for files that went away…";
    return `Walking the folder… ${plural(scan.files_seen || 0, "file")} found`;
  }

  function scanCounters(scan) {
    const chips = h("span.chips.scan-counters");
    const add = (n, label, cls) => {
      if (n === undefined || n === null) return;
      chips.append(h(`span.chip${cls ? `.${cls}` : ""}`, { dataset: { counter: label } }, `${fmt.number(n)} ${label}`));
    };
    add(scan.files_seen, "files");
    add(scan.files_added, "added", scan.files_added ? "chip-good" : "");
    add(scan.files_updated, "updated", scan.files_updated ? "chip-info" : "");
    add(scan.files_unchanged, "unchanged");
    if (scan.files_missing) add(scan.files_missing, "missing", "chip-warn");
    if (scan.files_removed) add(scan.files_removed, "removed", "chip-warn");
    if (scan.files_skipped) add(scan.files_skipped, "skipped");
    return chips;
  }

  function renderScan(li, root) {
    const area = SO.clear($(".scan-area", li));
    const scan = scans.get(String(root.id));
    const button = $("[data-action=scan]", li);
    if (button) {
      button.disabled = isActiveScan(scan);
      button.textContent = isActiveScan(scan) ? "Scanning…" : scan ? "Rescan" : "Scan";
    }
    if (!scan) {
      area.append(h("div.scan-none.muted.small", null, can.edit ? "Never scanned — scan it to index its scripts." : "Never scanned."));
      return;
    }
    if (isActiveScan(scan)) {
      const pct = scanPercent(scan);
      const label = phaseLabel(scan);
      const fill = h("span.progress-fill");
      const bar = h(
        "div.progress",
        {
          role: "progressbar",
          "aria-label": `Scan of ${root.name}`,
          "aria-valuemin": "0",
          "aria-valuemax": "100",
          "aria-valuenow": pct === null ? undefined : String(pct),
          "aria-valuetext": label,
          dataset: { testid: "scan-progress", state: scan.state, phase: scan.phase || "" },
        },
        fill,
      );
      if (pct === null) bar.classList.add("indeterminate");
      else fill.style.width = `${pct}%`;
      area.append(
        h(
          "div.scan-progress",
          null,
          h(
            "div.scan-line",
            null,
            h("span.spinner.spinner-sm", { "aria-hidden": "true" }),
            h("span.scan-label", { dataset: { testid: "scan-label" } }, label),
            h("span.scan-pct.muted.small", null, pct === null ? "" : `${pct}%`),
          ),
          bar,
        ),
      );
      return;
    }
    const ok = scan.state === "completed";
    const head = h(
      "div.scan-line",
      null,
      h(`span.scan-icon.${ok ? "scan-ok" : "scan-bad"}`, { "aria-hidden": "true" }, ok ? "✓" : "!"),
      h("span", null, ok ? "Scanned " : "Scan failed "),
      SO.relTime(scan.finished_at || scan.started_at || scan.created_at),
      scan.duration !== undefined && scan.duration !== null ? h("span.muted", null, ` in ${fmt.duration(scan.duration)}`) : null,
    );
    const summary = h("div.scan-summary", { dataset: { testid: "scan-summary", state: scan.state } }, head);
    if (!ok && scan.message) summary.append(h("div.scan-message", null, scan.message));
    else if (ok && scan.message) summary.append(h("div.muted.small", null, scan.message));
    summary.append(scanCounters(scan));
    if (scan.error_count) summary.append(scanErrors(root, scan));
    area.append(summary);
  }

  /** "3 errors" that lists the paths on demand (the feed sends only the count). */
  function scanErrors(root, scan) {
    const details = h("details.scan-errors", null, h("summary", null, plural(scan.error_count, "error"), " while scanning"));
    const list = h("ul.scan-error-list");
    details.append(list);
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "1";
      list.append(h("li.muted", null, "Loading…"));
      try {
        const full = scan.errors ? scan : await SO.api("GET", `${API}/folder-roots/${root.id}/scan/${scan.id}`);
        SO.clear(list);
        for (const e of full.errors || []) list.append(h("li", null, h("span.mono", null, e.path), " — ", e.error));
        if ((full.errors || []).length < scan.error_count) list.append(h("li.muted", null, `Only the first ${full.errors.length} are kept.`));
      } catch (err) {
        SO.clear(list).append(h("li", null, err.message));
      }
    });
    return details;
  }

  /** A scan report from anywhere: redraw its root and, when it just ended, everything it changed. */
  function onScan(scan) {
    if (!scan || scan.root_id === undefined || scan.root_id === null) return;
    const previous = mergeScan(scan);
    if (previous === null) return;
    const current = scans.get(String(scan.root_id));
    const root = roots.byId.get(String(scan.root_id));
    const li = root && $(`#roots-list [data-root-id="${CSS.escape(String(root.id))}"]`);
    if (li) renderScan(li, root);
    const announce = li && $("[data-announce]", li);
    const wasActive = previous && previous.id === current.id ? isActiveScan(previous) : undefined;
    if (isActiveScan(current) && wasActive !== true && announce) announce.textContent = `Scan of ${root.name} started.`;
    // Ended while watched, or (reported by someone else's scan) after the roots were listed.
    const justEnded =
      roots.loaded &&
      !isActiveScan(current) &&
      (wasActive === true || (wasActive === undefined && Date.parse(current.finished_at || "") > roots.loadedAt));
    if (justEnded) {
      const name = root ? root.name : "a folder root";
      const n = (key) => fmt.number(current[key] || 0);
      const text =
        current.state === "completed"
          ? `Scan of ${name} finished: ${n("files_added")} added, ${n("files_updated")} updated, ${n("files_missing")} missing.`
          : `Scan of ${name} failed: ${current.message || "see the root for details"}.`;
      if (announce) announce.textContent = text;
      SO.toast(text, { kind: current.state === "completed" ? "success" : "error" });
      scheduleRefresh();
    }
    ensurePolling();
  }

  let refreshTimer = null;
  /** After a scan or a root change: counts, lists and stats all moved. */
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      loadRoots();
      loadTags();
      loadStats();
      loadScripts();
      loadDups();
      if (sheet.id) openScript(sheet.id, { refresh: true });
    }, 150);
  }

  async function startScan(root, button) {
    button.disabled = true;
    button.classList.add("busy");
    try {
      const res = await SO.api("POST", `${API}/folder-roots/${root.id}/scan`);
      const scan = { ...(res.scan || { id: res.scan_id, state: "queued" }), root_id: root.id };
      if (res.joined) SO.toast(`${root.name} is already being scanned: showing that scan.`);
      onScan(scan);
    } catch (err) {
      SO.toast(`Could not scan ${root.name}: ${err.message}`, { kind: "error" });
      button.disabled = false;
    } finally {
      button.classList.remove("busy");
    }
  }

  async function deleteRoot(root) {
    const sure = await confirmDialog({
      title: `Remove the folder root “${root.name}”?`,
      text:
        `Its ${plural(root.script_count || 0, "indexed script")} leave the library, with their tags and notes. ` +
        "Nothing on disk is touched, and runs already made stay in the history.",
      ok: "Remove root",
    });
    if (!sure) return;
    try {
      const res = await SO.api("DELETE", `${API}/folder-roots/${root.id}`);
      const removed = res && res.scripts_removed !== undefined ? res.scripts_removed : root.script_count || 0;
      SO.toast(`Removed ${root.name}: ${plural(removed, "script")} left the library.`, { kind: "success" });
      scans.delete(String(root.id));
      if (state.root_id === String(root.id)) state.root_id = "";
      scheduleRefresh();
      $("#roots-title").focus();
    } catch (err) {
      SO.toast(`Could not remove ${root.name}: ${err.message}`, { kind: "error" });
    }
  }

  // -- live feed, with polling while it is down ------------------------------------------
  let feedLive = false;
  let everLive = false;
  let pollTimer = null;

  function ensurePolling() {
    const active = [...scans.values()].filter(isActiveScan);
    if (feedLive || !active.length) {
      clearTimeout(pollTimer);
      pollTimer = null;
      return;
    }
    if (pollTimer) return;
    pollTimer = setTimeout(async () => {
      await Promise.all(
        active.map((scan) =>
          SO.api("GET", `${API}/folder-roots/${scan.root_id}/scan/${scan.id}`)
            .then((fresh) => onScan({ ...fresh, root_id: fresh.root_id ?? scan.root_id }))
            .catch(() => {}),
        ),
      );
      pollTimer = null;
      ensurePolling();
    }, 1000);
  }

  const feed = new SO.LiveSocket(() => "/ws/runs/", {
    onMessage: (msg) => {
      if (msg.type === "scan_progress") onScan(msg.data);
    },
    onState: (s) => {
      SO.setLive(s);
      feedLive = s === "live";
      // The feed reports what changes from now on: after a reconnect, catch up first.
      if (feedLive && everLive) loadRoots();
      if (feedLive) everLive = true;
      ensurePolling();
    },
  });

  // -- registering a root (admin), with the folder picker -----------------------------------
  const rootForm = $("#root-form");
  const rootNew = $("#root-new");

  function openRootForm() {
    if (!rootForm) return;
    rootForm.hidden = false;
    if (rootNew) rootNew.setAttribute("aria-expanded", "true");
    rootForm.elements.name.focus();
    rootForm.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
  function closeRootForm() {
    rootForm.hidden = true;
    SO.clearFieldErrors(rootForm);
    rootNew.setAttribute("aria-expanded", "false");
    rootNew.focus();
  }

  const patternList = (textarea) =>
    textarea.value
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter(Boolean);

  if (rootForm) {
    rootNew.addEventListener("click", () => (rootForm.hidden ? openRootForm() : closeRootForm()));
    $("#root-cancel").addEventListener("click", closeRootForm);
    rootForm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeRootForm();
    });
    rootForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      SO.clearFieldErrors(rootForm);
      const f = rootForm.elements;
      const payload = { name: f.name.value.trim(), path: f.path.value.trim(), recursive: f.recursive.checked };
      const missing = {};
      if (!payload.name) missing.name = ["Give the root a name."];
      if (!payload.path) missing.path = ["Which folder? Type its path or browse."];
      if (Object.keys(missing).length) {
        SO.showFieldErrors(rootForm, { details: missing });
        return;
      }
      // Unchanged pattern lists are left to the server's defaults.
      for (const name of ["include_patterns", "exclude_patterns"]) {
        if (f[name].value !== f[name].defaultValue) payload[name] = patternList(f[name]);
      }
      const submit = $("[type=submit]", rootForm);
      submit.disabled = true;
      submit.classList.add("busy");
      try {
        const root = await SO.api("POST", `${API}/folder-roots`, payload);
        SO.toast(`Registered ${root.name}.`, { kind: "success" });
        const scanNow = f.scan_now.checked;
        rootForm.reset();
        closeRootForm();
        await loadRoots();
        loadStats();
        if (scanNow) {
          const li = $(`#roots-list [data-root-id="${CSS.escape(String(root.id))}"]`);
          const button = li && $("[data-action=scan]", li);
          if (button) {
            await startScan(roots.byId.get(String(root.id)) || root, button);
            button.focus();
          }
        }
      } catch (err) {
        SO.showFieldErrors(rootForm, err);
      } finally {
        submit.disabled = false;
        submit.classList.remove("busy");
      }
    });
  }

  const picker = $("#folder-picker");
  const pickerState = { path: null, parent: null, opener: null };

  /** List a folder in the picker (the allowed roots without a path). ``fallback``: on an
   * error, list the allowed roots instead (the typed path may not exist). */
  async function browse(path, { fallback = false } = {}) {
    const list = SO.clear($("#picker-list"));
    const error = $("#picker-error");
    error.hidden = true;
    list.append(h("li.loading-row", null, h("span.spinner"), " Loading…"));
    let data;
    try {
      data = await SO.api("GET", path ? `/api/browse?path=${encodeURIComponent(path)}` : "/api/browse");
    } catch (err) {
      SO.clear(list);
      if (fallback && path) await browse(null);
      error.textContent = err.message;
      error.hidden = false;
      return;
    }
    pickerState.path = data.path || null;
    pickerState.parent = data.parent || null;
    $("#picker-current").textContent = data.path || "Allowed roots";
    $("#picker-up").disabled = !data.path;
    $("#picker-choose").disabled = !data.path;
    SO.clear(list);
    const items = data.items || [];
    const folders = items.filter((i) => i.type === "folder");
    const files = items.filter((i) => i.type !== "folder");
    for (const folder of folders) {
      list.append(
        h(
          "li",
          null,
          h(
            "button.picker-item",
            { type: "button", dataset: { path: folder.path }, title: folder.path, onclick: () => browse(folder.path) },
            h("span.picker-icon.picker-folder", { "aria-hidden": "true" }),
            h("span.picker-name", null, data.path ? folder.name : folder.path),
            h("span.picker-go", { "aria-hidden": "true" }, "›"),
          ),
        ),
      );
    }
    const shownFiles = files.slice(0, 200);
    for (const file of shownFiles) {
      list.append(
        h(
          "li.picker-file",
          null,
          h("span.picker-icon.picker-doc", { "aria-hidden": "true" }),
          h("span.picker-name", null, file.name),
          h("span.muted.small", null, fmt.bytes(file.size)),
        ),
      );
    }
    if (files.length > shownFiles.length) list.append(h("li.picker-file.muted", null, `…and ${fmt.number(files.length - shownFiles.length)} more files`));
    if (!items.length) list.append(h("li.picker-file.muted", null, "This folder is empty."));
    $("#picker-note").textContent = data.path ? `${plural(folders.length, "folder")}, ${plural(files.length, "file")}` : "";
    const first = $(".picker-item", list);
    (first || ($("#picker-choose").disabled ? $("#picker-up") : $("#picker-choose"))).focus();
  }

  if (picker) {
    $("#root-browse").addEventListener("click", () => {
      pickerState.opener = $("#root-browse");
      pickerState.path = null;
      picker.showModal();
      browse(rootForm.elements.path.value.trim() || null, { fallback: true });
    });
    $("#picker-up").addEventListener("click", () => {
      const atAllowedRoot = ALLOWED_ROOTS.includes(pickerState.path);
      browse(atAllowedRoot || !pickerState.parent ? null : pickerState.parent);
    });
    $("#picker-choose").addEventListener("click", () => {
      if (!pickerState.path) return;
      const f = rootForm.elements;
      f.path.value = pickerState.path;
      if (!f.name.value.trim()) f.name.value = fmt.basename(pickerState.path.replace(/\/+$/, ""));
      picker.close();
    });
    for (const close of $$("[data-close]", picker)) close.addEventListener("click", () => picker.close());
    picker.addEventListener("close", () => {
      if (pickerState.opener) pickerState.opener.focus();
    });
  }

  // -- tags ----------------------------------------------------------------------------
  const tags = { list: [], byId: new Map() };

  async function loadTags() {
    const list = $("#tags-list");
    try {
      tags.list = listOf(await SO.api("GET", `${API}/tags?page_size=500`));
    } catch (err) {
      SO.clear(list).append(h("li", null, errorBlock("Could not load the tags", err)));
      return;
    }
    tags.byId = new Map(tags.list.map((t) => [String(t.id), t]));
    renderTags();
    fillTagFilter();
    if (sheet.script) renderSheetTags();
  }

  function renderTags() {
    const list = SO.clear($("#tags-list"));
    $("#tags-count").textContent = tags.list.length ? plural(tags.list.length, "tag") : "";
    if (!tags.list.length) {
      list.append(
        h(
          "li.tag-empty",
          null,
          emptyBlock(
            "No tags yet",
            can.edit ? "Create one above, then attach it to scripts from their details." : "Tags group scripts by purpose; a user or admin can create them.",
          ),
        ),
      );
      return;
    }
    for (const tag of tags.list) list.append(tagItem(tag));
  }

  function tagItem(tag) {
    const li = h("li.tag-item", { dataset: { tagId: tag.id, testid: "tag" } });
    const active = state.tag === String(tag.id);
    li.append(
      tagChip(tag, { onClick: () => filterBy({ tag: active ? "" : String(tag.id) }, { scroll: !active }), pressed: active }),
      h("span.tag-count.muted.small", null, plural(tag.script_count || 0, "script")),
    );
    if (tag.description) li.append(h("span.tag-desc.muted.small", { title: tag.description }, tag.description));
    if (can.edit) {
      const edit = h("button.btn.btn-sm.btn-link", { type: "button", dataset: { action: "edit-tag" }, "aria-label": `Edit the tag ${tag.name}` }, "Edit");
      const del = h("button.btn.btn-sm.btn-danger-ghost", { type: "button", dataset: { action: "delete-tag" }, "aria-label": `Delete the tag ${tag.name}` }, "Delete");
      edit.addEventListener("click", () => editTag(li, tag));
      del.addEventListener("click", () => deleteTag(tag));
      li.append(h("span.actions.tag-actions", null, edit, del));
    }
    return li;
  }

  function tagFields(tag) {
    return [
      h(
        "label.field.tag-form-name",
        null,
        h("span.field-label", null, "Name"),
        h("input", { type: "text", name: "name", required: true, maxlength: "64", value: tag.name }),
        h("span.field-error", { dataset: { errorFor: "name" } }),
      ),
      h(
        "label.field.tag-form-color",
        null,
        h("span.field-label", null, "Colour"),
        h("input", { type: "color", name: "color", value: safeColor(tag.color) }),
        h("span.field-error", { dataset: { errorFor: "color" } }),
      ),
      h(
        "label.field.tag-form-desc",
        null,
        h("span.field-label", null, "Description"),
        h("input", { type: "text", name: "description", maxlength: "500", value: tag.description || "" }),
        h("span.field-error", { dataset: { errorFor: "description" } }),
      ),
    ];
  }

  function editTag(li, tag) {
    const form = h(
      "form.tag-form.tag-edit",
      { novalidate: true, "aria-label": `Edit the tag ${tag.name}` },
      h("div.alert.alert-error", { dataset: { errorFor: "non_field_errors" }, hidden: true }),
      ...tagFields(tag),
      h(
        "span.actions",
        null,
        h("button.btn.btn-sm.btn-primary", { type: "submit" }, "Save"),
        h("button.btn.btn-sm.btn-ghost", { type: "button", dataset: { action: "cancel" } }, "Cancel"),
      ),
    );
    const cancel = () => {
      const fresh = tagItem(tag);
      form.replaceWith(fresh);
      $("[data-action=edit-tag]", fresh).focus();
    };
    $("[data-action=cancel]", form).addEventListener("click", cancel);
    form.addEventListener("keydown", (e) => {
      if (e.key === "Escape") cancel();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const changes = {};
      if (f.name.value.trim() !== tag.name) changes.name = f.name.value.trim();
      if (f.color.value.toLowerCase() !== safeColor(tag.color).toLowerCase()) changes.color = f.color.value;
      if (f.description.value !== (tag.description || "")) changes.description = f.description.value;
      if (!Object.keys(changes).length) return cancel();
      try {
        await SO.api("PATCH", `${API}/tags/${tag.id}`, changes);
        SO.toast(`Tag ${changes.name || tag.name} saved.`, { kind: "success" });
        await loadTags();
        loadScripts();
        const again = $(`#tags-list [data-tag-id="${CSS.escape(String(tag.id))}"] [data-action=edit-tag]`);
        if (again) again.focus();
      } catch (err) {
        SO.showFieldErrors(form, err);
      }
    });
    li.replaceWith(h("li.tag-item.tag-item-editing", { dataset: { tagId: tag.id } }, form));
    form.elements.name.focus();
  }

  async function deleteTag(tag) {
    const sure = await confirmDialog({
      title: `Delete the tag “${tag.name}”?`,
      text: tag.script_count
        ? `It is detached from ${plural(tag.script_count, "script")}; the scripts themselves stay.`
        : "No script carries it.",
      ok: "Delete tag",
    });
    if (!sure) return;
    try {
      await SO.api("DELETE", `${API}/tags/${tag.id}`);
      SO.toast(`Tag ${tag.name} deleted.`, { kind: "success" });
      if (state.tag === String(tag.id)) filterBy({ tag: "" });
      await loadTags();
      loadScripts();
      loadStats();
      $("#tags-title").focus();
    } catch (err) {
      SO.toast(`Could not delete the tag ${tag.name}: ${err.message}`, { kind: "error" });
    }
  }

  const tagForm = $("#tag-form");
  if (tagForm) {
    tagForm.elements.color.value = TAG_PALETTE[0];
    tagForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      SO.clearFieldErrors(tagForm);
      const f = tagForm.elements;
      const payload = { name: f.name.value.trim(), color: f.color.value, description: f.description.value.trim() };
      if (!payload.name) {
        SO.showFieldErrors(tagForm, { details: { name: ["Name the tag."] } });
        return;
      }
      const submit = $("[type=submit]", tagForm);
      submit.disabled = true;
      try {
        const tag = await SO.api("POST", `${API}/tags`, payload);
        SO.toast(`Tag ${tag.name} created.`, { kind: "success" });
        f.name.value = "";
        f.description.value = "";
        await loadTags();
        f.color.value = TAG_PALETTE[tags.list.length % TAG_PALETTE.length];
        f.name.focus();
      } catch (err) {
        SO.showFieldErrors(tagForm, err);
      } finally {
        submit.disabled = false;
      }
    });
  }

  // -- script browser ----------------------------------------------------------------------
  const params = new URLSearchParams(location.search);
  const FILTERS = ["search", "language", "status", "tag", "root_id", "ordering", "missing", "duplicates"];
  const state = {
    page: Math.max(1, parseInt(params.get("page") || "1", 10) || 1),
    pageSize: parseInt(params.get("page_size") || "25", 10) || 25,
    count: 0,
  };
  for (const name of FILTERS) state[name] = params.get(name) || "";

  const els = {
    body: $("#scripts-body"),
    wrap: $("#scripts-wrap"),
    form: $("#script-filters"),
    search: $("#f-search"),
    language: $("#f-language"),
    status: $("#f-status"),
    tag: $("#f-tag"),
    root: $("#f-root"),
    ordering: $("#f-ordering"),
    missing: $("#f-missing"),
    clear: $("#f-clear"),
    dups: $("#f-dups"),
    info: $("#pager-info"),
    prev: $("#page-prev"),
    next: $("#page-next"),
    pageNum: $("#page-num"),
    pageSize: $("#page-size"),
  };

  const filtersActive = () => FILTERS.some((name) => name !== "ordering" && state[name]);

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

  function filterBy(changes, { scroll = false } = {}) {
    Object.assign(state, changes);
    state.page = 1;
    syncControls();
    loadScripts();
    renderTags(); // the pressed state of the tag chips
    if (scroll) $("#scripts-card").scrollIntoView({ block: "start", behavior: "smooth" });
  }

  function syncControls() {
    els.search.value = state.search;
    els.language.value = state.language;
    els.status.value = state.status;
    els.tag.value = state.tag;
    els.root.value = state.root_id;
    els.ordering.value = state.ordering;
    els.missing.checked = state.missing === "true";
    els.dups.hidden = !state.duplicates;
    $("#f-dups-label").textContent = state.duplicates === "content" ? "same content" : "same name, size, lines";
    els.pageSize.value = String(state.pageSize);
  }

  function syncUrl() {
    const q = new URLSearchParams();
    for (const name of FILTERS) if (state[name]) q.set(name, state[name]);
    if (state.page > 1) q.set("page", String(state.page));
    if (state.pageSize !== 25) q.set("page_size", String(state.pageSize));
    const qs = q.toString();
    history.replaceState(null, "", (qs ? `?${qs}` : location.pathname) + location.hash);
    els.clear.hidden = !filtersActive();
  }

  function scriptRow(script) {
    const tr = h("tr", { dataset: { id: script.id, status: script.status }, class: script.missing ? "is-missing" : undefined });
    const dir = fmt.dirname(script.relpath);
    const sub = [script.root_name, dir].filter(Boolean).join(" / ");
    const tagsCell = h("td.col-tags");
    const chips = h("span.chips");
    for (const tag of (script.tags || []).slice(0, 3)) chips.append(tagChip(tag));
    if ((script.tags || []).length > 3) chips.append(h("span.chip.muted", { title: script.tags.slice(3).map((t) => t.name).join(", ") }, `+${script.tags.length - 3}`));
    tagsCell.append(chips);
    const statusCell = h("td.col-status", null, h("span.badge-group", null, statusBadge(script.status), script.missing ? missingBadge(script.missing_since) : null));
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

  /** ▶ Run: the Runs page's launch form, filled in for this script. */
  function runButton(script, size) {
    const label = `Run ${script.relpath || script.name}`;
    if (script.missing || script.missing_since) {
      const why = "The file is missing: rescan its root or restore it";
      return h(`button.btn.btn-${size}.btn-secondary`, { type: "button", disabled: true, title: why, "aria-label": label }, "▶ Run");
    }
    return h(
      `a.btn.btn-${size}.${size === "sm" ? "btn-secondary" : "btn-primary"}`,
      { href: runHref(script.id), dataset: { action: "run" }, "aria-label": label, title: "Open the launch form for this script" },
      "▶ Run",
    );
  }

  function renderScriptsEmpty(message) {
    const cell = h("td.empty", { colspan: "8" });
    if (message) cell.append(h("div.empty-title", null, "Could not load the scripts"), h("div.muted", null, message));
    else if (filtersActive()) {
      cell.append(h("div.empty-title", null, "No scripts match these filters"), h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: clearFilters }, "Clear filters"));
    } else if (roots.loaded && !roots.list.length) {
      cell.append(
        h("div.empty-title", null, "No scripts yet"),
        h(
          "div.muted",
          null,
          can.admin ? "Register a folder root and scan it: its scripts appear here." : "Scripts appear here once an admin registers a folder root and it is scanned.",
        ),
      );
      if (can.admin) cell.append(h("button.btn.btn-primary.btn-sm", { type: "button", onclick: openRootForm }, "Register a root"));
    } else {
      const how = can.edit ? "Scan a folder root above to index its scripts." : "Scripts appear here once a folder root is scanned.";
      cell.append(h("div.empty-title", null, "No scripts indexed yet"), h("div.muted", null, how));
    }
    SO.clear(els.body).append(h("tr.empty-row", null, cell));
  }

  function renderPager() {
    const pages = Math.max(1, Math.ceil(state.count / state.pageSize));
    const first = state.count ? (state.page - 1) * state.pageSize + 1 : 0;
    const last = Math.min(state.count, state.page * state.pageSize);
    els.info.textContent = state.count ? `Showing ${first}–${last} of ${plural(state.count, "script")}` : "";
    els.pageNum.textContent = `Page ${state.page} of ${pages}`;
    els.prev.disabled = state.page <= 1;
    els.next.disabled = state.page >= pages;
  }

  let inflight = null;
  async function loadScripts() {
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    const q = new URLSearchParams({ page: String(state.page), page_size: String(state.pageSize) });
    for (const name of FILTERS) if (state[name]) q.set(name, state[name]);
    els.wrap.classList.add("refreshing");
    try {
      const res = await SO.request("GET", `${API}/scripts?${q}`, undefined, { signal: controller.signal });
      if (res.status === 404 && state.page > 1) {
        state.page = 1; // the page emptied (scripts removed): back to the first
        return loadScripts();
      }
      if (!res.ok) throw new SO.ApiError(res.status, res.data);
      const results = listOf(res.data);
      state.count = Array.isArray(res.data) ? results.length : res.data.count;
      state.empty = !results.length;
      if (state.empty) renderScriptsEmpty();
      else SO.clear(els.body).append(...results.map(scriptRow));
      renderPager();
      syncUrl();
    } catch (err) {
      if (err.name === "AbortError") return;
      renderScriptsEmpty(err.message);
    } finally {
      if (inflight === controller) {
        inflight = null;
        els.wrap.classList.remove("refreshing");
      }
    }
  }

  function clearFilters() {
    for (const name of FILTERS) if (name !== "ordering") state[name] = "";
    filterBy({});
  }

  let searchTimer = null;
  els.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => filterBy({ search: els.search.value.trim() }), 300);
  });
  els.form.addEventListener("submit", (e) => e.preventDefault());
  els.language.addEventListener("change", () => filterBy({ language: els.language.value }));
  els.status.addEventListener("change", () => filterBy({ status: els.status.value }));
  els.tag.addEventListener("change", () => filterBy({ tag: els.tag.value }));
  els.root.addEventListener("change", () => filterBy({ root_id: els.root.value }));
  els.ordering.addEventListener("change", () => filterBy({ ordering: els.ordering.value }));
  els.missing.addEventListener("change", () => filterBy({ missing: els.missing.checked ? "true" : "" }));
  els.clear.addEventListener("click", clearFilters);
  els.dups.addEventListener("click", () => {
    filterBy({ duplicates: "" });
    els.search.focus();
  });
  $("#dups-list").addEventListener("click", () => filterBy({ duplicates: dupKind }, { scroll: true }));
  els.pageSize.addEventListener("change", () => {
    state.pageSize = parseInt(els.pageSize.value, 10);
    state.page = 1;
    loadScripts();
  });
  els.prev.addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    loadScripts();
  });
  els.next.addEventListener("click", () => {
    state.page += 1;
    loadScripts();
  });

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

  // -- the script sheet -----------------------------------------------------------------------
  const sheet = { el: $("#script-sheet"), id: null, script: null, opener: null, tab: "overview", loaded: {}, seq: 0 };
  const panels = {
    overview: $("#panel-overview"),
    content: $("#panel-content"),
    history: $("#panel-history"),
    runs: $("#panel-runs"),
  };

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
    if (name === "content") loadContent();
    else if (name === "history") loadHistory();
    else if (name === "runs") loadRuns();
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
      h("h3.section-title", null, "Parameters", s.parameters && s.parameters.length ? h("span.muted.small", null, ` ${s.parameters.length} from argparse`) : null),
      parametersTable(s),
    );

    const right = h("div.overview-side");
    right.append(h("h3.section-title", null, "Curation"), can.edit ? metaForm(s) : metaReadonly(s));
    right.append(h("h3.section-title", null, "Tags"), h("div.sheet-tags", { id: "sheet-tags", dataset: { testid: "sheet-tags" } }));
    panel.append(h("div.overview-grid", null, left, right));
    renderSheetTags();
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

  /** A table head; a label starting with "#" is a number column. */
  function thead(...labels) {
    const cells = labels.map((label) => (label.startsWith("#") ? h("th.col-num", null, label.slice(1)) : h("th", null, label)));
    return h("thead", null, h("tr", null, ...cells));
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
        loadScripts();
        loadStats();
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
      loadScripts();
      loadTags();
    } catch (err) {
      sheetNote(`Could not ${attach ? "attach" : "remove"} the tag ${tag.name}: ${err.message}`, "error");
    }
  }

  // -- content viewer -------------------------------------------------------------------------
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

  /** The Pygments stylesheet, once, with every rule scoped under .highlight. */
  function injectCodeCss(css) {
    if (!css || $("#pygments-css")) return;
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
    const style = document.createElement("style");
    style.id = "pygments-css";
    style.textContent = scoped;
    document.head.append(style);
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

  // -- start --------------------------------------------------------------------------------
  syncControls();
  loadStats();
  loadRoots().then(() => loadDups());
  loadTags();
  loadScripts();
  feed.connect();
  routeHash();
})();
