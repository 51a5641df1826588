/* Library page (3/9): the folder roots and their scans — live on the runs feed
 * (``scan_progress``), polled while the feed is down. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt } = SO;
  const L = SO.library;
  const { can, API, ALLOWED_ROOTS, roots, sheet, confirmDialog, errorBlock, listOf, plural } = L;

  // -- folder roots and scans ---------------------------------------------------------
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
    L.fillRootFilter();
    // The scripts' empty state depends on whether there are roots at all.
    if (L.list.state.empty) L.renderScriptsEmpty();
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
      if (can.admin) li.append(h("button.btn.btn-primary.btn-sm", { type: "button", onclick: () => L.openRootForm() }, "Register a root"));
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
        { type: "button", dataset: { action: "show-scripts" }, onclick: () => L.filterBy({ root_id: String(root.id) }, { scroll: true }) },
        "Show scripts",
      ),
    );
    if (can.edit) {
      const scanButton = h(
        "button.btn.btn-sm.btn-secondary",
        { type: "button", dataset: { action: "scan" }, "aria-label": `${root.last_scan ? "Rescan" : "Scan"} ${root.name}` },
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
      L.loadTags();
      L.loadStats();
      L.loadScripts();
      L.loadDups();
      if (sheet.id) L.openScript(sheet.id, { refresh: true });
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
      if (L.list.state.root_id === String(root.id)) L.list.state.root_id = "";
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

  Object.assign(L, { loadRoots, startScan, feed });
})();
