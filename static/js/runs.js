/* Runs page: live stats, the launch form, the runs table (filters, paging, actions). */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt, parseEnv } = SO;

  // -- state -----------------------------------------------------------------------
  const params = new URLSearchParams(location.search);
  const els = { body: $("#runs-body"), wrap: $("#runs-wrap") };
  // Filters, page and URL: the shared list helper (common.js). Its state also keeps the rows.
  const list = SO.listView({
    filters: ["status", "run_status", "search", "source", "created_by", "script_path", "created_after", "created_before", "latest_per_script"],
    controls: {
      search: $("#f-search"),
      status: $("#f-status"),
      run_status: $("#f-run-status"),
      source: $("#f-source"),
      created_by: $("#f-user"),
      script_path: $("#f-script"),
      created_after: $("#f-after"),
      created_before: $("#f-before"),
      latest_per_script: $("#f-latest"),
    },
    form: $("#filters"),
    url: () => "/api/runs",
    wrap: els.wrap,
    // The library script the launch form was opened for survives a reload.
    urlExtra: (q) => {
      if (libraryLaunch && libraryLaunch.id) q.set("script_id", libraryLaunch.id);
      if (rerunOf) q.set("rerun", rerunOf.id);
      const chosen = libraryLaunch && libraryLaunch.preset && libraryLaunch.preset();
      if (chosen) q.set("preset", chosen.id);
    },
    onPage: (results) => {
      state.order = results.map((r) => r.id);
      state.rows = new Map(results.map((r) => [r.id, r]));
      for (const id of [...state.selected]) if (!state.rows.has(id)) state.selected.delete(id);
      renderTable();
      loadSparks();
      loadExpected();
    },
    onError: (err) => {
      SO.clear(els.body).append(
        h("tr.empty-row", null, h("td.empty", { colspan: String(COLUMNS) }, h("div.empty-title", null, "Could not load the runs"), h("div.muted", null, err.message))),
      );
    },
  });
  const state = list.state;
  $("#filters-more").addEventListener("submit", (event) => event.preventDefault()); // Enter filters, never reloads
  let libraryLaunch = null; // the library script the launch form was opened for (?script_id=)
  let rerunOf = null; // the run whose parameters the form holds (?rerun=, run again with changes)
  state.rows = new Map(); // id -> run (as last seen from the API or the feed)
  state.order = [];
  state.highlight = new Set(); // ids to flash when they first appear
  const load = () => list.load();
  state.sparks = new Map(); // script path -> its last durations (oldest first)
  state.expected = new Map(); // script path -> {p50, p95, n} of its recent successful runs, or null
  state.selected = new Set(); // ids ticked for a bulk delete
  const SELECTABLE = SO.can.remove; // the select column only for those who may delete
  const COLUMNS = SELECTABLE ? 8 : 7;

  // -- duration sparklines (one request for the page's scripts) ---------------------
  const SVG = "http://www.w3.org/2000/svg";
  function sparkSvg(values) {
    const w = 64;
    const ht = 16;
    const lo = Math.min(...values);
    const span = Math.max(...values) - lo || 1;
    const pts = values.map((v, i) => `${((i / (values.length - 1)) * (w - 2) + 1).toFixed(1)},${(ht - 1 - ((v - lo) / span) * (ht - 2)).toFixed(1)}`);
    const svg = document.createElementNS(SVG, "svg");
    for (const [k, v] of Object.entries({ viewBox: `0 0 ${w} ${ht}`, width: w, height: ht, class: "sparkline", role: "img" })) svg.setAttribute(k, String(v));
    svg.dataset.testid = "duration-sparkline";
    svg.dataset.points = String(values.length);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `Last ${values.length} durations: ${fmt.duration(values[values.length - 1])} latest, ${fmt.duration(Math.min(...values))}–${fmt.duration(Math.max(...values))}`;
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.append(title, line);
    return svg;
  }
  function fillSpark(slot) {
    const values = state.sparks.get(slot.dataset.path);
    SO.clear(slot);
    if (values && values.length >= 2) slot.append(sparkSvg(values));
  }
  async function loadSparks() {
    const paths = [...new Set(state.order.map((id) => state.rows.get(id)).filter(Boolean).map((r) => r.script_path))].slice(0, 100);
    if (!paths.length) return;
    const q = new URLSearchParams(paths.map((p) => ["script_path", p]));
    try {
      const found = await SO.api("GET", `/api/analytics/sparklines?${q}`);
      for (const [path, values] of Object.entries(found)) state.sparks.set(path, values);
    } catch (err) {
      return; // a sparkline is a nicety: the table stands without it
    }
    for (const slot of SO.$$("span.spark-slot", els.body)) fillSpark(slot);
  }

  // -- stats -----------------------------------------------------------------------
  function setStat(name, value) {
    for (const node of SO.$$(`[data-stat="${name}"]`)) node.textContent = value;
  }
  function renderStats(s) {
    setStat("total", fmt.number(s.total));
    setStat("last_24h", fmt.number(s.last_24h));
    setStat("success_rate", s.success_rate === null || s.success_rate === undefined ? "–" : `${s.success_rate}%`);
    const bar = $('[data-stat="success_bar"]');
    if (bar) {
      const rate = s.success_rate || 0;
      bar.style.width = `${rate}%`;
      bar.className = `meter-fill ${rate >= 90 ? "meter-good" : rate >= 60 ? "meter-warn" : "meter-bad"}`;
    }
    if (s.completed !== undefined) setStat("finished", `${fmt.number(s.completed)} completed · ${fmt.number(s.failed)} failed`);
    setStat("running", fmt.number(s.running));
    setStat("queued", fmt.number(s.queued));
    if (s.avg_duration !== undefined && s.avg_duration !== null) setStat("avg", `avg ${fmt.duration(s.avg_duration)} per run`);
  }
  async function loadStats() {
    try {
      const s = await SO.api("GET", "/api/stats");
      renderStats({
        ...s,
        running: s.by_status.running,
        queued: s.by_status.queued,
        completed: s.by_status.completed,
        failed: s.by_status.failed,
      });
    } catch (err) {
      /* the feed sends stats as soon as it connects */
    }
  }

  // -- table -----------------------------------------------------------------------
  function scriptCell(run) {
    const dir = fmt.dirname(run.script_path);
    const who = [run.created_by, run.source && run.source !== "api" ? run.source : null].filter(Boolean).join(" · ");
    return h(
      "td.col-script",
      null,
      h("a.script-name", { href: `/runs/${run.id}/`, title: run.script_path }, fmt.basename(run.script_path)),
      (() => {
        const slot = h("span.spark-slot", { dataset: { path: run.script_path } });
        fillSpark(slot);
        return slot;
      })(),
      run.task_name ? h("span.chip.chip-task", { title: "Launched by this scheduled task", dataset: { testid: "run-task" } }, `⏱ ${run.task_name}`) : null,
      run.args && run.args.length ? h("div.run-args.mono", { title: run.args.join(" "), dataset: { testid: "run-args" } }, run.args.join(" ")) : null,
      h("div.script-sub.muted", null, who || null, dir && who ? " · " : null, dir ? h("span.mono", null, dir) : null),
    );
  }

  // -- progress of running runs against the script's usual duration --------------------
  /** "about 2 min left" / "longer than usual" for a running run, from its script's p50/p95. */
  function progressOf(run, elapsed) {
    const usual = state.expected.get(run.script_path);
    if (!usual || !(usual.p50 > 0)) return null;
    if (elapsed > usual.p95) return { fraction: 1, over: true, text: "running longer than usual" };
    const left = Math.max(usual.p50 - elapsed, 0);
    const text = left < 1 ? "about to finish" : `about ${fmt.duration(left)} left`;
    return { fraction: Math.min(elapsed / usual.p50, 1), over: false, text };
  }
  function progressNode(run) {
    const node = h("div.run-progress", { dataset: { testid: "run-progress", since: run.started_at } });
    paintProgress(node, run);
    return node;
  }
  function paintProgress(node, run) {
    const elapsed = (Date.now() - new Date(run.started_at)) / 1000;
    const p = progressOf(run, elapsed);
    node.hidden = !p;
    if (!p) return;
    const usual = state.expected.get(run.script_path);
    const fill = h("span.progress-fill");
    fill.style.width = `${(p.fraction * 100).toFixed(1)}%`; // CSSOM, not a style attribute: the CSP allows it
    SO.clear(node).append(
      h("span.progress-track", { role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(p.fraction * 100)), "aria-label": `Progress against the usual ${fmt.duration(usual.p50)}` }, fill),
      h(`span.progress-text${p.over ? ".over" : ""}`, { title: `usually ${fmt.duration(usual.p50)} (p50 of ${usual.n}), p95 ${fmt.duration(usual.p95)}` }, p.text),
    );
    node.classList.toggle("over", p.over);
  }
  async function loadExpected() {
    const running = state.order.map((id) => state.rows.get(id)).filter((r) => r && r.status === "running");
    const paths = [...new Set(running.map((r) => r.script_path))].filter((p) => !state.expected.has(p)).slice(0, 100);
    if (!paths.length) return;
    const q = new URLSearchParams(paths.map((p) => ["script_path", p]));
    try {
      const found = await SO.api("GET", `/api/analytics/expected?${q}`);
      for (const [path, usual] of Object.entries(found)) state.expected.set(path, usual);
    } catch (err) {
      return; // progress is a nicety: the table stands without it
    }
    for (const node of SO.$$(".run-progress[data-since]", els.body)) {
      const run = state.rows.get(node.closest("tr").dataset.id);
      if (run) paintProgress(node, run);
    }
  }

  function durationOf(run) {
    if (run.duration !== null && run.duration !== undefined) return fmt.duration(run.duration);
    if (run.status === "running" && run.started_at) {
      return h(
        "span.duration-live",
        null,
        h("span.ticking", { dataset: { since: run.started_at } }, fmt.duration((Date.now() - new Date(run.started_at)) / 1000)),
        progressNode(run),
      );
    }
    return h("span.muted", null, "–");
  }

  function rowFor(run) {
    const tr = h("tr", { dataset: { id: run.id, status: run.status }, class: `status-${run.status}` });
    const cid = run.correlation_id || "";
    if (SELECTABLE) {
      const active = SO.isActive(run);
      tr.append(
        h(
          "td.col-select",
          null,
          h("input", {
            type: "checkbox",
            checked: state.selected.has(run.id),
            disabled: active,
            title: active ? "Stop it first: an active run cannot be deleted" : "Select for deletion",
            "aria-label": `Select run ${fmt.shortId(cid || run.id)}`,
            dataset: { select: run.id },
            onchange: (e) => {
              if (e.target.checked) state.selected.add(run.id);
              else state.selected.delete(run.id);
              renderSelection();
            },
          }),
        ),
      );
    }
    tr.append(
      h("td.col-id", null, h("a.mono.cid", { href: `/runs/${run.id}/`, title: `correlation id ${cid}\nrun id ${run.id}` }, fmt.shortId(cid || run.id))),
      scriptCell(run),
      h("td.col-status", null, SO.runBadges(run)),
      h("td.col-time", null, SO.relTime(run.started_at || run.created_at)),
      h("td.col-num", null, durationOf(run)),
      h("td.col-num.col-exit", null, run.exit_code === null || run.exit_code === undefined ? h("span.muted", null, "–") : h(`span.exit.${run.exit_code === 0 ? "exit-ok" : "exit-bad"}`, null, String(run.exit_code))),
      h(
        "td.col-actions",
        { dataset: { allows: JSON.stringify(SO.runAllows(run)) } },
        h(
          "span.actions",
          null,
          h("a.btn.btn-sm.btn-link", { href: `/runs/${run.id}/#output`, dataset: { action: "logs" } }, "Logs"),
          h("a.btn.btn-sm.btn-link", { href: `/runs/${run.id}/`, dataset: { action: "details" } }, "Details"),
          SO.can.execute ? h("a.btn.btn-sm.btn-link", { href: `/?rerun=${run.id}#launch`, dataset: { action: "rerun" }, title: "A fresh run with this run's parameters, changed as you like" }, "Run again…") : null,
          SO.actionButtons(run, { applicableOnly: true, onDone: (action, result) => afterAction(run, action, result) }),
        ),
      ),
    );
    return tr;
  }

  function afterAction(run, action, result) {
    if (action === "restart") {
      state.highlight.add(result.id);
      scheduleReload();
    } else if (result && result.id === run.id && !feed.open) {
      upsert(result); // (an open feed brings the run's changes, in order: see SO.actionButtons)
    }
  }

  function renderEmpty() {
    const cell = h("td.empty", { colspan: String(COLUMNS) });
    if (list.active()) {
      cell.append(
        h("div.empty-title", null, "No runs match these filters"),
        h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: list.clear }, "Clear filters"),
      );
    } else {
      cell.append(
        h("div.empty-title", null, "No runs yet"),
        h("div.muted", null, SO.can.execute ? "Launch a script above — its output appears here live." : "Runs appear here as soon as someone launches a script."),
      );
    }
    SO.clear(els.body).append(h("tr.empty-row", null, cell));
  }

  // -- bulk delete -------------------------------------------------------------------
  const bulk = { bar: $("#bulk-bar"), count: $("#bulk-count"), all: $("#select-all"), del: $("#bulk-delete") };
  function renderSelection() {
    if (!SELECTABLE || !bulk.bar) return;
    const n = state.selected.size;
    bulk.bar.hidden = n === 0;
    bulk.count.textContent = `${n} run${n === 1 ? "" : "s"} selected`;
    const selectable = state.order.filter((id) => { const r = state.rows.get(id); return r && !SO.isActive(r); });
    bulk.all.checked = selectable.length > 0 && selectable.every((id) => state.selected.has(id));
    bulk.all.indeterminate = !bulk.all.checked && selectable.some((id) => state.selected.has(id));
  }
  if (SELECTABLE && bulk.bar) {
    bulk.all.hidden = false;
    bulk.all.addEventListener("change", () => {
      for (const id of state.order) {
        const r = state.rows.get(id);
        if (!r || SO.isActive(r)) continue;
        if (bulk.all.checked) state.selected.add(id);
        else state.selected.delete(id);
      }
      for (const box of SO.$$("input[data-select]", els.body)) box.checked = state.selected.has(box.dataset.select);
      renderSelection();
    });
    $("#bulk-clear").addEventListener("click", () => {
      state.selected.clear();
      for (const box of SO.$$("input[data-select]", els.body)) box.checked = false;
      renderSelection();
    });
    SO.confirmButton(bulk.del, "Really delete them?", async () => {
      const ids = [...state.selected];
      bulk.del.disabled = true;
      try {
        const result = await SO.api("DELETE", "/api/runs", ids);
        const n = (result && result.deleted) || ids.length;
        SO.toast(`Deleted ${n} run${n === 1 ? "" : "s"}.`, { kind: "success" });
        state.selected.clear();
        renderSelection();
        load();
      } catch (err) {
        SO.toast(`Could not delete the runs: ${err.message}`, { kind: "error" });
      } finally {
        bulk.del.disabled = false;
      }
    });
  } else {
    const head = $("#runs-table thead .col-select");
    if (head) head.remove();
  }

  function renderTable() {
    renderSelection();
    if (!state.order.length) return renderEmpty();
    const frag = document.createDocumentFragment();
    const shown = new Map(SO.$$("tr[data-id]", els.body).map((tr) => [tr.dataset.id, tr]));
    for (const id of state.order) {
      const run = state.rows.get(id);
      if (!run) continue;
      const tr = rowFor(run);
      const old = shown.get(id);
      if (old) keepActions(old, tr);
      if (state.highlight.has(id)) {
        tr.classList.add("flash");
        state.highlight.delete(id);
      }
      frag.append(tr);
    }
    SO.clear(els.body).append(frag);
  }

  let reloadTimer = null;
  function scheduleReload(delay = 300) {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, delay);
  }

  /** A row changed (feed or action): redraw it in place if it is on this page. */
  function upsert(run) {
    const known = state.rows.get(run.id);
    if (!known) return false;
    const merged = { ...known, ...run };
    const statusChanged = known.status !== merged.status || known.run_status !== merged.run_status || known.paused !== merged.paused;
    state.rows.set(run.id, merged);
    if (merged.status === "running" && !state.expected.has(merged.script_path)) loadExpected();
    const old = els.body.querySelector(`tr[data-id="${CSS.escape(run.id)}"]`);
    if (old) {
      const tr = rowFor(merged);
      if (statusChanged) tr.classList.add("flash");
      else keepActions(old, tr);
      old.replaceWith(tr);
    }
    return true;
  }

  /**
   * A live row is redrawn several times a second (output counters, samples), and the whole
   * table when the list is loaded again (a run created, a reconnect). When the actions that
   * apply did not change, the new row keeps the old row's buttons: a click whose press and
   * release straddle a redraw would otherwise land on two different buttons and never fire.
   */
  function keepActions(old, tr) {
    const kept = old.querySelector("td.col-actions");
    const fresh = tr.querySelector("td.col-actions");
    if (kept && fresh && kept.dataset.allows === fresh.dataset.allows) fresh.replaceWith(kept);
  }

  // -- feed ------------------------------------------------------------------------
  function onFeed(msg) {
    const data = msg.data || {};
    if (msg.type === "stats") renderStats(data);
    else if (msg.type === "run_created") {
      state.highlight.add(data.id);
      if (state.page === 1) scheduleReload();
      else {
        state.count += 1;
        list.renderPager();
      }
    } else if (msg.type === "run_updated") {
      const shown = upsert(data);
      // A status filter may now include or exclude it: ask the API again.
      if (state.status || state.run_status) scheduleReload(600);
      else if (!shown && state.page === 1 && !state.search) scheduleReload(600);
    }
  }

  let wasLive = false;
  const feed = new SO.LiveSocket(() => "/ws/runs/", {
    onMessage: onFeed,
    onState: (s) => {
      SO.setLive(s);
      if (s !== "live") return;
      // The feed only reports changes from the moment it connects: after a reconnect,
      // ask the API for what was missed meanwhile.
      if (wasLive) {
        scheduleReload(0);
        loadStats();
      }
      wasLive = true;
    },
  });

  // Durations and progress of running rows tick every second without a re-render.
  setInterval(() => {
    for (const node of SO.$$(".ticking[data-since]")) {
      node.textContent = fmt.duration((Date.now() - new Date(node.dataset.since)) / 1000);
    }
    for (const node of SO.$$(".run-progress[data-since]", els.body)) {
      const run = state.rows.get(node.closest("tr").dataset.id);
      if (run && run.status === "running") paintProgress(node, run);
    }
  }, 1000);

  // -- launch form -------------------------------------------------------------------
  const form = $("#launch-form");
  if (form) setupLaunchForm(form);

  function setupLaunchForm(form) {
    const retryToggle = $("#retry-toggle");
    const retryFields = $("#retry-fields");
    const syncRetry = () => retryFields.classList.toggle("dimmed", !retryToggle.checked);
    retryToggle.addEventListener("change", syncRetry);
    syncRetry();
    $("#plan-close").addEventListener("click", () => ($("#plan").hidden = true));
    libraryLaunch = setupLibraryLaunch(form);
    setupRerun(form);

    // Launch is the form's only submit button, so Enter in a field launches (the browser's
    // implicit submission uses the first submit button); Dry run is a plain button.
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitLaunch(form, { dryRun: false, clicked: event.submitter || $("[data-testid=launch]", form) });
    });
    const dryButton = $("[data-testid=dry-run]", form);
    dryButton.addEventListener("click", () => submitLaunch(form, { dryRun: true, clicked: dryButton }));
  }

  let launching = false;
  /** Check the form and queue the run, or (``dryRun``) show what would run. */
  /** The run request the form describes, or null after showing what is wrong. */
  function formPayload(form, lib) {
    const f = form.elements;
    const payload = { script_path: f.script_path.value.trim() };
    if (!payload.script_path) {
      SO.showFieldErrors(form, { details: { script_path: ["Which script should run?"] } });
      return null;
    }
    if (lib) {
      // The parameter fields and the free arguments, as one string split server-side.
      const built = lib.args(f.args.value);
      if (Object.keys(built.errors).length) {
        SO.showFieldErrors(form, { details: built.errors });
        return null;
      }
      if (built.value) payload.args = built.value;
    } else if (f.args.value.trim()) payload.args = f.args.value; // split server-side, like a shell
    if (f.timeout.value !== "") payload.timeout = Number(f.timeout.value);
    payload.log_level = f.log_level.value;
    if (f.working_dir.value.trim()) payload.working_dir = f.working_dir.value.trim();
    const { env, errors } = parseEnv(f.env_vars.value);
    if (errors.length) {
      SO.showFieldErrors(form, { details: { env_vars: errors } });
      return null;
    }
    if (Object.keys(env).length) payload.env_vars = env;
    payload.stream_output = f.stream_output.checked;
    if (f.monitor_interval.value !== "") payload.monitor_interval = Number(f.monitor_interval.value);
    payload.enable_history = f.enable_history.checked;
    payload.retry_on_failure = f.retry_on_failure.checked;
    if (payload.retry_on_failure) {
      for (const name of ["retry_max_attempts", "retry_initial_delay", "retry_max_delay", "retry_multiplier", "retry_max_time"]) {
        if (f[name].value !== "") payload[name] = Number(f[name].value);
      }
      payload.retry_strategy = f.retry_strategy.value;
    }
    return payload;
  }

  async function submitLaunch(form, { dryRun, clicked }) {
    if (launching) return; // a double Enter or click queues one run, not two
    SO.clearFieldErrors(form);
    $("#plan").hidden = true; // a plan is only valid for the values it was made from
    const lib = libraryLaunch && libraryLaunch.script ? libraryLaunch : null;
    const payload = formPayload(form, lib);
    if (!payload) return;
    if (dryRun) payload.dry_run = true;
    // A library script runs through its own endpoint, which uses the script's own path
    // (and refuses script_path) and links the run to the script; with a preset chosen,
    // through the preset's, which adds the preset's environment (never sent to pages).
    let url = "/api/run";
    if (rerunOf) {
      url = `/api/runs/${encodeURIComponent(rerunOf.id)}/rerun`;
      delete payload.script_path; // the original's script
      if (!payload.env_vars) payload.env_vars = {}; // every line removed: no environment
    } else if (lib) {
      url = `/api/library/scripts/${encodeURIComponent(lib.script.id)}/run`;
      delete payload.script_path;
      const preset = lib.preset();
      if (preset && !lib.force()) url = `/api/library/presets/${preset.id}/run`;
      else if (lib.force()) payload.force = true;
    }

    const buttons = SO.$$(".launch-buttons button", form);
    buttons.forEach((b) => (b.disabled = true));
    if (clicked) clicked.classList.add("busy");
    launching = true;
    try {
      const result = await SO.api("POST", url, payload);
      // A typed path and a library script launch alike: the form stays (to launch again),
      // a toast links to the new run, which the table shows at once.
      if (dryRun) showPlan(result);
      else {
        $("#plan").hidden = true;
        state.highlight.add(result.id);
        SO.toast(`Queued ${fmt.basename(result.script_path)} (${fmt.shortId(result.id)}).`, {
          kind: "success",
          link: { href: `/runs/${result.id}/`, label: "Watch it live →" },
        });
        if (state.page === 1) scheduleReload(0);
      }
    } catch (err) {
      SO.showFieldErrors(form, lib ? paramErrors(err, lib.parameters) : err);
    } finally {
      launching = false;
      buttons.forEach((b) => (b.disabled = false));
      if (clicked) clicked.classList.remove("busy");
    }
  }

  // -- a library script in the launch form (/?script_id=<id> or #library=<id>) ---------------
  function setupLibraryLaunch(form) {
    const box = $("#library-launch");
    const hashId = /^#library=([\w-]+)$/.exec(location.hash);
    const lib = {
      id: params.get("script_id") || (hashId ? hashId[1] : null),
      script: null,
      parameters: [],
      force: () => !!($("#library-force") && $("#library-force").checked && !$("#library-archived").hidden),
      args: (extra) => libraryArgs(form, lib.parameters, extra),
      open: () => {},
      presets: [],
      preset: () => lib.presets.find((p) => String(p.id) === ($("#preset-select") || {}).value) || null,
    };
    if (!box) return lib;
    const f = form.elements;
    const hint = f.args.closest(".field").querySelector(".field-hint");
    const originalHint = hint.textContent;
    const originalPlaceholder = f.args.placeholder;
    $("#library-clear").addEventListener("click", () => {
      lib.id = null;
      lib.script = null;
      lib.parameters = [];
      box.hidden = true;
      SO.clear($("#library-params-grid"));
      f.script_path.readOnly = false;
      f.script_path.value = "";
      hint.textContent = originalHint;
      f.args.placeholder = originalPlaceholder;
      list.syncUrl();
      f.script_path.focus();
    });
    /** Fill the form for library script ``id`` (the URL's ?script_id=, or the picker). */
    lib.open = (id) => {
      lib.id = String(id);
      lib.script = null;
      if (libraryLaunch === lib) list.syncUrl(); // (during set-up the URL already says so)
      return SO.api("GET", `/api/library/scripts/${encodeURIComponent(lib.id)}`)
        .then((script) => {
          if (lib.id !== String(id)) return;
          lib.script = script;
          lib.parameters = script.parameters || [];
          f.script_path.value = script.path;
          f.script_path.readOnly = true;
          $("#library-relpath").textContent = script.relpath;
          $("#library-root").textContent = script.root_name ? `in ${script.root_name}` : "";
          $("#library-open").href = `/library/#script=${encodeURIComponent(script.id)}`;
          $("#library-archived").hidden = script.status !== "archived";
          const grid = SO.clear($("#library-params-grid"));
          lib.parameters.forEach((p, i) => grid.append(libraryParamField(p, i)));
          $("#library-params").hidden = !lib.parameters.length;
          hint.textContent = lib.parameters.length ? "Extra arguments, after the parameters above; split like a shell would." : originalHint;
          f.args.placeholder = lib.parameters.length ? "" : originalPlaceholder;
          box.hidden = false;
          loadPresets(lib, params.get("preset") || "").then(() => {
            const preset = lib.preset(); // ?preset= (the library sheet's "Launch with it…")
            if (preset) applyPreset(form, lib, preset);
            if (libraryLaunch === lib) list.syncUrl();
          });
          const first = grid.querySelector("input, select") || $("[data-testid=launch]");
          first.focus();
        })
        .catch((err) => {
          SO.showFieldErrors(form, { details: { non_field_errors: [`Could not load library script ${id}: ${err.message}`] } });
        });
    };
    if (lib.id) lib.open(lib.id);
    setupPicker(form, lib);
    setupPresets(form, lib);
    return lib;
  }

  // -- run again with changes (/?rerun=<run id>) -------------------------------------
  function setupRerun(form) {
    const id = params.get("rerun");
    const note = $("#rerun-note");
    if (!id || !note) return;
    const f = form.elements;
    SO.api("GET", `/api/runs/${encodeURIComponent(id)}`)
      .then((run) => {
        rerunOf = run;
        list.syncUrl();
        f.script_path.value = run.script_path;
        f.script_path.readOnly = true;
        f.args.value = (run.args || []).map(quote).join(" ");
        f.timeout.value = run.timeout === null || run.timeout === undefined ? "" : String(run.timeout);
        f.log_level.value = run.log_level || "INFO";
        f.working_dir.value = run.working_dir || "";
        f.env_vars.value = Object.entries(run.env_vars || {}).map(([k, v]) => `${k}=${v}`).join("\n");
        f.monitor_interval.value = String(run.monitor_interval ?? f.monitor_interval.value);
        f.stream_output.checked = !!run.stream_output;
        f.enable_history.checked = run.enable_history !== false;
        f.retry_on_failure.checked = !!run.retry_on_failure;
        f.retry_on_failure.dispatchEvent(new Event("change"));
        for (const name of ["retry_max_attempts", "retry_initial_delay", "retry_max_delay", "retry_multiplier", "retry_max_time", "retry_strategy"]) {
          if (run[name] !== null && run[name] !== undefined) f[name].value = String(run[name]);
        }
        if (run.working_dir || Object.keys(run.env_vars || {}).length || run.retry_on_failure) $("#advanced").open = true;
        $("#rerun-script").textContent = fmt.basename(run.script_path);
        const link = $("#rerun-link");
        link.href = `/runs/${run.id}/`;
        link.textContent = fmt.shortId(run.correlation_id || run.id);
        note.hidden = false;
        f.args.focus();
      })
      .catch((err) => SO.showFieldErrors(form, { details: { non_field_errors: [`Could not load run ${id}: ${err.message}`] } }));
    $("#rerun-cancel").addEventListener("click", () => {
      rerunOf = null;
      note.hidden = true;
      f.script_path.readOnly = false;
      form.reset();
      list.syncUrl();
      f.script_path.focus();
    });
  }

  // -- presets: named run options of a library script ---------------------------------
  async function loadPresets(lib, selectId = "") {
    const select = $("#preset-select");
    if (!select || !lib.script) return;
    try {
      lib.presets = (await SO.api("GET", `/api/library/scripts/${encodeURIComponent(lib.script.id)}/presets`)).results || [];
    } catch (err) {
      lib.presets = [];
    }
    const mine = lib.presets.filter((p) => !p.shared);
    const shared = lib.presets.filter((p) => p.shared);
    const option = (p) => h("option", { value: String(p.id) }, p.name);
    SO.clear(select).append(
      h("option", { value: "" }, lib.presets.length ? "none" : "none saved yet"),
      mine.length ? h("optgroup", { label: "Yours" }, ...mine.map(option)) : null,
      shared.length ? h("optgroup", { label: "Shared" }, ...shared.map(option)) : null,
    );
    select.value = String(selectId);
    presetChosen(lib);
  }

  function presetChosen(lib) {
    const preset = lib.preset();
    $("#preset-delete").hidden = !(preset && preset.can_change);
    const env = $("#preset-env");
    const names = preset && preset.options.env_vars ? Object.keys(preset.options.env_vars) : [];
    env.hidden = !names.length;
    env.textContent = names.length ? `Environment from the preset: ${names.join(", ")} (values stay on the server)` : "";
  }

  /** Fill the form with a preset's options (its environment values stay on the server). */
  function applyPreset(form, lib, preset) {
    const f = form.elements;
    const o = preset.options;
    for (const input of SO.$$("#library-params-grid input, #library-params-grid select")) {
      if (input.type === "checkbox") input.checked = false;
      else input.value = "";
    }
    f.args.value = (o.args || []).map(quote).join(" ");
    f.timeout.value = o.timeout === undefined || o.timeout === null ? "" : String(o.timeout);
    if (o.log_level) f.log_level.value = o.log_level;
    f.working_dir.value = o.working_dir || "";
    f.env_vars.value = "";
    if (o.monitor_interval !== undefined) f.monitor_interval.value = String(o.monitor_interval);
    if (o.stream_output !== undefined) f.stream_output.checked = !!o.stream_output;
    if (o.enable_history !== undefined) f.enable_history.checked = !!o.enable_history;
    if (o.retry_on_failure !== undefined) {
      f.retry_on_failure.checked = !!o.retry_on_failure;
      f.retry_on_failure.dispatchEvent(new Event("change"));
    }
    for (const name of ["retry_max_attempts", "retry_initial_delay", "retry_max_delay", "retry_multiplier", "retry_max_time", "retry_strategy"]) {
      if (o[name] !== undefined && o[name] !== null) f[name].value = String(o[name]);
    }
    const advanced = o.working_dir || o.env_vars || o.retry_on_failure || o.monitor_interval !== undefined;
    if (advanced) $("#advanced").open = true;
  }

  function setupPresets(form, lib) {
    const select = $("#preset-select");
    if (!select) return;
    const saveBox = $("#preset-save");
    const nameInput = $("#preset-name");
    const error = form.querySelector('[data-error-for="preset"]');
    select.addEventListener("change", () => {
      const preset = lib.preset();
      if (preset) applyPreset(form, lib, preset);
      presetChosen(lib);
      list.syncUrl(); // a reload (or a shared link) keeps the preset
    });
    $("#preset-save-open").addEventListener("click", () => {
      saveBox.hidden = !saveBox.hidden;
      const current = lib.preset();
      if (!saveBox.hidden) {
        nameInput.value = current && current.can_change ? current.name : "";
        nameInput.focus();
      }
    });
    nameInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault(); // saves the preset; never launches
        $("#preset-save-btn").click();
      }
    });
    $("#preset-save-btn").addEventListener("click", async () => {
      error.textContent = "";
      const payload = formPayload(form, lib);
      if (!payload) return;
      delete payload.script_path;
      const current = lib.preset();
      const name = nameInput.value.trim();
      // Saving under the chosen preset's name updates it, keeping its environment values.
      const updating = current && current.can_change && name.toLowerCase() === current.name.toLowerCase();
      if (current && current.options.env_vars) {
        payload.env_vars = { ...Object.fromEntries(Object.keys(current.options.env_vars).map((k) => [k, "********"])), ...(payload.env_vars || {}) };
        if (!updating) delete payload.env_vars; // a new preset cannot copy values it never saw
      }
      const shared = !!($("#preset-shared") && $("#preset-shared").checked);
      try {
        const saved = updating
          ? await SO.api("PATCH", `/api/library/presets/${current.id}`, { name, options: payload })
          : await SO.api("POST", `/api/library/scripts/${encodeURIComponent(lib.script.id)}/presets`, { name, options: payload, shared });
        saveBox.hidden = true;
        SO.toast(`Preset “${saved.name}” saved.`, { kind: "success" });
        await loadPresets(lib, saved.id);
      } catch (err) {
        const details = (err && err.details) || {};
        error.textContent = Object.entries(details).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`).join(" ") || err.message;
      }
    });
    SO.confirmButton($("#preset-delete"), "Really delete it?", async () => {
      const preset = lib.preset();
      if (!preset) return;
      try {
        await SO.api("DELETE", `/api/library/presets/${preset.id}`);
        SO.toast(`Preset “${preset.name}” deleted.`, { kind: "success" });
        await loadPresets(lib);
      } catch (err) {
        SO.toast(`Could not delete the preset: ${err.message}`, { kind: "error" });
      }
    });
  }

  // -- the script picker: the path field searches the library as you type -------------
  function setupPicker(form, lib) {
    const input = form.elements.script_path;
    const listbox = $("#script-picker");
    if (!input || !listbox) return;
    let items = [];
    let active = -1;
    let seq = 0;
    let timer = null;
    const open = () => {
      listbox.hidden = items.length === 0;
      input.setAttribute("aria-expanded", String(!listbox.hidden));
    };
    const close = () => {
      listbox.hidden = true;
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    };
    const highlight = (i) => {
      active = i;
      SO.$$("[role=option]", listbox).forEach((node, n) => node.setAttribute("aria-selected", String(n === i)));
      if (i >= 0) {
        input.setAttribute("aria-activedescendant", `picker-opt-${i}`);
        listbox.children[i].scrollIntoView({ block: "nearest" });
      } else input.removeAttribute("aria-activedescendant");
    };
    const choose = (i) => {
      const script = items[i];
      if (!script) return;
      close();
      lib.open(script.id);
    };
    const render = () => {
      // A newer answer keeps the highlighted script highlighted if it is still listed.
      const kept = active >= 0 && listbox.children[active] ? listbox.children[active].dataset.scriptId : null;
      SO.clear(listbox);
      items.forEach((script, i) => {
        const last = script.last_run_status || script.last_status;
        listbox.append(
          h(
            "li.picker-option",
            { id: `picker-opt-${i}`, role: "option", "aria-selected": "false", dataset: { scriptId: String(script.id) }, onmousedown: (e) => e.preventDefault(), onclick: () => choose(i) },
            h("span.picker-main", null, h("strong.mono", null, script.relpath), h("span.chip.picker-lang", null, script.language || "?"),
              last ? h(`span.badge.badge-status-${script.last_status || "none"}`, { title: "Its last run" }, last) : h("span.muted.small", null, "never run")),
            script.description ? h("span.picker-desc.muted", null, script.description) : null,
          ),
        );
      });
      open();
      highlight(kept ? items.findIndex((script) => String(script.id) === kept) : -1);
    };
    const search = () => {
      const mine = ++seq;
      const q = new URLSearchParams({ q: input.value.trim(), limit: "8" });
      SO.api("GET", `/api/library/picker?${q}`)
        .then((data) => {
          if (mine !== seq || document.activeElement !== input || input.readOnly) return;
          items = data.results || [];
          render();
        })
        .catch(() => close()); // typing a path still works without the picker
    };
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", "script-picker");
    input.setAttribute("aria-expanded", "false");
    input.addEventListener("focus", () => !input.readOnly && search());
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(search, 150);
    });
    input.addEventListener("blur", () => setTimeout(close, 100));
    // Typed into before this script ran (a slow page load): search what is there now.
    if (document.activeElement === input && !input.readOnly && input.value.trim()) search();
    input.addEventListener("keydown", (event) => {
      if (listbox.hidden) return;
      if (event.key === "ArrowDown") {
        event.preventDefault();
        highlight(Math.min(active + 1, items.length - 1));
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        highlight(Math.max(active - 1, -1));
      } else if (event.key === "Enter" && active >= 0) {
        event.preventDefault(); // choose the script; Enter on a typed path still launches
        choose(active);
      } else if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
  }

  function paramKind(p) {
    if (p.type === "flag" || ["store_true", "store_false", "store_const", "append_const"].includes(p.action)) return "flag";
    if (p.type === "count" || p.action === "count") return "count";
    if (Array.isArray(p.choices) && p.choices.length) return "choice";
    return "value";
  }
  const paramFlag = (p) => (p.flags || []).find((x) => x.startsWith("--")) || (p.flags || [])[0] || p.name;
  const paramMany = (p) => p.nargs === "*" || p.nargs === "+" || (typeof p.nargs === "number" && p.nargs > 1);

  /** One labelled input per argparse argument: flag → checkbox, choices → select. */
  function libraryParamField(p, i) {
    const id = `lib-param-${i}`;
    const name = `param:${i}`;
    const kind = paramKind(p);
    const many = paramMany(p);
    const hasDefault = p.default !== null && p.default !== undefined;
    const help = p.help ? h("span.field-hint", { id: `${id}-help` }, p.help) : null;
    const error = h("span.field-error", { dataset: { errorFor: name } });
    const described = p.help ? `${id}-help` : undefined;
    if (kind === "flag") {
      return h(
        "div.field",
        { dataset: { param: p.name } },
        h("label.check", null, h("input", { type: "checkbox", id, name, "aria-describedby": described }), h("span.mono", null, paramFlag(p))),
        help,
        error,
      );
    }
    let input;
    if (kind === "choice") {
      const none = hasDefault ? `default (${p.default})` : p.required ? "choose…" : "not set";
      input = h("select", { id, name }, h("option", { value: "" }, none), ...p.choices.map((c) => h("option", { value: String(c) }, String(c))));
    } else if (kind === "count") {
      input = h("input", { type: "number", id, name, min: "0", step: "1", placeholder: "0" });
    } else if (!many && (p.type === "int" || p.type === "float")) {
      input = h("input", { type: "number", id, name, step: p.type === "int" ? "1" : "any", placeholder: hasDefault ? `default: ${p.default}` : "" });
    } else {
      const placeholder = hasDefault ? `default: ${Array.isArray(p.default) ? p.default.join(" ") : p.default}` : many ? "values separated by spaces" : p.metavar || "";
      input = h("input", { type: "text", id, name, spellcheck: "false", placeholder });
    }
    if (described) input.setAttribute("aria-describedby", described);
    if (p.required) {
      input.required = true;
      input.setAttribute("aria-required", "true");
    }
    const notes = [p.positional ? "positional" : null, p.required ? "required" : null, many ? "several values" : null, ["int", "float"].includes(p.type) ? p.type : null];
    const meta = notes.filter(Boolean).join(" · ");
    return h(
      "div.field",
      { dataset: { param: p.name } },
      h(
        "label.field-label",
        { for: id },
        h("span.mono", null, p.positional ? p.metavar || p.name : paramFlag(p)),
        p.required ? h("span.req", { "aria-hidden": "true" }, " *") : null,
        meta ? h("span.param-meta", null, ` ${meta}`) : null,
      ),
      input,
      help,
      error,
    );
  }

  /** The server names a refused argument ``args.<name>``: put it on that parameter's field. */
  function paramErrors(err, parameters) {
    const details = (err && err.details) || {};
    const mapped = {};
    for (const [field, messages] of Object.entries(details)) {
      const i = field.startsWith("args.") ? parameters.findIndex((p) => p.name === field.slice(5)) : -1;
      mapped[i >= 0 ? `param:${i}` : field] = messages;
    }
    return { message: err && err.message, details: mapped };
  }

  const INT = /^[-+]?\d+$/;
  /** What argparse would say of a value of an ``int``/``float`` parameter, or null. */
  function typeProblem(p, value) {
    const tokens = paramMany(p) ? value.split(/\s+/).filter(Boolean) : [value];
    for (const token of tokens) {
      if (p.type === "int" && !INT.test(token)) return `invalid int value: '${token}' (a whole number is expected)`;
      if (p.type === "float" && (token === "" || !Number.isFinite(Number(token)))) return `invalid float value: '${token}'`;
    }
    if (typeof p.nargs === "number" && tokens.length !== p.nargs) return `expected ${p.nargs} values, got ${tokens.length}`;
    return null;
  }

  /** The parameter fields (and the free arguments) as one shell-quoted string, or errors. */
  function libraryArgs(form, parameters, extra) {
    const options = [];
    const positionals = [];
    const errors = {};
    parameters.forEach((p, i) => {
      const input = form.elements[`param:${i}`];
      if (!input) return;
      const kind = paramKind(p);
      const flag = quote(paramFlag(p));
      if (kind === "flag") {
        if (input.checked) options.push(flag);
        return;
      }
      const value = input.value.trim();
      if (kind === "count") {
        for (let n = 0; n < Math.min(parseInt(value || "0", 10) || 0, 20); n += 1) options.push(flag);
        return;
      }
      if (!value) {
        if (p.required) errors[`param:${i}`] = [`${p.positional ? p.metavar || p.name : paramFlag(p)} is required by the script.`];
        return;
      }
      const problem = typeProblem(p, value);
      if (problem) {
        errors[`param:${i}`] = [problem];
        return;
      }
      // Several values are typed as a shell would take them; one value is quoted whole.
      const tokens = paramMany(p) ? value : quote(value);
      if (p.positional) positionals.push(tokens);
      else options.push(`${flag} ${tokens}`);
    });
    const dashes = positionals.some((t) => /^'?-/.test(t)) ? ["--"] : []; // a value like "-5" is not an option
    const value = [...options, (extra || "").trim(), ...dashes, ...positionals].filter(Boolean).join(" ");
    return { errors, value };
  }

  function quote(arg) {
    return /^[A-Za-z0-9_./=:,@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
  }

  function showPlan(plan) {
    const dl = SO.clear($("#plan-body"));
    const row = (label, value) => dl.append(h("dt", null, label), h("dd", null, value));
    row("Command", h("code.plan-cmd", null, plan.command.map(quote).join(" ")));
    row("Working directory", h("code", null, plan.cwd));
    row("Environment", h("span.chips", null, plan.env.map((name) => h("span.chip.mono", null, name))));
    row("Timeout", plan.timeout ? `${plan.timeout} s (then SIGTERM, SIGKILL after ${plan.stop_grace} s)` : "none");
    row("Attempts", plan.max_attempts > 1 ? `up to ${plan.max_attempts} (${plan.retry_strategy})` : "1 (no retry)");
    if (plan.retry_delays && plan.retry_delays.length && plan.max_attempts > 1) {
      row("Retry delays", plan.retry_delays.map((d) => `${Number(d).toFixed(2)} s`).join(" → "));
    }
    $("#plan").hidden = false;
    $("#plan").scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  // -- start -------------------------------------------------------------------------
  loadStats();
  load();
  feed.connect();
})();
