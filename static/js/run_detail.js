/* Run detail page: header + actions, live output, events, resources, attempts. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt } = SO;

  let run = JSON.parse($("#run-data").textContent);
  const id = run.id;
  const PAGE = 500;
  const ACTIVE = () => SO.isActive(run);

  // -- header ------------------------------------------------------------------------
  function metaItem(label, value, extra) {
    return [h("div.meta-item", extra || null, h("dt", null, label), h("dd", null, value))];
  }

  function copyable(text) {
    const button = h("button.copy-btn", { type: "button", title: "Copy", "aria-label": `Copy ${text}` }, SO.icon("copy"));
    button.addEventListener("click", async () => {
      if (await SO.copy(text)) {
        button.classList.add("copied");
        setTimeout(() => button.classList.remove("copied"), 1200);
      }
    });
    return h("span.copyable", null, h("span.mono", null, text), button);
  }

  function runningFor() {
    if (run.duration !== null && run.duration !== undefined) return fmt.duration(run.duration);
    if (run.status === "running" && run.started_at) {
      return h(
        "span.duration-live",
        null,
        h("span.ticking", { dataset: { since: run.started_at } }, fmt.duration((Date.now() - new Date(run.started_at)) / 1000)),
        h("span.run-progress", { id: "run-progress", dataset: { testid: "run-progress" }, hidden: true }),
      );
    }
    return h("span.muted", null, "–");
  }

  // -- progress against the script's usual duration (p50/p95 of its last 30 successes) ----
  let usual; // undefined: not asked yet; null: not enough history
  async function loadUsual() {
    if (usual !== undefined || run.status !== "running") return;
    try {
      const found = await SO.api("GET", `/api/analytics/expected?${new URLSearchParams({ script_path: run.script_path })}`);
      usual = found[run.script_path] || null;
    } catch (err) {
      usual = null; // progress is a nicety
    }
    paintProgress();
  }
  function paintProgress() {
    const node = $("#run-progress");
    if (!node) return;
    if (!usual || !(usual.p50 > 0) || run.status !== "running" || !run.started_at) {
      node.hidden = true;
      return;
    }
    const elapsed = (Date.now() - new Date(run.started_at)) / 1000;
    const over = elapsed > usual.p95;
    const fraction = over ? 1 : Math.min(elapsed / usual.p50, 1);
    const left = Math.max(usual.p50 - elapsed, 0);
    const fill = h("span.progress-fill");
    fill.style.width = `${(fraction * 100).toFixed(1)}%`;
    node.hidden = false;
    node.classList.toggle("over", over);
    SO.clear(node).append(
      h("span.progress-track", { role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(fraction * 100)), "aria-label": `Progress against the usual ${fmt.duration(usual.p50)}` }, fill),
      h(`span.progress-text${over ? ".over" : ""}`, { title: `usually ${fmt.duration(usual.p50)} (p50 of ${usual.n} successful runs), p95 ${fmt.duration(usual.p95)}` },
        over ? "running longer than usual" : left < 1 ? "about to finish" : `about ${fmt.duration(left)} left`),
    );
  }

  /** The output counter: never behind the lines the terminal has seen. */
  function outputText() {
    const lines = Math.max(run.output_lines || 0, term.newest || 0); // (called once the terminal exists)
    return `${fmt.number(lines)} lines · ${fmt.bytes(run.output_bytes)}`;
  }

  function renderHeader() {
    $("#run-script").textContent = fmt.basename(run.script_path);
    $("#run-path").textContent = fmt.dirname(run.script_path) + "/";
    document.title = `${fmt.basename(run.script_path)} · ${run.status} · ScriptOps`;
    SO.clear($("#run-badges")).append(SO.runBadges(run));
    const actions = SO.clear($("#run-actions"));
    actions.append(SO.actionButtons(run, { size: "md", withDelete: true, onDone: afterAction }));
    if (SO.can.execute) {
      actions.append(h("a.btn.btn-md.btn-soft", { href: `/?rerun=${run.id}#launch`, dataset: { action: "rerun", testid: "rerun" }, title: "A fresh run with this run's parameters, changed as you like" }, "Run again…"));
    }

    const dl = SO.clear($("#run-meta"));
    const exit =
      run.exit_code === null || run.exit_code === undefined
        ? h("span.muted", null, "–")
        : h(`span.exit.${run.exit_code === 0 ? "exit-ok" : "exit-bad"}`, { "data-testid": "exit-code" }, String(run.exit_code));
    const items = [
      metaItem("Correlation ID", run.correlation_id ? copyable(run.correlation_id) : "–", { class: "meta-wide" }),
      metaItem("Run ID", copyable(run.id), { class: "meta-wide" }),
      metaItem("Created", h("span", { title: fmt.dateTime(run.created_at) }, fmt.dateTime(run.created_at))),
      metaItem("Started", run.started_at ? fmt.dateTime(run.started_at) : h("span.muted", null, run.status === "queued" ? "waiting for a worker…" : "–")),
      metaItem("Finished", run.finished_at ? fmt.dateTime(run.finished_at) : h("span.muted", null, "–")),
      metaItem(run.attempts > 1 ? "Run time (all attempts)" : "Duration", runningFor()),
      metaItem("Exit code", exit),
      metaItem("Attempts", run.retry_on_failure ? `${run.attempts} of ${run.retry_max_attempts}` : String(run.attempts)),
      metaItem("By", [run.created_by || "–", h("span.muted", null, ` via ${run.source}`)]),
    ];
    if (run.attempts > 1 && run.started_at) {
      // Retries wait between attempts: the wall time is longer than the attempts' sum.
      const end = run.finished_at ? new Date(run.finished_at) : new Date();
      const wall = (end - new Date(run.started_at)) / 1000;
      items.push(metaItem("Wall time", h("span", { "data-testid": "wall-time", title: "From the first attempt's start to the end, waits between attempts included" }, fmt.duration(wall))));
    }
    if (run.restarted_from) {
      const label = run.source === "rerun" ? "Run again from" : "Restart of";
      items.push(metaItem(label, h("a.mono", { href: `/runs/${run.restarted_from}/` }, fmt.shortId(run.restarted_from))));
    }
    for (const item of items) dl.append(...item);
    renderError();
    if (run.status === "running") {
      if (usual === undefined) loadUsual();
      else paintProgress();
    }
  }

  function afterAction(action, result) {
    if (action === "restart" && result.id) {
      location.assign(`/runs/${result.id}/`);
      return;
    }
    if (action === "remove") {
      location.assign("/");
      return;
    }
    if (result && result.id === id && !(socket && socket.open)) {
      // (an open socket brings the run's changes, in order: see SO.actionButtons)
      run = { ...run, ...result };
      renderHeader();
    }
  }

  function renderError() {
    const box = $("#error-box");
    const summary = run.error_summary;
    if (!summary || run.status === "completed") {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    // A stop someone asked for is not an error: same facts, calmer colours.
    const stopped = run.status === "cancelled";
    box.classList.toggle("error-box-stopped", stopped);
    $("#error-title").textContent = stopped ? "Stopped — summary" : "Error summary";
    const dl = SO.clear($("#error-grid"));
    const row = (k, v) => dl.append(h("div", null, h("dt", null, k), h("dd", null, v)));
    row("Status", summary.status || run.run_status || run.status);
    row("Exit code", summary.exit_code === null || summary.exit_code === undefined ? "–" : String(summary.exit_code));
    row("Correlation ID", h("span.mono", null, summary.correlation_id || run.correlation_id || "–"));
    for (const [key, value] of Object.entries(summary)) {
      if (["status", "exit_code", "correlation_id", "stderr_snippet"].includes(key) || value === null || value === "") continue;
      row(key.replace(/_/g, " "), typeof value === "object" ? JSON.stringify(value) : String(value));
    }
    const snippet = $("#error-snippet");
    snippet.hidden = !summary.stderr_snippet;
    SO.clear(snippet);
    if (summary.stderr_snippet) SO.renderAnsi(String(summary.stderr_snippet), snippet);
  }

  // -- pre-run checks (issue 13): the run's ``checks`` block --------------------------
  function renderChecks() {
    const checks = run.checks;
    const card = $("#run-checks");
    if (!checks) {
      card.hidden = true;
      return;
    }
    card.hidden = false;
    const findings = checks.findings || [];
    const how = checks.cached ? "cached result" : `${fmt.duration((checks.duration_ms || 0) / 1000)}`;
    $("#checks-summary").textContent = `${(checks.kinds || []).join(", ")} · ${checks.status} · ${findings.length} finding${findings.length === 1 ? "" : "s"} · ${how}`;
    $("#checks-blocked").hidden = !checks.blocked;
    $("#checks-reason").textContent = checks.blocked ? checks.reason || "" : "";
    SO.clear($("#checks-errors")).append(...(checks.errors || []).map((e) => h("div.alert.alert-warn", { role: "note" }, `${e.tool} gave no answer: ${e.message}`)));
    const rows = findings.map((f) =>
      h(
        "tr",
        { dataset: { kind: f.kind, severity: f.severity }, class: f.blocking ? "finding-blocking" : undefined },
        h("td", null, f.tool),
        h("td.mono", null, f.rule_id),
        h("td", null, h(`span.badge.badge-sev-${f.severity}`, null, f.severity)),
        h("td.mono", null, `${f.file}${f.line ? `:${f.line}` : ""}`),
        h("td", null, f.message),
        h("td", null, f.blocking ? "blocks" : f.accepted ? "accepted risk" : "–"),
      ),
    );
    SO.clear($("#checks-body")).append(...rows);
    $("#checks-table-wrap").hidden = !rows.length;
    $("#checks-empty").hidden = rows.length > 0 || (checks.errors || []).length > 0;
  }

  function renderParams() {
    const dl = SO.clear($("#run-params"));
    const add = (label, value, wide) => dl.append(...metaItem(label, value, wide ? { class: "meta-wide" } : null));
    add("Script", h("span.mono", null, run.resolved_path || run.script_path), true);
    add("Arguments", run.args && run.args.length ? h("span.chips", null, run.args.map((a) => h("span.chip.mono", null, a))) : h("span.muted", null, "none"), true);
    add("Working directory", run.working_dir ? h("span.mono", null, run.working_dir) : h("span.muted", null, "the script's folder"), true);
    const envNames = Object.keys(run.env_vars || {});
    add("Environment", envNames.length ? h("span.chips", null, envNames.map((n) => h("span.chip.mono", { title: "value hidden" }, `${n}=••••`))) : h("span.muted", null, "none"), true);
    add("Timeout", run.timeout ? `${run.timeout} s` : "none");
    add("Log level", run.log_level);
    add("Monitor interval", `${run.monitor_interval} s`);
    add("Stream output", run.stream_output ? "yes" : "no");
    add("History", run.enable_history ? "kept" : "off");
    add(
      "Retry",
      run.retry_on_failure
        ? `${run.retry_strategy}, up to ${run.retry_max_attempts} attempts, delay ${run.retry_initial_delay}–${run.retry_max_delay} s ×${run.retry_multiplier}, max ${run.retry_max_time} s`
        : "off",
      true,
    );
    add("Host / PID", run.host ? `${run.host} / ${run.pid ?? "–"}` : "–");
    add("Output", h("span", { id: "meta-output", "data-testid": "output-count" }, outputText()));
    add("CPU time", run.cpu_time === null || run.cpu_time === undefined ? "–" : fmt.duration(run.cpu_time));
    add("Avg CPU", run.avg_cpu === null || run.avg_cpu === undefined ? "–" : `${run.avg_cpu.toFixed(1)} %`);
    add("Peak RSS", fmt.bytes(run.peak_rss));
    add("Max children", run.max_children ?? "–");
  }

  setInterval(() => {
    for (const node of SO.$$(".ticking[data-since]")) node.textContent = fmt.duration((Date.now() - new Date(node.dataset.since)) / 1000);
    paintProgress();
  }, 1000);

  async function refreshRun() {
    try {
      run = await SO.api("GET", `/api/runs/${id}`);
      renderHeader();
      renderChecks();
      renderParams();
      syncBanner();
    } catch (err) {
      if (err.status === 404) gone();
    }
  }

  /** The analytics card (server-rendered: how the run compares with usual, gates,
   *  alerts) of a run that just ended live: recorded in the run's final write, so read
   *  the page again and take its card. */
  async function refreshAnalytics() {
    const slot = $("#run-analytics-slot");
    if (!slot) return;
    try {
      const res = await fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!res.ok) return;
      const fresh = new DOMParser().parseFromString(await res.text(), "text/html").querySelector("#run-analytics-slot");
      if (fresh) slot.replaceChildren(...Array.from(fresh.childNodes).map((node) => document.importNode(node, true)));
    } catch (err) {
      // The card appears on the next visit; nothing else depends on it.
    }
  }

  function gone() {
    SO.toast("This run was deleted.", { kind: "error", link: { href: "/", label: "Back to runs" } });
    if (socket) socket.close();
    SO.setLive("off", "Deleted");
  }

  // -- output ------------------------------------------------------------------------
  const term = new SO.Terminal({
    scroller: $("#term"),
    lines: $("#term-lines"),
    top: $("#term-top"),
    bottom: $("#term-bottom"),
    count: $("#term-count"),
    jump: $("#jump-latest"),
    followButton: $("#follow-btn"),
    onNeedOlder: (first) => loadOlder(first),
    onNeedNewer: (last) => loadNewer(last),
  });
  term.onJumpLatest = () => loadTail({ follow: true });
  term.onRender = () => {
    const node = $("#meta-output");
    if (node) node.textContent = outputText();
  };

  let pagedLogs = true; // false when the server has no JSON/paged logs (then the socket replays everything)
  let dropped = 0;

  const fromApi = (l) => ({ n: l.n, stream: l.stream, ts: l.ts, text: l.text });
  const fromSocket = (d) => ({ n: d.offset, stream: d.stream, ts: d.timestamp, text: d.content });

  /** The viewer's stream filter, applied by the server: ``streams=`` on every page. */
  const STREAMS = ["stdout", "stderr", "system"];
  function streamParam() {
    return term.streams ? { streams: STREAMS.filter((s) => term.streams.has(s)).join(",") } : {};
  }
  function logsUrl(extra) {
    return `/api/runs/${id}/logs?${new URLSearchParams({ format: "json", ...streamParam(), ...extra })}`;
  }

  async function fetchPage(extra) {
    const res = await SO.request("GET", logsUrl(extra));
    if (res.ok && res.data && typeof res.data === "object" && Array.isArray(res.data.lines)) return res.data;
    if (res.ok) return null; // plain text: this server has no paged JSON logs
    throw new SO.ApiError(res.status, res.data);
  }

  function syncBanner() {
    const banner = $("#term-banner");
    const parts = [];
    if (dropped > 0 || run.output_truncated) {
      parts.push(
        dropped > 0
          ? `Output truncated: the first ${fmt.number(dropped)} lines were dropped because the run exceeded the output cap. The newest output is kept.`
          : "Output truncated: the oldest output was dropped because the run exceeded the output cap. The newest output is kept.",
      );
    }
    if (!pagedLogs) parts.push("This server cannot page the log yet: the output is replayed from the live stream (at most 5,000 lines shown).");
    banner.hidden = !parts.length;
    banner.textContent = parts.join(" ");
    banner.classList.toggle("term-banner-warn", dropped > 0 || !!run.output_truncated);
  }

  function applyPageMeta(page) {
    dropped = page.dropped_lines || 0;
    term.truncatedBefore = dropped;
    if (page.truncated) run.output_truncated = true;
    term.newest = Math.max(term.newest, page.total_lines || 0, page.last_line || 0);
    syncBanner();
  }

  async function loadTail({ follow = false } = {}) {
    term.loading = "newer";
    term.renderEdges();
    try {
      const page = await fetchPage({ limit: String(PAGE) });
      if (!page) {
        pagedLogs = false;
        term.loading = false;
        term.reset([], { hasMoreBefore: false, atTail: true });
        syncBanner();
        return null;
      }
      applyPageMeta(page);
      term.loading = false;
      term.reset(page.lines.map(fromApi), { hasMoreBefore: !!page.has_more_before, atTail: true });
      if (follow || term.follow) term.setFollowQuiet(true);
      term.scrollToBottom();
      term.renderEdges();
      return page;
    } catch (err) {
      term.loading = false;
      term.renderEdges();
      SO.toast(`Could not load the output: ${err.message}`, { kind: "error" });
      return null;
    }
  }

  async function loadOlder(first) {
    if (!pagedLogs || term.loading) return;
    term.loading = "older";
    term.renderEdges();
    try {
      const page = await fetchPage({ before: String(first), limit: String(PAGE) });
      term.loading = false;
      if (page) {
        applyPageMeta(page);
        term.prepend(page.lines.map(fromApi), !!page.has_more_before && page.lines.length > 0);
      }
    } catch (err) {
      term.loading = false;
      term.renderEdges();
      SO.toast(`Could not load older lines: ${err.message}`, { kind: "error" });
    }
  }

  async function loadNewer(last) {
    // Only while detached from the tail: the next PAGE lines after ``last``.
    if (!pagedLogs || term.loading) return;
    term.loading = "newer";
    term.renderEdges();
    try {
      const page = await fetchPage({ before: String(last + PAGE + 1), limit: String(PAGE) });
      term.loading = false;
      if (page) {
        applyPageMeta(page);
        term.appendPage(page.lines.map(fromApi));
      }
    } catch (err) {
      term.loading = false;
      term.renderEdges();
    }
  }

  /** Show line ``n`` (a search hit): from the DOM, or by loading the page around it. */
  async function jumpTo(n) {
    if (term.reveal(n)) return;
    if (!pagedLogs) return;
    term.loading = "older";
    term.renderEdges();
    try {
      const page = await fetchPage({ before: String(n + PAGE / 2), limit: String(PAGE) });
      term.loading = false;
      if (!page) return;
      applyPageMeta(page);
      const lines = page.lines.map(fromApi);
      const lastN = lines.length ? lines[lines.length - 1].n : 0;
      term.setFollowQuiet(false);
      term.reset(lines, { hasMoreBefore: !!page.has_more_before, atTail: lastN >= term.newest });
      term.reveal(n);
    } catch (err) {
      term.loading = false;
      term.renderEdges();
      SO.toast(`Could not load line ${n}: ${err.message}`, { kind: "error" });
    }
  }

  // Stream toggles: the server filters the pages (a big log's stderr is found however
  // much stdout came before it); live lines of a hidden stream are skipped.
  for (const button of SO.$$("[data-stream-toggle]")) {
    button.addEventListener("click", () => {
      const on = !button.classList.contains("on");
      const shown = new Set(SO.$$("[data-stream-toggle].on").map((b) => b.dataset.streamToggle));
      if (on) shown.add(button.dataset.streamToggle);
      else shown.delete(button.dataset.streamToggle);
      if (!shown.size) return; // at least one stream stays on
      button.classList.toggle("on", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
      term.streams = shown.size === STREAMS.length ? null : shown;
      if (pagedLogs) loadTail({ follow: term.follow });
      else $("#term").classList.toggle(`hide-${button.dataset.streamToggle}`, !on); // no paged logs: hide
    });
  }
  $("#ts-btn").addEventListener("click", (e) => {
    const on = !e.currentTarget.classList.contains("on");
    e.currentTarget.classList.toggle("on", on);
    e.currentTarget.setAttribute("aria-pressed", on ? "true" : "false");
    $("#term").classList.toggle("show-ts", on);
  });
  // Jump to the first error: the first stderr line, or an earlier line matching the
  // server's error pattern (SCRIPTOPS_LOG_ERROR_PATTERN).
  $("#first-error-btn").addEventListener("click", async () => {
    try {
      const res = await SO.request("GET", `/api/runs/${id}/logs?${new URLSearchParams({ format: "json", first_error: "true", limit: "1" })}`);
      if (!res.ok) throw new SO.ApiError(res.status, res.data);
      const found = res.data && res.data.first_error;
      if (!found) {
        SO.toast("No error found: no line on stderr and none matching the error pattern.", { kind: "info" });
        return;
      }
      if (term.streams && !term.streams.has(found.stream)) {
        // Show every stream again: the line must be visible where it is.
        for (const b of SO.$$("[data-stream-toggle]")) {
          b.classList.add("on");
          b.setAttribute("aria-pressed", "true");
        }
        term.streams = null;
      }
      await jumpTo(found.n);
      const row = $(`#term-lines .tl[data-n="${found.n}"]`);
      if (row) row.classList.add("first-error");
      SO.toast(`First error: line ${fmt.number(found.n)} (${found.why === "stderr" ? "first stderr line" : "matches the error pattern"}).`, { kind: "info" });
    } catch (err) {
      SO.toast(`Could not look for the first error: ${err.message}`, { kind: "error" });
    }
  });
  $("#wrap-btn").addEventListener("click", (e) => {
    const on = !e.currentTarget.classList.contains("on");
    e.currentTarget.classList.toggle("on", on);
    e.currentTarget.setAttribute("aria-pressed", on ? "true" : "false");
    $("#term").classList.toggle("wrap", on);
  });

  // -- search (server-side) -------------------------------------------------------------
  function highlight(text, query) {
    const plain = text.replace(/\x1b\[[0-9;:?]*[@-~]/g, "");
    const frag = document.createDocumentFragment();
    const low = plain.toLowerCase();
    const q = query.toLowerCase();
    let at = 0;
    let i = low.indexOf(q);
    // Show the part around the first match when the line is long.
    if (i > 60) {
      at = i - 40;
      frag.append("…");
    }
    while (i !== -1 && q) {
      frag.append(plain.slice(at, i), h("mark", null, plain.slice(i, i + q.length)));
      at = i + q.length;
      i = low.indexOf(q, at);
    }
    frag.append(plain.slice(at, at + 200));
    return frag;
  }

  const SEARCH_PAGE = 200;
  const search = { q: "", hits: 0, list: null, more: null };

  async function searchPage(after) {
    const res = await SO.request("GET", logsUrl({ q: search.q, limit: String(SEARCH_PAGE), after: String(after) }));
    if (!res.ok) throw new SO.ApiError(res.status, res.data);
    if (!res.data || !Array.isArray(res.data.lines)) throw new Error("this server cannot search the output");
    return res.data;
  }

  function renderHits(hits) {
    for (const hit of hits) {
      search.list.append(
        h(
          "li",
          null,
          h(
            "button.search-hit",
            { type: "button", onclick: () => jumpTo(hit.n), dataset: { line: hit.n } },
            h("span.ln", null, String(hit.n)),
            hit.stream !== "stdout" ? h(`span.stream-tag.s-${hit.stream}`, null, hit.stream) : null,
            h("span.hit-text", null, highlight(hit.text, search.q)),
          ),
        ),
      );
    }
  }

  function searchSummary(more) {
    const n = search.hits;
    search.count.textContent = n ? `${fmt.number(n)}${more ? "+" : ""} matching line${n === 1 && !more ? "" : "s"}` : "No matching lines";
  }

  $("#term-search").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = $("#term-q").value;
    const panel = $("#search-results");
    if (!q.trim()) {
      panel.hidden = true;
      return;
    }
    search.q = q;
    panel.hidden = false;
    SO.clear(panel).append(h("div.search-head", null, h("span.spinner.spinner-sm"), ` Searching for “${q}”…`));
    try {
      const data = await searchPage(0);
      search.hits = data.lines.length;
      search.count = h("strong");
      search.list = h("ol.search-list", { "data-testid": "search-results" });
      const close = h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: () => (panel.hidden = true) }, "Close");
      SO.clear(panel).append(h("div.search-head", null, search.count, h("span.muted", null, ` for “${q}” — click a line to show it`), close), search.list);
      renderHits(data.lines);
      searchSummary(data.has_more);
      if (data.has_more) {
        // The server answers SEARCH_PAGE hits at a time; fetch the next ones on demand.
        const more = h("button.btn.btn-ghost.btn-sm.search-more", { type: "button" }, "Show more matches");
        let last = data.lines.length ? data.lines[data.lines.length - 1].n : 0;
        more.addEventListener("click", async () => {
          more.disabled = true;
          try {
            const next = await searchPage(last);
            renderHits(next.lines);
            search.hits += next.lines.length;
            if (next.lines.length) last = next.lines[next.lines.length - 1].n;
            searchSummary(next.has_more);
            if (!next.has_more) more.remove();
          } catch (err) {
            SO.toast(`Search failed: ${err.message}`, { kind: "error" });
          }
          more.disabled = false;
        });
        panel.append(more);
      }
    } catch (err) {
      SO.clear(panel).append(h("div.search-head", null, `Search failed: ${err.message}`));
    }
  });

  // -- events ------------------------------------------------------------------------
  const seenEvents = new Set();
  const EVENT_TONE = {
    queued: "muted",
    start: "info",
    retry: "warn",
    success: "good",
    failure: "bad",
    timeout: "bad",
    stop_requested: "warn",
    kill_requested: "bad",
    forced_termination: "bad",
    cancelled: "warn",
    paused: "warn",
    resumed: "info",
    output_truncated: "warn",
    orphaned: "bad",
    rejected: "bad",
  };
  let firstEventAt = null;

  /** An event's value as text: a list of objects (a gate_failed event's violations) by
   * their messages, not "[object Object]". */
  function chipValue(v) {
    if (Array.isArray(v)) {
      const objects = v.some((item) => item && typeof item === "object");
      return v
        .map((item) => (item && typeof item === "object" ? item.message || JSON.stringify(item) : String(item)))
        .join(objects ? "; " : " ");
    }
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  function eventItem(ev) {
    const at = new Date(ev.timestamp);
    if (firstEventAt === null) firstEventAt = at;
    const offset = (at - firstEventAt) / 1000;
    const data = ev.data && typeof ev.data === "object" ? ev.data : {};
    const chips = Object.entries(data)
      .filter(([, v]) => v !== null && v !== "" && v !== undefined)
      .map(([k, v]) =>
        h(
          "span.chip.chip-kv",
          null,
          h("span.chip-k", null, k),
          h("span.chip-v", null, chipValue(v)),
        ),
      );
    return h(
      `li.tl-event.tone-${EVENT_TONE[ev.kind] || "muted"}`,
      { dataset: { kind: ev.kind } },
      h("span.tl-dot", { "aria-hidden": "true" }),
      h(
        "div.tl-body",
        null,
        h("div.tl-line", null, h("strong", null, ev.kind.replace(/_/g, " ")), h("time.muted", { title: fmt.dateTime(ev.timestamp) }, `${fmt.time(at, true)}${offset > 0 ? ` · +${fmt.duration(offset)}` : ""}`)),
        chips.length ? h("div.chips", null, chips) : null,
      ),
    );
  }

  function addEvents(events, replace) {
    const list = $("#timeline");
    if (replace) {
      SO.clear(list);
      seenEvents.clear();
      firstEventAt = null;
    }
    for (const ev of events) {
      const key = ev.id !== undefined ? String(ev.id) : `${ev.kind}@${ev.timestamp}`;
      if (seenEvents.has(key)) continue;
      seenEvents.add(key);
      list.append(eventItem(ev));
    }
    if (!list.children.length) list.append(h("li.empty-small.muted", null, "No events yet."));
    else SO.$$(".empty-small", list).forEach((n) => n.remove());
    $("#events-count").textContent = seenEvents.size ? `${seenEvents.size} event${seenEvents.size === 1 ? "" : "s"}` : "";
  }

  async function loadEvents() {
    try {
      addEvents(await SO.api("GET", `/api/runs/${id}/events`), true);
    } catch (err) {
      SO.clear($("#timeline")).append(h("li.empty-small.muted", null, `Could not load events: ${err.message}`));
    }
  }

  // -- resources + attempts ------------------------------------------------------------
  let samples = [];
  const trim = (v) => (v >= 100 || v === 0 ? String(Math.round(v)) : String(Number(v.toPrecision(3))));
  function drawCharts() {
    const base = samples.length ? samples[0].ts : 0;
    const markers = [];
    for (let i = 1; i < samples.length; i += 1) {
      if (samples[i].attempt !== samples[i - 1].attempt) markers.push({ x: samples[i].ts - base, label: `#${samples[i].attempt}` });
    }
    const empty = ACTIVE() ? "Waiting for samples…" : "No samples were recorded";
    SO.lineChart($("#chart-cpu"), samples.map((s) => ({ x: s.ts - base, y: s.cpu || 0 })), {
      title: "CPU %",
      color: "#4f63ff",
      format: (v) => `${trim(v)}%`,
      minMax: 10,
      markers,
      empty,
    });
    const MiB = 1024 * 1024;
    SO.lineChart($("#chart-rss"), samples.map((s) => ({ x: s.ts - base, y: (s.rss || 0) / MiB })), {
      title: "Memory (RSS)",
      color: "#0e9f8e",
      format: (v) => `${trim(v)} MiB`,
      minMax: 1,
      markers,
      empty,
    });
    if (samples.length) {
      const peakCpu = Math.max(...samples.map((s) => s.cpu || 0));
      const peakRss = Math.max(...samples.map((s) => s.rss || 0));
      $("#res-summary").textContent = `${fmt.number(samples.length)} sample${samples.length === 1 ? "" : "s"} · peak ${peakCpu.toFixed(0)}% CPU · ${fmt.bytes(peakRss)} RSS`;
    }
  }

  async function loadSamples() {
    try {
      samples = await SO.api("GET", `/api/runs/${id}/samples`);
    } catch (err) {
      samples = [];
    }
    drawCharts();
  }
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawCharts, 150);
  });

  async function loadAttempts() {
    const body = $("#attempts-body");
    try {
      const attempts = await SO.api("GET", `/api/runs/${id}/attempts`);
      SO.clear(body);
      if (!attempts.length) {
        body.append(h("tr.empty-row", null, h("td.empty-small.muted", { colspan: "7" }, run.status === "queued" ? "Not started yet." : "No attempts recorded.")));
        return;
      }
      for (const a of attempts) {
        body.append(
          h(
            "tr",
            null,
            h("td", null, String(a.number)),
            h("td", null, a.started_at ? fmt.dateTime(a.started_at) : "–"),
            h("td.col-num", null, a.duration === null ? (a.finished_at ? "–" : h("span.muted", null, "running")) : fmt.duration(a.duration)),
            h("td.col-num", null, a.exit_code === null ? "–" : h(`span.exit.${a.exit_code === 0 ? "exit-ok" : "exit-bad"}`, null, String(a.exit_code))),
            h("td", null, a.run_status ? SO.badge("run", a.run_status) : h("span.muted", null, "–")),
            h("td.col-num", null, a.cpu_time === null ? "–" : fmt.duration(a.cpu_time)),
            h("td.col-num", null, fmt.bytes(a.peak_rss)),
          ),
        );
      }
    } catch (err) {
      SO.clear(body).append(h("tr", null, h("td.muted", { colspan: "7" }, `Could not load attempts: ${err.message}`)));
    }
  }

  // -- live ----------------------------------------------------------------------------
  let socket = null;
  let finished = !ACTIVE();
  let attemptsSeen = run.attempts;
  let samplesTimer = null;

  function pollSamples() {
    clearTimeout(samplesTimer);
    if (finished) return;
    samplesTimer = setTimeout(async () => {
      await loadSamples();
      pollSamples();
    }, 2000);
  }

  function onMessage(msg) {
    const data = msg.data || {};
    switch (msg.type) {
      case "log_batch":
        // The compact form (?format=batch): [first offset, stream, ts, text] per chunk of
        // consecutive lines (joined by newlines).
        term.liveMany(SO.batchLines(data));
        break;
      case "log_entry":
        term.live(fromSocket(data));
        break;
      case "status": {
        const before = run.status;
        run = { ...run, ...data, id };
        delete run.run_id;
        renderHeader();
        renderParams();
        if (data.output_truncated) syncBanner();
        if (data.attempts !== attemptsSeen || before !== run.status) {
          attemptsSeen = data.attempts;
          loadAttempts();
        }
        if (run.status === "running" && !term.size()) term.setPlaceholder("Waiting for output…");
        if (before !== run.status && !ACTIVE()) refreshRun(); // a blocked run ends without starting
        break;
      }
      case "event":
        addEvents([data], false);
        // The pre-run checks' verdict: the record's ``checks`` block is written with it.
        if (data.kind === "check_blocked" || data.kind === "check_passed") refreshRun();
        break;
      case "execution_completed":
        finished = true;
        run = { ...run, status: data.status, run_status: data.run_status, exit_code: data.exit_code };
        renderHeader();
        if (socket) socket.close();
        SO.setLive("done");
        if (!term.size()) term.setPlaceholder("This run wrote no output.");
        refreshRun();
        loadAttempts();
        loadSamples();
        loadEvents();
        refreshAnalytics();
        break;
      case "error":
        if (/deleted/i.test(data.error_message || "")) gone();
        break;
      default:
        break;
    }
  }

  function connect() {
    socket = new SO.LiveSocket(() => `/ws/runs/${id}/?format=batch&after=${term.newest}`, {
      onMessage,
      onState: (s) => SO.setLive(s),
      onGiveUp: (code) => {
        if (code === 4404) gone();
      },
    });
    socket.connect();
  }

  // -- start ---------------------------------------------------------------------------
  renderHeader();
  renderChecks();
  renderParams();
  // The page's embedded record has no ``checks`` block (dashboard/pages/runs.py renders the
  // list-shaped record); the run's own API record has it: read it once when checks were asked.
  if (!run.checks && (run.enable_code_analysis || run.enable_secret_scanning || run.enable_dependency_scanning)) refreshRun();
  loadEvents();
  loadAttempts();
  loadSamples();
  term.setPlaceholder(run.status === "queued" ? "Queued — waiting for a worker…" : ACTIVE() ? "Waiting for output…" : "This run wrote no output.");
  loadTail().then(() => {
    if (location.hash === "#output") $("#output").scrollIntoView({ block: "start" });
    if (ACTIVE() || !pagedLogs) {
      if (!pagedLogs) term.newest = 0;
      connect();
      pollSamples();
    } else {
      SO.setLive("done");
    }
  });
})();
