/* Scheduler page: the tasks table (live), one task's details and history, the
 * dependency graph (SVG), firing events, and the create/edit form with its cron preview.
 *
 * Everything goes through /api/scheduler/ (see scheduler/pages.py). Text from the
 * server is only ever inserted with textContent / text nodes (SO.h).
 */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;

  const root = $("#scheduler");
  const can = { run: root.dataset.canRun === "1", manage: root.dataset.canManage === "1" };
  const API = "/api/scheduler";
  const POLL_MS = 5000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const pad = (n) => String(n).padStart(2, "0");

  // -- state -----------------------------------------------------------------------
  const params = new URLSearchParams(location.search);
  const state = {
    search: params.get("search") || "",
    schedule_type: params.get("schedule_type") || "",
    enabled: params.get("enabled") || "",
    event: params.get("event") || "",
    page: Math.max(1, parseInt(params.get("page") || "1", 10) || 1),
    pageSize: parseInt(params.get("page_size") || "25", 10) || 25,
    count: 0,
    tasks: [],
    loaded: false,
    graph: { nodes: [], edges: [] },
    graphSig: "",
    lastOk: null, // when the list last loaded
    failing: false,
  };

  const els = {
    body: $("#tasks-body"),
    wrap: $("#tasks-wrap"),
    info: $("#pager-info"),
    prev: $("#page-prev"),
    next: $("#page-next"),
    pageNum: $("#page-num"),
    pageSize: $("#page-size"),
    search: $("#f-search"),
    type: $("#f-type"),
    enabled: $("#f-enabled"),
    eventFilter: $("#f-event"),
    clear: $("#f-clear"),
    graph: $("#graph"),
    graphNote: $("#graph-note"),
  };

  // -- small helpers ---------------------------------------------------------------
  function quote(arg) {
    return /^[A-Za-z0-9_./=:,@%+-]+$/.test(arg) ? arg : `'${String(arg).replace(/'/g, "'\\''")}'`;
  }

  /** Split arguments like a POSIX shell would (quotes and backslashes; no expansion). */
  function splitArgs(text) {
    const out = [];
    let cur = "";
    let inArg = false;
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) throw new Error("A single quote is not closed.");
        cur += text.slice(i + 1, end);
        inArg = true;
        i = end + 1;
      } else if (c === '"') {
        let closed = false;
        i += 1;
        inArg = true;
        while (i < text.length) {
          const d = text[i];
          if (d === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) {
            cur += text[i + 1];
            i += 2;
          } else if (d === '"') {
            closed = true;
            i += 1;
            break;
          } else {
            cur += d;
            i += 1;
          }
        }
        if (!closed) throw new Error("A double quote is not closed.");
      } else if (c === "\\" && i + 1 < text.length) {
        cur += text[i + 1];
        inArg = true;
        i += 2;
      } else if (/\s/.test(c)) {
        if (inArg) out.push(cur);
        cur = "";
        inArg = false;
        i += 1;
      } else {
        cur += c;
        inArg = true;
        i += 1;
      }
    }
    if (inArg) out.push(cur);
    return out;
  }

  /** "in 4m 12s" until an ISO time; "due now" once it has passed. */
  function countdown(iso) {
    const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    if (Number.isNaN(s)) return "–";
    if (s <= 0) return "due now";
    if (s < 60) return `in ${s} s`;
    if (s < 3600) return `in ${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `in ${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
    return `in ${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }
  function countdownNode(iso, tag = "span") {
    return h(`${tag}.countdown`, { dataset: { countdown: iso }, title: fmt.dateTime(iso) }, countdown(iso));
  }

  /** A time as the clock shows it in ``tz`` ("Mon, 06 Jan 2025, 02:30 CET"). */
  function inZone(iso, tz) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    try {
      return new Intl.DateTimeFormat("en-GB", {
        timeZone: tz || undefined,
        weekday: "short",
        year: "numeric",
        month: "short",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
        timeZoneName: "short",
      }).format(d);
    } catch (err) {
      return fmt.dateTime(d); // an unknown zone name: the browser's own time
    }
  }

  function intervalWords(seconds) {
    const s = Number(seconds);
    if (!s || s < 0) return "";
    const units = [
      [86400, "day"],
      [3600, "hour"],
      [60, "minute"],
      [1, "second"],
    ];
    for (const [size, word] of units) {
      if (s % size === 0) {
        const n = s / size;
        return n === 1 ? `every ${word}` : `every ${fmt.number(n)} ${word}s`;
      }
    }
    return `every ${s} seconds`;
  }

  function scriptLabel(task) {
    if (task.script_id) return `${task.script_path || "library script"} (library #${task.script_id})`;
    return task.script_path || "–";
  }

  /** Re-render inside ``container`` without losing the keyboard focus of a [data-action] button. */
  function keepFocus(container, render) {
    const active = document.activeElement;
    const inside = active && container.contains(active) ? active : null;
    const action = inside && inside.dataset ? inside.dataset.action : null;
    const row = inside && inside.closest("[data-id]");
    const rowId = row ? row.dataset.id : null;
    render();
    if (!inside || document.activeElement === inside || !action) return;
    const scope = rowId ? container.querySelector(`[data-id="${CSS.escape(rowId)}"]`) : container;
    const again = scope && scope.querySelector(`[data-action="${CSS.escape(action)}"]`);
    if (again) again.focus();
  }

  function taskById(id) {
    return state.tasks.find((t) => t.id === id) || null;
  }
  function nodeName(id) {
    const node = state.graph.nodes.find((n) => n.id === id);
    return node ? node.name : `#${id}`;
  }

  // -- refresh indicator -------------------------------------------------------------
  function renderRefresh() {
    const dot = $("#refresh-dot");
    const label = $("#refresh-label");
    if (state.failing) {
      dot.className = "live-dot off";
      label.textContent = "Cannot reach the server — retrying";
    } else if (state.lastOk) {
      dot.className = "live-dot on";
      const ago = Math.max(0, Math.round((Date.now() - state.lastOk) / 1000));
      label.textContent = ago < 2 ? "Updated just now" : `Updated ${ago} s ago`;
    }
  }

  // -- stats -------------------------------------------------------------------------
  function setStat(name, ...content) {
    for (const node of $$(`[data-stat="${name}"]`)) SO.clear(node).append(...content);
  }

  function renderStats() {
    const nodes = state.graph.nodes;
    const enabled = nodes.filter((n) => n.enabled).length;
    setStat("tasks", fmt.number(nodes.length));
    setStat("tasks-foot", nodes.length ? `${fmt.number(enabled)} enabled · ${fmt.number(nodes.length - enabled)} paused` : "none yet");

    const upcoming = state.tasks
      .filter((t) => t.enabled && t.next_run_at)
      .sort((a, b) => new Date(a.next_run_at) - new Date(b.next_run_at))[0];
    if (upcoming) {
      setStat("next", countdownNode(upcoming.next_run_at));
      setStat("next-foot", h("span", { title: upcoming.name }, `${upcoming.name} · ${fmt.dateTime(upcoming.next_run_at).slice(11, 16)}`));
    } else {
      setStat("next", "–");
      setStat("next-foot", state.loaded ? "nothing scheduled" : "\u00a0");
    }

    const ok = nodes.filter((n) => n.last_status === "completed").length;
    const failed = nodes.filter((n) => n.last_status === "failed").length;
    const never = nodes.filter((n) => !n.last_status).length;
    const finished = ok + failed;
    const rate = finished ? Math.round((ok / finished) * 100) : null;
    setStat("health", rate === null ? "–" : `${rate}%`);
    const bar = $('[data-stat="health-bar"]');
    bar.style.width = `${rate || 0}%`;
    bar.className = `meter-fill ${rate === null || rate >= 90 ? "meter-good" : rate >= 60 ? "meter-warn" : "meter-bad"}`;
    setStat("health-foot", nodes.length ? `${fmt.number(ok)} completed · ${fmt.number(failed)} failed · ${fmt.number(never)} never ran` : "no runs yet");

    const events = [...new Set(state.tasks.flatMap((t) => t.events || []))].sort();
    setStat("events", fmt.number(events.length));
    const chips = $("#event-chips");
    SO.clear(chips);
    if (!events.length) chips.append(h("span", null, "No task listens to an event yet."));
    for (const name of events.slice(0, 8)) {
      chips.append(
        h(
          "button.chip.chip-event",
          { type: "button", title: `Show the tasks that listen to “${name}”`, onclick: () => setEventFilter(name) },
          name,
        ),
      );
    }
    if (events.length > 8) chips.append(h("span.muted", null, `+${events.length - 8}`));
    const list = $("#known-events");
    if (list) {
      SO.clear(list);
      for (const name of events) list.append(h("option", { value: name }));
    }
  }

  // -- tasks table -------------------------------------------------------------------
  function filtersActive() {
    return !!(state.search || state.schedule_type || state.enabled || state.event);
  }

  function taskCell(task) {
    const link = h(
      "a.task-name",
      { href: `?task=${task.id}`, dataset: { action: "open" }, onclick: (e) => openFromLink(e, task.id) },
      task.name,
    );
    const sub = h(
      "div.task-sub.muted",
      { title: scriptLabel(task) },
      h("span.mono", null, fmt.basename(task.script_path) || scriptLabel(task)),
      task.script_id ? " · library" : null,
      task.owner ? ` · ${task.owner}` : null,
    );
    return h(
      "td.col-task",
      null,
      link,
      task.description ? h("div.task-desc", { title: task.description }, task.description) : null,
      sub,
    );
  }

  function scheduleCell(task) {
    const cell = h("td.col-schedule");
    const text = task.schedule_text || (task.schedule_type === "none" ? "manually only" : task.schedule_type);
    const clockless = task.schedule_type === "none";
    cell.append(h(`div.schedule-text${clockless ? ".clockless" : ""}`, { "data-testid": "schedule-text" }, text));
    // Without a clock the text already says "on event …; after …; by webhook".
    if (clockless) return cell;
    const chips = h("div.chips.task-chips");
    for (const name of task.events || []) {
      chips.append(
        h(
          "button.chip.chip-event",
          { type: "button", title: `Fired by the event “${name}” — show the tasks that listen to it`, onclick: () => setEventFilter(name) },
          h("span.chip-k", { "aria-hidden": "true" }, "⚡"),
          name,
        ),
      );
    }
    const deps = task.depends_on_detail || [];
    if (deps.length) {
      chips.append(
        h(
          "span.chip.chip-dep",
          { title: `Runs after ${deps.map((d) => d.name).join(", ")}` },
          h("span.chip-k", null, "after"),
          deps.map((d) => d.name).join(", "),
        ),
      );
    }
    if (task.has_webhook) chips.append(h("span.chip.chip-hook", { title: "Can be triggered by its webhook URL" }, "webhook"));
    if (chips.childNodes.length) cell.append(chips);
    return cell;
  }

  function nextCell(task) {
    const cell = h("td.col-next");
    if (!task.enabled) {
      cell.append(h("span.badge.badge-task-paused", null, "paused"));
    } else if (task.next_run_at) {
      cell.append(
        h("div", { "data-testid": "next-run" }, countdownNode(task.next_run_at)),
        h("div.task-sub.muted", { title: task.timezone ? inZone(task.next_run_at, task.timezone) : "" }, fmt.dateTime(task.next_run_at)),
      );
    } else {
      cell.append(h("span.muted", { "data-testid": "next-run" }, "on trigger"));
    }
    return cell;
  }

  function lastRunNode(last, { compact = false } = {}) {
    if (!last) return h("span.muted", null, "never");
    const wrap = h("div.last-run");
    wrap.append(SO.runBadges({ status: last.status, run_status: last.run_status }));
    const when = last.finished_at || last.created_at;
    const sub = h("div.task-sub.muted");
    if (last.run_id) {
      sub.append(h("a", { href: `/runs/${last.run_id}/`, dataset: { action: "last-run" }, title: `Open run ${last.run_id}` }, when ? SO.relTime(when) : fmt.shortId(last.run_id)));
    } else if (when) sub.append(SO.relTime(when));
    if (last.trigger && !compact) sub.append(` · ${last.trigger}`);
    wrap.append(sub);
    return wrap;
  }

  function enabledControl(task) {
    if (!can.manage) {
      return h(`span.badge.badge-task-${task.enabled ? "enabled" : "paused"}`, { "data-testid": "enabled-state" }, task.enabled ? "enabled" : "paused");
    }
    const button = h(
      "button.switch",
      {
        type: "button",
        role: "switch",
        "aria-checked": task.enabled ? "true" : "false",
        "aria-label": `${task.name} enabled`,
        title: task.enabled ? "Enabled — click to pause" : "Paused — click to enable",
        dataset: { action: "toggle" },
        "data-testid": "toggle-enabled",
      },
      h("span.switch-knob", { "aria-hidden": "true" }),
    );
    button.addEventListener("click", () => setEnabled(task, !task.enabled, button));
    return button;
  }

  function actionsFor(task, { size = "sm", inDrawer = false } = {}) {
    const group = h("span.actions");
    if (can.run) {
      const run = h(
        `button.btn.btn-${size}.btn-secondary`,
        { type: "button", dataset: { action: "run" }, title: "Start a run now, whatever the schedule" },
        playIcon(),
        "Run now",
      );
      run.addEventListener("click", () => runNow(task, run));
      group.append(run);
    }
    if (!inDrawer) {
      group.append(h(`button.btn.btn-${size}.btn-link`, { type: "button", dataset: { action: "history" }, onclick: () => openTask(task.id) }, "History"));
    }
    if (can.manage) {
      group.append(h(`button.btn.btn-${size}.btn-soft`, { type: "button", dataset: { action: "edit" }, onclick: () => openForm(task) }, "Edit"));
    }
    return group;
  }

  function playIcon() {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", "M4 2.5v11l9-5.5z");
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }

  function rowFor(task) {
    const tr = h("tr", { dataset: { id: String(task.id), name: task.name }, class: task.enabled ? "" : "task-paused" });
    const last = task.last_run;
    tr.append(
      taskCell(task),
      scheduleCell(task),
      nextCell(task),
      h("td.col-last", { "data-testid": "last-run" }, lastRunNode(last)),
      h("td.col-enabled", null, enabledControl(task)),
      h("td.col-actions", null, actionsFor(task)),
    );
    tr.dataset.sig = JSON.stringify(task);
    return tr;
  }

  function renderEmpty() {
    const cell = h("td.empty", { colspan: "6" });
    if (filtersActive()) {
      cell.append(
        h("div.empty-title", null, "No tasks match these filters"),
        h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: clearFilters }, "Clear filters"),
      );
    } else {
      cell.append(
        h("div.empty-title", null, "No scheduled tasks yet"),
        h(
          "div.muted",
          null,
          can.manage
            ? "Create one to run a script every few minutes, on a cron schedule, on an event or after another task."
            : "Tasks appear here as soon as someone creates one.",
        ),
      );
      if (can.manage) cell.append(h("button.btn.btn-primary.btn-sm", { type: "button", onclick: () => openForm(null) }, "New task"));
    }
    SO.clear(els.body).append(h("tr.empty-row", null, cell));
  }

  /** Redraw only the rows whose data changed, so a poll never steals the focus. */
  function renderTable() {
    if (!state.tasks.length) return renderEmpty();
    keepFocus(els.body, () => {
      const existing = new Map($$("tr[data-id]", els.body).map((tr) => [tr.dataset.id, tr]));
      for (const tr of $$("tr:not([data-id])", els.body)) tr.remove();
      const wanted = new Set(state.tasks.map((t) => String(t.id)));
      for (const [id, tr] of existing) if (!wanted.has(id)) tr.remove();
      let cursor = els.body.firstChild;
      for (const task of state.tasks) {
        const id = String(task.id);
        const old = existing.get(id);
        let tr = old;
        if (!old || old.dataset.sig !== JSON.stringify(task)) {
          tr = rowFor(task);
          if (old && old.dataset.sig) {
            const before = JSON.parse(old.dataset.sig);
            const lastBefore = before.last_run ? before.last_run.status : null;
            const lastNow = task.last_run ? task.last_run.status : null;
            if (lastBefore !== lastNow || before.enabled !== task.enabled) tr.classList.add("flash");
          }
          if (old) old.replaceWith(tr);
        }
        if (tr !== cursor) els.body.insertBefore(tr, cursor);
        cursor = tr.nextSibling;
      }
    });
  }

  function renderPager() {
    const pages = Math.max(1, Math.ceil(state.count / state.pageSize));
    const first = state.count ? (state.page - 1) * state.pageSize + 1 : 0;
    const last = Math.min(state.count, state.page * state.pageSize);
    els.info.textContent = state.count ? `Showing ${first}–${last} of ${fmt.number(state.count)}` : "";
    els.pageNum.textContent = `Page ${state.page} of ${pages}`;
    els.prev.disabled = state.page <= 1;
    els.next.disabled = state.page >= pages;
  }

  function syncUrl() {
    const q = new URLSearchParams();
    if (state.search) q.set("search", state.search);
    if (state.schedule_type) q.set("schedule_type", state.schedule_type);
    if (state.enabled) q.set("enabled", state.enabled);
    if (state.event) q.set("event", state.event);
    if (state.page > 1) q.set("page", String(state.page));
    if (state.pageSize !== 25) q.set("page_size", String(state.pageSize));
    if (drawer.id !== null) q.set("task", String(drawer.id));
    const qs = q.toString();
    history.replaceState(null, "", qs ? `?${qs}` : location.pathname);
    els.clear.hidden = !filtersActive();
    els.eventFilter.hidden = !state.event;
    els.eventFilter.textContent = state.event ? `⚡ ${state.event} ×` : "";
    els.eventFilter.setAttribute("aria-label", `Event filter: ${state.event}. Remove it`);
  }

  let inflight = null;
  async function load({ quiet = false } = {}) {
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    const q = new URLSearchParams({ page: String(state.page), page_size: String(state.pageSize) });
    if (state.search) q.set("search", state.search);
    if (state.schedule_type) q.set("schedule_type", state.schedule_type);
    if (state.enabled) q.set("enabled", state.enabled);
    if (state.event) q.set("event", state.event);
    if (!quiet) els.wrap.classList.add("refreshing");
    try {
      const res = await SO.request("GET", `${API}/tasks?${q}`, undefined, { signal: controller.signal });
      if (res.status === 404 && state.page > 1) {
        state.page = 1; // the page vanished (tasks deleted): back to the first
        return load({ quiet });
      }
      if (!res.ok) throw new SO.ApiError(res.status, res.data);
      const data = res.data;
      state.tasks = Array.isArray(data) ? data : data.results;
      state.count = Array.isArray(data) ? data.length : data.count;
      state.loaded = true;
      state.failing = false;
      state.lastOk = Date.now();
      renderTable();
      renderPager();
      renderStats();
      syncUrl();
      refreshDrawerFromList();
    } catch (err) {
      if (err.name === "AbortError") return;
      state.failing = err.status === 0;
      if (!state.loaded || !state.failing) {
        SO.clear(els.body).append(
          h(
            "tr.empty-row",
            null,
            h(
              "td.empty",
              { colspan: "6" },
              h("div.empty-title", null, "Could not load the tasks"),
              h("div.muted", { role: "alert" }, err.message),
            ),
          ),
        );
      }
    } finally {
      if (inflight === controller) {
        inflight = null;
        els.wrap.classList.remove("refreshing");
      }
      renderRefresh();
    }
  }

  let reloadTimer = null;
  function scheduleReload(delay = 300) {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      load({ quiet: true });
      loadGraph();
    }, delay);
  }

  // -- task actions --------------------------------------------------------------------
  // Busy buttons are marked aria-busy rather than disabled: a disabled button drops the
  // keyboard focus, and the row it sits in is redrawn right after.
  function setBusy(button, busy) {
    if (!button) return;
    button.classList.toggle("busy", busy);
    if (busy) button.setAttribute("aria-busy", "true");
    else button.removeAttribute("aria-busy");
  }
  const isBusy = (button) => !!button && button.getAttribute("aria-busy") === "true";

  async function runNow(task, button) {
    if (isBusy(button)) return;
    setBusy(button, true);
    try {
      const result = await SO.api("POST", `${API}/tasks/${task.id}/run`);
      const run = result.run || {};
      SO.toast(`Started “${task.name}” (run ${fmt.shortId(run.id)}).`, {
        kind: "success",
        link: run.id ? { href: `/runs/${run.id}/`, label: "Watch it live →" } : undefined,
      });
      scheduleReload(400);
      if (drawer.id === task.id) loadHistory({ reset: true });
    } catch (err) {
      SO.toast(`Could not run “${task.name}”: ${err.message}`, { kind: "error" });
    } finally {
      setBusy(button, false);
    }
  }

  async function setEnabled(task, enabled, button) {
    if (isBusy(button)) return;
    if (button) button.setAttribute("aria-busy", "true");
    try {
      const updated = await SO.api("POST", `${API}/tasks/${task.id}/${enabled ? "enable" : "pause"}`);
      upsert(updated);
      SO.toast(enabled ? `“${task.name}” enabled.` : `“${task.name}” paused: it fires only when you run it.`, { kind: "success" });
      loadGraph();
    } catch (err) {
      SO.toast(`Could not ${enabled ? "enable" : "pause"} “${task.name}”: ${err.message}`, { kind: "error" });
    } finally {
      if (button) button.removeAttribute("aria-busy");
    }
  }

  async function deleteTask(task) {
    try {
      await SO.api("DELETE", `${API}/tasks/${task.id}`);
      SO.toast(`Task “${task.name}” deleted.`, { kind: "success" });
      closeDrawer();
      scheduleReload(0);
    } catch (err) {
      // 409: other tasks depend on it (the message names them).
      SO.toast(`Could not delete “${task.name}”: ${err.message}`, { kind: "error", timeout: 12000 });
      const slot = $("#drawer-error");
      if (slot) {
        slot.textContent = err.message;
        slot.hidden = false;
      }
    }
  }

  /** A task changed (an action answered with it): update the list, the stats and the drawer. */
  function upsert(task) {
    const i = state.tasks.findIndex((t) => t.id === task.id);
    if (i >= 0) state.tasks[i] = task;
    const node = state.graph.nodes.find((n) => n.id === task.id);
    if (node) node.enabled = task.enabled;
    renderTable();
    renderStats();
    if (drawer.id === task.id) renderDrawer(task);
  }

  // -- events ------------------------------------------------------------------------
  const fireForm = $("#fire-form");
  if (fireForm) {
    fireForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("#fire-name");
      const name = input.value.trim();
      const box = $("#fire-result");
      if (!name) {
        showFireResult(h("span", null, "Type the name of the event to fire."), "error");
        input.focus();
        return;
      }
      const button = $("button[type=submit]", fireForm);
      button.disabled = true;
      button.classList.add("busy");
      try {
        const result = await SO.api("POST", `${API}/events/${encodeURIComponent(name)}`);
        const triggered = result.triggered || [];
        const skipped = result.skipped || [];
        const parts = [h("strong", null, `Fired “${result.event || name}”: `)];
        if (!triggered.length && !skipped.length) parts.push("no task listens to it.");
        if (triggered.length) {
          parts.push(`started ${triggered.length} task${triggered.length === 1 ? "" : "s"} — `);
          triggered.forEach((t, i) => {
            if (i) parts.push(", ");
            parts.push(t.run_id ? h("a", { href: `/runs/${t.run_id}/` }, t.task) : t.task);
          });
          parts.push(". ");
        }
        if (skipped.length) {
          parts.push(`Skipped ${skipped.length}: `);
          skipped.forEach((t, i) => {
            if (i) parts.push("; ");
            parts.push(h("span", null, `${t.task} (${t.reason})`));
          });
          parts.push(".");
        }
        showFireResult(h("span", null, parts), triggered.length ? "good" : "info");
        scheduleReload(400);
      } catch (err) {
        showFireResult(h("span", null, `Could not fire “${name}”: ${err.message}`), "error");
      } finally {
        button.disabled = false;
        button.classList.remove("busy");
      }
      box.hidden = false;
    });
  }

  function showFireResult(content, tone) {
    const box = $("#fire-result");
    const close = h("button.toast-close", { type: "button", "aria-label": "Dismiss", onclick: () => (box.hidden = true) }, "×");
    SO.clear(box).append(content, close);
    box.className = `fire-result tone-${tone}`;
    box.hidden = false;
  }

  // -- dependency graph --------------------------------------------------------------
  const NODE_W = 188;
  const NODE_H = 50;
  const GAP_X = 84;
  const GAP_Y = 22;
  const MARGIN = 16;

  async function loadGraph() {
    try {
      const graph = await SO.api("GET", `${API}/graph`);
      state.graph = { nodes: graph.nodes || [], edges: graph.edges || [] };
      renderStats();
      const sig = JSON.stringify(state.graph);
      if (sig === state.graphSig) return;
      state.graphSig = sig;
      keepGraphFocus(renderGraph);
    } catch (err) {
      if (!state.graphSig) {
        SO.clear(els.graph).append(h("div.graph-empty", { role: "alert" }, `Could not load the dependency graph: ${err.message}`));
      }
    }
  }

  function keepGraphFocus(render) {
    const active = document.activeElement;
    const id = active && els.graph.contains(active) ? active.getAttribute("data-node") : null;
    render();
    if (id) {
      const again = els.graph.querySelector(`[data-node="${CSS.escape(id)}"]`);
      if (again) again.focus();
    }
  }

  /** Layers by dependency depth (left to right); within a layer, ordered by their parents. */
  function layout(nodes, edges) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const parents = new Map(nodes.map((n) => [n.id, []]));
    for (const e of edges) if (parents.has(e.to) && byId.has(e.from)) parents.get(e.to).push(e.from);
    const depth = new Map();
    const visiting = new Set();
    function depthOf(id) {
      if (depth.has(id)) return depth.get(id);
      if (visiting.has(id)) return 0; // a cycle (the API refuses them): cut it here
      visiting.add(id);
      const ps = parents.get(id) || [];
      const d = ps.length ? 1 + Math.max(...ps.map(depthOf)) : 0;
      visiting.delete(id);
      depth.set(id, d);
      return d;
    }
    nodes.forEach((n) => depthOf(n.id));
    const layers = [];
    for (const n of nodes) {
      const d = depth.get(n.id);
      (layers[d] = layers[d] || []).push(n);
    }
    const index = new Map();
    layers.forEach((layer, d) => {
      const key = (n) => {
        const ps = (parents.get(n.id) || []).filter((p) => index.has(p));
        return ps.length ? ps.reduce((sum, p) => sum + index.get(p), 0) / ps.length : Infinity;
      };
      if (d === 0) layer.sort((a, b) => a.name.localeCompare(b.name));
      else layer.sort((a, b) => key(a) - key(b) || a.name.localeCompare(b.name));
      layer.forEach((n, i) => index.set(n.id, i));
    });
    const tallest = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
    const height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
    const pos = new Map();
    layers.forEach((layer, d) => {
      if (!layer) return;
      const used = layer.length * NODE_H + (layer.length - 1) * GAP_Y;
      const top = (height - used) / 2;
      layer.forEach((n, i) => pos.set(n.id, { x: MARGIN + d * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) }));
    });
    const width = MARGIN * 2 + layers.length * NODE_W + Math.max(0, layers.length - 1) * GAP_X;
    return { pos, width, height };
  }

  /**
   * Which edges skip a layer and would be drawn behind a node of a layer in between:
   * those get a lane above the graph (``lanes``: edge -> y before the shift; ``laneSpace``).
   */
  function routeEdges(edges, pos) {
    const lanes = new Map();
    const boxes = [...pos.values()];
    let count = 0;
    for (const e of edges) {
      const a = pos.get(e.from);
      const b = pos.get(e.to);
      if (!a || !b || b.x - a.x <= NODE_W + GAP_X) continue; // neighbouring layers
      const y1 = a.y + NODE_H / 2;
      const y2 = b.y + NODE_H / 2;
      const blocked = boxes.some((box) => {
        if (box.x <= a.x || box.x >= b.x) return false;
        // Where the curve crosses this layer, roughly: along the straight line.
        const t = (box.x + NODE_W / 2 - (a.x + NODE_W)) / (b.x - (a.x + NODE_W));
        const y = y1 + (y2 - y1) * t;
        return y > box.y - 6 && y < box.y + NODE_H + 6;
      });
      if (blocked) {
        lanes.set(e, 12 + (count % 6) * 9);
        count += 1;
      }
    }
    const laneSpace = count ? 12 + Math.min(count, 6) * 9 : 0;
    return { lanes, laneSpace };
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    for (const child of children) if (child) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function clip(text, max) {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  function renderGraph() {
    const { nodes, edges } = state.graph;
    SO.clear(els.graph);
    const linked = new Set(edges.flatMap((e) => [e.from, e.to]));
    const shown = nodes.filter((n) => linked.has(n.id));
    const alone = nodes.length - shown.length;
    if (!edges.length || !shown.length) {
      els.graphNote.hidden = true;
      els.graph.append(
        h(
          "div.graph-empty",
          { "data-testid": "graph-empty" },
          h("div.empty-title", null, "No dependencies yet"),
          h(
            "div.muted",
            null,
            nodes.length
              ? "When a task is set to run after another one, the chain is drawn here."
              : "Create tasks, then make one run after another to see the chain here.",
          ),
        ),
      );
      return;
    }
    els.graphNote.hidden = false;
    const laid = layout(shown, edges);
    const { pos, width } = laid;
    let height = laid.height;
    const routes = routeEdges(edges, pos);
    if (routes.laneSpace) {
      // Edges that would pass behind a node travel in lanes above the graph.
      for (const p of pos.values()) p.y += routes.laneSpace;
      height += routes.laneSpace;
    }
    const title = svg("title", { id: "graph-svg-title" }, "Dependency graph");
    const canvas = svg("svg", {
      class: "graph-svg",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "group",
      "aria-labelledby": "graph-svg-title",
    }, title);
    canvas.append(
      svg(
        "defs",
        null,
        svg(
          "marker",
          { id: "graph-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" },
          svg("path", { d: "M0 0L10 5L0 10z", class: "graph-arrow" }),
        ),
        svg(
          "marker",
          { id: "graph-arrow-hl", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" },
          svg("path", { d: "M0 0L10 5L0 10z", class: "graph-arrow-hl" }),
        ),
      ),
    );
    const edgeLayer = svg("g", { class: "graph-edges" });
    for (const e of edges) {
      const a = pos.get(e.from);
      const b = pos.get(e.to);
      if (!a || !b) continue;
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x - 2;
      const y2 = b.y + NODE_H / 2;
      const lane = routes.lanes.get(e);
      let d;
      if (lane !== undefined) {
        const bend = GAP_X / 2;
        d = `M${x1} ${y1} C${x1 + bend} ${y1} ${x1 + bend} ${lane} ${x1 + GAP_X} ${lane} L${x2 - GAP_X} ${lane} C${x2 - bend} ${lane} ${x2 - bend} ${y2} ${x2} ${y2}`;
      } else {
        const dx = Math.max(30, (x2 - x1) / 2);
        d = x2 > x1 ? `M${x1} ${y1} C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2} ${y2}` : `M${x1} ${y1} L${x2} ${y2}`;
      }
      edgeLayer.append(
        svg(
          "path",
          { d, class: "graph-edge", "marker-end": "url(#graph-arrow)", "data-edge": `${e.from}->${e.to}`, "data-from": e.from, "data-to": e.to },
          svg("title", null, `${nodeName(e.to)} runs after ${nodeName(e.from)}`),
        ),
      );
    }
    canvas.append(edgeLayer);
    const nodeLayer = svg("g", { class: "graph-nodes" });
    for (const n of shown) {
      const p = pos.get(n.id);
      const status = n.last_status || "none";
      const label = `${n.name}: ${n.last_status ? `last run ${n.last_status}` : "no run yet"}${n.enabled ? "" : ", paused"}`;
      const link = svg(
        "a",
        {
          href: `?task=${n.id}`,
          class: `graph-node node-${status}${n.enabled ? "" : " node-disabled"}`,
          "data-node": n.id,
          "aria-label": label,
          transform: `translate(${p.x} ${p.y})`,
        },
        svg("title", null, label),
        svg("rect", { width: NODE_W, height: NODE_H, rx: 9, class: "node-box" }),
        svg("rect", { width: 5, height: NODE_H - 16, x: 0, y: 8, rx: 2, class: "node-bar" }),
        svg("text", { x: 16, y: 21, class: "node-name" }, clip(n.name, 22)),
        svg("text", { x: 16, y: 38, class: "node-sub" }, `${n.last_status || "no run yet"}${n.enabled ? "" : " · paused"}`),
      );
      link.addEventListener("click", (ev) => openFromLink(ev, n.id));
      const hl = (on) => {
        for (const edge of $$(`.graph-edge[data-from="${n.id}"], .graph-edge[data-to="${n.id}"]`, canvas)) {
          edge.classList.toggle("hl", on);
          edge.setAttribute("marker-end", on ? "url(#graph-arrow-hl)" : "url(#graph-arrow)");
        }
      };
      link.addEventListener("mouseenter", () => hl(true));
      link.addEventListener("mouseleave", () => hl(false));
      link.addEventListener("focus", () => hl(true));
      link.addEventListener("blur", () => hl(false));
      nodeLayer.append(link);
    }
    canvas.append(nodeLayer);
    els.graph.append(canvas);
    if (alone > 0) {
      els.graph.append(h("div.graph-foot.muted.small", null, `${alone} task${alone === 1 ? "" : "s"} without dependencies ${alone === 1 ? "is" : "are"} not drawn.`));
    }
  }

  // -- one task: the drawer ------------------------------------------------------------
  const drawer = {
    el: $("#task-drawer"),
    id: null,
    task: null,
    sig: "",
    historyPage: 0,
    historyMore: false,
    historySig: "",
  };

  function openFromLink(event, id) {
    // A plain click opens the drawer; ctrl/cmd-click keeps its new-tab meaning.
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button === 1) return;
    event.preventDefault();
    openTask(id);
  }

  async function openTask(id, { webhook = null } = {}) {
    const same = drawer.id === id;
    drawer.id = id;
    syncUrl();
    if (!same) {
      drawer.task = null;
      drawer.sig = "";
      drawer.historySig = "";
      $("#webhook-once").hidden = true;
      $("#drawer-title").textContent = taskById(id) ? taskById(id).name : "Loading…";
      SO.clear($("#drawer-meta"));
      SO.clear($("#drawer-actions"));
      SO.clear($("#drawer-badges"));
      SO.clear($("#drawer-webhook"));
      SO.clear($("#history-body")).append(h("tr.loading-row", null, h("td", { colspan: "5" }, h("span.spinner"), " Loading…")));
    }
    if (!drawer.el.open) drawer.el.showModal();
    if (webhook) showWebhookOnce(webhook);
    try {
      const task = await SO.api("GET", `${API}/tasks/${id}`);
      if (drawer.id !== id) return;
      renderDrawer(task);
      loadHistory({ reset: true });
    } catch (err) {
      if (drawer.id !== id) return;
      $("#drawer-title").textContent = err.status === 404 ? "Task not found" : "Could not load the task";
      SO.clear($("#drawer-meta")).append(h("div.alert.alert-error", { role: "alert" }, err.message));
      SO.clear($("#history-body"));
    }
  }

  function closeDrawer() {
    if (drawer.el.open) drawer.el.close();
  }
  drawer.el.addEventListener("close", () => {
    drawer.id = null;
    drawer.task = null;
    // The webhook token is shown once: forget it.
    $("#webhook-url").value = "";
    $("#webhook-token").textContent = "";
    $("#webhook-once").hidden = true;
    syncUrl();
  });
  // A click on the backdrop (the dialog box itself, outside its content) closes it.
  drawer.el.addEventListener("click", (event) => {
    if (event.target === drawer.el) closeDrawer();
  });

  function refreshDrawerFromList() {
    if (drawer.id === null || !drawer.task) return;
    const fresh = taskById(drawer.id);
    if (fresh) renderDrawer(fresh);
    else if (drawer.el.open) {
      // Not on this page of the list: ask for it (deleted elsewhere → a 404 message).
      SO.api("GET", `${API}/tasks/${drawer.id}`).then(renderDrawer, () => {});
    }
    if (drawer.historyPage <= 1) loadHistory({ reset: true, quiet: true });
  }

  function metaItem(label, value, { wide = false, testid, optional = false } = {}) {
    // Optional items (lists that are often empty) are left out rather than shown as "–".
    if (optional && (value === null || value === undefined || value === "")) return null;
    return h(
      `div.meta-item${wide ? ".meta-wide" : ""}`,
      null,
      h("dt", null, label),
      h("dd", { "data-testid": testid }, value === null || value === undefined || value === "" ? h("span.muted", null, "–") : value),
    );
  }

  function taskLinks(list) {
    if (!list || !list.length) return null;
    const wrap = h("span.chips");
    for (const item of list) {
      wrap.append(h("a.chip.chip-link", { href: `?task=${item.id}`, onclick: (e) => openFromLink(e, item.id) }, item.name));
    }
    return wrap;
  }

  function renderDrawer(task) {
    if (drawer.id !== task.id) return;
    const sig = JSON.stringify(task);
    if (sig === drawer.sig) return;
    drawer.sig = sig;
    drawer.task = task;
    keepFocus(drawer.el, () => {
      $("#drawer-title").textContent = task.name;
      $("#drawer-path").textContent = scriptLabel(task);
      const badges = SO.clear($("#drawer-badges"));
      badges.append(h(`span.badge.badge-task-${task.enabled ? "enabled" : "paused"}`, null, task.enabled ? "enabled" : "paused"));
      badges.append(h("span.badge.badge-type", null, task.schedule_type === "none" ? "no schedule" : task.schedule_type));
      if (task.has_webhook) badges.append(h("span.badge.badge-type", null, "webhook"));

      const actions = SO.clear($("#drawer-actions"));
      const buttons = actionsFor(task, { size: "md", inDrawer: true });
      buttons.classList.add("drawer-buttons");
      actions.append(buttons);
      if (can.manage) {
        const toggle = h(
          "button.btn.btn-md.btn-soft",
          { type: "button", dataset: { action: "toggle" } },
          task.enabled ? "Pause" : "Enable",
        );
        toggle.addEventListener("click", () => setEnabled(task, !task.enabled, toggle));
        buttons.append(toggle);
        const del = h("button.btn.btn-md.btn-danger-ghost.push-right", { type: "button", dataset: { action: "delete" }, "data-testid": "delete-task" }, "Delete");
        SO.confirmButton(del, "Really delete?", () => deleteTask(task));
        buttons.append(del);
      }
      actions.append(h("div.alert.alert-error.drawer-error", { id: "drawer-error", role: "alert", hidden: true }));
      if (task.description) actions.append(h("p.drawer-desc", null, task.description));

      const meta = SO.clear($("#drawer-meta"));
      const schedule = h("span", null, task.schedule_text || "no schedule");
      const items = [
        metaItem("Schedule", schedule, { wide: true, testid: "drawer-schedule" }),
        metaItem(
          "Next run",
          task.enabled && task.next_run_at
            ? h("span", null, countdownNode(task.next_run_at), h("span.muted.small", null, ` · ${task.timezone ? inZone(task.next_run_at, task.timezone) : fmt.dateTime(task.next_run_at)}`))
            : task.enabled
              ? h("span.muted", null, "on trigger")
              : h("span.muted", null, "paused"),
          { wide: true, testid: "drawer-next" },
        ),
        metaItem("Last run", lastRunNode(task.last_run), { wide: true }),
        metaItem("Script", h("span.mono", null, scriptLabel(task)), { wide: true }),
        metaItem("Arguments", task.args && task.args.length ? h("code", null, task.args.map(quote).join(" ")) : null, { wide: true, optional: true }),
        metaItem("Runs after", taskLinks(task.depends_on_detail), { wide: true, optional: true }),
        metaItem("Then runs", taskLinks(task.dependents), { wide: true, optional: true }),
        metaItem("Events", task.events && task.events.length ? h("span.chips", null, task.events.map((e) => h("span.chip", null, e))) : null, { wide: true, optional: true }),
        metaItem("If still running", { skip: "skip the new trigger", queue: "queue it (at most one waits)", cancel_previous: "cancel it, then start", allow: "run side by side" }[task.overlap_policy] || task.overlap_policy),
        task.overlap_policy === "allow" ? metaItem("Max at once", task.max_concurrent || "unlimited") : null,
        metaItem("Missed ticks", { run_once: "run once to catch up", skip: "skip them" }[task.misfire_policy] || task.misfire_policy),
        metaItem("Timeout", task.timeout ? fmt.duration(task.timeout) : "none"),
        metaItem("Retries", task.retry_on_failure ? `up to ${task.retry_max_attempts} (${task.retry_strategy})` : "none"),
        metaItem("Log level", task.log_level),
        metaItem("Working directory", task.working_dir ? h("span.mono", null, task.working_dir) : null, { optional: true }),
        metaItem("Environment", task.env_vars && Object.keys(task.env_vars).length ? h("span.chips", null, Object.keys(task.env_vars).map((k) => h("span.chip.mono", null, k))) : null, { optional: true }),
        metaItem("Owner", task.owner),
        metaItem("Created", task.created_at ? SO.relTime(task.created_at) : null),
        metaItem("Updated", task.updated_at ? SO.relTime(task.updated_at) : null),
      ];
      meta.append(...items.filter(Boolean));

      renderWebhook(task);
    });
  }

  function renderWebhook(task) {
    const box = SO.clear($("#drawer-webhook"));
    box.append(
      h(
        "p.muted.small",
        null,
        task.has_webhook
          ? "A secret URL starts this task. Its token was shown once, when it was made; rotate it if it leaked."
          : "No webhook: nothing outside ScriptOps can start this task by URL.",
      ),
    );
    if (!can.manage) return;
    const buttons = h("span.actions");
    if (task.has_webhook) {
      const rotate = h("button.btn.btn-sm.btn-soft", { type: "button", dataset: { action: "rotate" } }, "Rotate token");
      SO.confirmButton(rotate, "Old URL stops working — sure?", () => webhookCreate(task));
      const remove = h("button.btn.btn-sm.btn-danger-ghost", { type: "button", dataset: { action: "webhook-remove" } }, "Remove webhook");
      SO.confirmButton(remove, "Really remove?", () => webhookRemove(task));
      buttons.append(rotate, remove);
    } else {
      buttons.append(h("button.btn.btn-sm.btn-soft", { type: "button", dataset: { action: "webhook-create" }, onclick: () => webhookCreate(task) }, "Create webhook"));
    }
    box.append(buttons);
  }

  async function webhookCreate(task) {
    try {
      const hook = await SO.api("POST", `${API}/tasks/${task.id}/webhook`);
      showWebhookOnce(hook);
      refreshTask(task.id);
    } catch (err) {
      SO.toast(`Could not make the webhook: ${err.message}`, { kind: "error" });
    }
  }

  async function webhookRemove(task) {
    try {
      await SO.api("DELETE", `${API}/tasks/${task.id}/webhook`);
      $("#webhook-once").hidden = true;
      SO.toast(`Webhook of “${task.name}” removed.`, { kind: "success" });
      refreshTask(task.id);
    } catch (err) {
      SO.toast(`Could not remove the webhook: ${err.message}`, { kind: "error" });
    }
  }

  async function refreshTask(id) {
    try {
      upsert(await SO.api("GET", `${API}/tasks/${id}`));
    } catch (err) {
      /* the next poll tries again */
    }
  }

  function showWebhookOnce(hook) {
    const url = hook.webhook_url ? new URL(hook.webhook_url, location.origin).href : "";
    $("#webhook-url").value = url;
    $("#webhook-token").textContent = hook.webhook_token || "";
    $("#webhook-once").hidden = false;
    $("#webhook-url").focus();
    $("#webhook-url").select();
  }
  $("#copy-webhook").addEventListener("click", async () => {
    const input = $("#webhook-url");
    const ok = await SO.copy(input.value, input);
    const button = $("#copy-webhook");
    button.textContent = ok ? "Copied ✓" : "Select and copy";
    setTimeout(() => (button.textContent = "Copy"), 1600);
  });
  $("#dismiss-webhook").addEventListener("click", () => {
    $("#webhook-url").value = "";
    $("#webhook-token").textContent = "";
    $("#webhook-once").hidden = true;
  });

  // -- history ---------------------------------------------------------------------------
  // queued: the trigger created a run; skipped: a policy said no; error: no run could be made.
  const OUTCOME_WORDS = { queued: "fired", skipped: "skipped", error: "error" };

  function historyRow(item) {
    const run = item.run;
    const when = item.fired_at || item.due_at;
    const whenCell = h("td.col-time", null, when ? SO.relTime(when) : h("span.muted", null, "–"));
    if (item.due_at && item.fired_at && item.due_at !== item.fired_at) {
      whenCell.title = `due ${fmt.dateTime(item.due_at)} · fired ${fmt.dateTime(item.fired_at)}`;
    }
    const upstream = Object.keys(item.upstream || {});
    const trigger = h(
      "td",
      null,
      h("span.chip", null, item.trigger || "–"),
      item.event ? h("span.muted.small", null, ` ${item.event}`) : null,
      upstream.length ? h("div.muted.small", null, `after ${upstream.join(", ")}`) : null,
    );
    const outcome = h(
      "td.col-outcome",
      null,
      h(`span.badge.badge-outcome-${item.outcome}`, { "data-testid": "outcome" }, OUTCOME_WORDS[item.outcome] || item.outcome),
      item.reason ? h("div.reason.muted.small", null, item.reason) : null,
    );
    const runCell = h("td.col-run");
    if (run && item.run_id) {
      runCell.append(
        h("a.mono.cid", { href: `/runs/${item.run_id}/`, title: `run ${item.run_id}` }, fmt.shortId(item.run_id)),
        " ",
        SO.runBadges({ status: run.status, run_status: run.run_status }),
      );
    } else if (item.run_id) {
      runCell.append(h("a.mono.cid", { href: `/runs/${item.run_id}/` }, fmt.shortId(item.run_id)));
    } else runCell.append(h("span.muted", null, "–"));
    const duration = h("td.col-num", null, run && run.duration !== null && run.duration !== undefined ? fmt.duration(run.duration) : h("span.muted", null, "–"));
    return h(`tr.outcome-${item.outcome}`, { dataset: { id: String(item.id) } }, whenCell, trigger, outcome, runCell, duration);
  }

  let historyInflight = null;
  async function loadHistory({ reset = false, quiet = false } = {}) {
    const id = drawer.id;
    if (id === null) return;
    const page = reset ? 1 : drawer.historyPage + 1;
    if (historyInflight) historyInflight.abort();
    const controller = new AbortController();
    historyInflight = controller;
    try {
      const res = await SO.request("GET", `${API}/tasks/${id}/runs?page=${page}&page_size=20`, undefined, { signal: controller.signal });
      if (!res.ok) throw new SO.ApiError(res.status, res.data);
      if (drawer.id !== id) return;
      const data = res.data;
      const items = Array.isArray(data) ? data : data.results;
      drawer.historyMore = !Array.isArray(data) && !!data.next;
      const body = $("#history-body");
      if (reset) {
        const sig = JSON.stringify(items);
        if (sig !== drawer.historySig) {
          drawer.historySig = sig;
          SO.clear(body);
          for (const item of items) body.append(historyRow(item));
        }
      } else {
        for (const item of items) body.append(historyRow(item));
      }
      drawer.historyPage = page;
      if (!body.children.length) {
        body.append(
          h(
            "tr.empty-row",
            null,
            h("td.empty.empty-small", { colspan: "5" }, h("div.empty-title", null, "No history yet"), h("div.muted", null, "Every tick appears here, fired or skipped, with the reason.")),
          ),
        );
      }
      $("#history-more").hidden = !drawer.historyMore;
    } catch (err) {
      if (err.name === "AbortError") return;
      if (!quiet) SO.clear($("#history-body")).append(h("tr", null, h("td.empty.empty-small", { colspan: "5", role: "alert" }, `Could not load the history: ${err.message}`)));
    } finally {
      if (historyInflight === controller) historyInflight = null;
    }
  }
  $("#history-more").addEventListener("click", () => loadHistory());

  // -- create / edit form ---------------------------------------------------------------
  const dialog = $("#task-dialog");
  const form = $("#task-form");
  let editing = null; // the task being edited, or null for a new one

  function openForm(task) {
    if (!form) return;
    editing = task;
    form.reset();
    SO.clearFieldErrors(form);
    $("#form-status").textContent = "";
    $("#form-title").textContent = task ? `Edit “${task.name}”` : "New task";
    $("#task-save").textContent = task ? "Save changes" : "Create task";
    const f = form.elements;
    const zone = browserZone();
    f.timezone.value = zone;
    if (task) {
      f.name.value = task.name || "";
      f.description.value = task.description || "";
      // A library task's script_path is its script's path (read-only): edit the id.
      setRadio("source", task.script_id ? "library" : "path");
      f.script_path.value = task.script_id ? "" : task.script_path || "";
      f.script_id.value = task.script_id || "";
      f.args.value = (task.args || []).map(quote).join(" ");
      f.timeout.value = task.timeout ?? "";
      setRadio("schedule_type", task.schedule_type || "interval");
      setIntervalFields(task.interval_seconds || 3600);
      f.cron.value = task.cron || "";
      f.timezone.value = task.timezone || zone;
      f.events.value = (task.events || []).join(", ");
      f.webhook.checked = !!task.has_webhook;
      f.overlap_policy.value = task.overlap_policy || "skip";
      f.max_concurrent.value = task.max_concurrent ?? "";
      f.misfire_policy.value = task.misfire_policy || "run_once";
      f.enabled.checked = !!task.enabled;
      f.working_dir.value = task.working_dir || "";
      if (task.log_level) f.log_level.value = task.log_level;
      f.env_vars.value = Object.entries(task.env_vars || {})
        .map(([k, v]) => `${k}=${v}`)
        .join("\n");
      f.retry_on_failure.checked = !!task.retry_on_failure;
      for (const name of ["retry_max_attempts", "retry_initial_delay", "retry_max_delay", "retry_multiplier", "retry_max_time"]) {
        if (task[name] !== null && task[name] !== undefined) f[name].value = task[name];
      }
      if (task.retry_strategy) f.retry_strategy.value = task.retry_strategy;
      $("#task-advanced").open = !!(task.working_dir || task.retry_on_failure || f.env_vars.value);
    } else {
      setRadio("source", "path");
      setRadio("schedule_type", "interval");
      setIntervalFields(3600);
      $("#task-advanced").open = false;
    }
    renderDeps(task);
    syncSource();
    syncSchedule();
    syncRetry();
    syncOverlap();
    lastPreview = "";
    dialog.showModal();
    f.name.focus();
    if (currentType() === "cron") previewSoon(0);
  }

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    } catch (err) {
      return "UTC";
    }
  }

  function setRadio(name, value) {
    for (const input of $$(`input[name="${name}"]`, form)) input.checked = input.value === value;
  }
  function radioValue(name) {
    const checked = $(`input[name="${name}"]:checked`, form);
    return checked ? checked.value : "";
  }
  function currentType() {
    return radioValue("schedule_type");
  }

  function setIntervalFields(seconds) {
    const f = form.elements;
    const s = Math.max(1, Math.round(Number(seconds) || 3600));
    const unit = [86400, 3600, 60, 1].find((u) => s % u === 0) || 1;
    f.interval_unit.value = String(unit);
    f.interval_value.value = String(s / unit);
    syncIntervalWords();
  }
  function intervalSeconds() {
    const f = form.elements;
    const value = Number(f.interval_value.value);
    return Number.isFinite(value) && value > 0 ? Math.round(value * Number(f.interval_unit.value)) : null;
  }
  function syncIntervalWords() {
    const s = intervalSeconds();
    $("#interval-words").textContent = s ? `Runs ${intervalWords(s)}${s >= 60 ? ` (${fmt.number(s)} seconds)` : ""}.` : "";
  }

  function syncSource() {
    const source = radioValue("source");
    for (const node of $$("[data-source]", form)) node.hidden = node.dataset.source !== source;
    if (source === "library") loadLibrary();
  }
  function syncSchedule() {
    const type = currentType();
    for (const node of $$("[data-schedule]", form)) node.hidden = node.dataset.schedule !== type;
  }
  // A limit on runs at once only means something when runs may overlap.
  function syncOverlap() {
    const allow = form.elements.overlap_policy.value === "allow";
    form.elements.max_concurrent.disabled = !allow;
  }
  function syncRetry() {
    $("#task-retry-fields").classList.toggle("dimmed", !form.elements.retry_on_failure.checked);
  }

  /** The other tasks, as checkboxes; the ones that (transitively) run after this one would make a cycle. */
  function renderDeps(task) {
    const list = SO.clear($("#deps-list"));
    const others = state.graph.nodes.filter((n) => !task || n.id !== task.id).sort((a, b) => a.name.localeCompare(b.name));
    const chosen = new Set(task ? task.depends_on || [] : []);
    const downstream = new Set();
    if (task) {
      const stack = [task.id];
      while (stack.length) {
        const cur = stack.pop();
        for (const e of state.graph.edges) {
          if (e.from === cur && !downstream.has(e.to)) {
            downstream.add(e.to);
            stack.push(e.to);
          }
        }
      }
    }
    $("#deps-filter").hidden = others.length <= 8;
    $("#deps-filter").value = "";
    if (!others.length) {
      list.append(h("span.muted.small", null, "No other tasks yet."));
      return;
    }
    for (const n of others) {
      const cycle = downstream.has(n.id);
      list.append(
        h(
          "label.check.dep-option",
          { dataset: { name: n.name.toLowerCase() }, title: cycle ? "It already runs after this task: a cycle" : "" },
          h("input", { type: "checkbox", name: "depends_on", value: String(n.id), checked: chosen.has(n.id), disabled: cycle && !chosen.has(n.id) }),
          h("span", null, n.name),
          n.enabled ? null : h("span.muted.small", null, "paused"),
          cycle ? h("span.muted.small", null, "runs after it") : null,
        ),
      );
    }
  }

  function parseEnv(text) {
    const env = {};
    const errors = [];
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith("#")) return;
      const eq = line.indexOf("=");
      if (eq <= 0) {
        errors.push(`Line ${i + 1}: expected KEY=VALUE.`);
        return;
      }
      env[line.slice(0, eq).trim()] = line.slice(eq + 1);
    });
    return { env, errors };
  }

  // The script library (if its API is there) feeds the id field's suggestions.
  let libraryLoaded = false;
  const libraryNames = new Map();
  async function loadLibrary() {
    if (libraryLoaded) return;
    libraryLoaded = true;
    const hint = $("#library-hint");
    try {
      const data = await SO.api("GET", "/api/library/scripts?page_size=500");
      const scripts = Array.isArray(data) ? data : data.results || [];
      const list = SO.clear($("#library-scripts"));
      for (const s of scripts) {
        const label = `${s.name}${s.relpath && s.relpath !== s.name ? ` — ${s.relpath}` : ""}`;
        libraryNames.set(String(s.id), label);
        list.append(h("option", { value: String(s.id) }, label));
      }
      hint.textContent = scripts.length ? "Type to pick from the library, or enter an id." : "The library has no scripts yet.";
      syncLibraryHint();
    } catch (err) {
      hint.textContent = "The script library could not be listed: enter the script's id.";
    }
  }
  function syncLibraryHint() {
    const id = form.elements.script_id.value;
    if (libraryNames.has(id)) $("#library-hint").textContent = `→ ${libraryNames.get(id)}`;
  }

  // -- cron preview (debounced, only the latest answer counts) --
  let previewTimer = null;
  let previewCtl = null;
  let lastPreview = "";
  function previewSoon(delay = 250) {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, delay);
  }
  async function preview() {
    const f = form.elements;
    const cron = f.cron.value.trim();
    const tz = f.timezone.value.trim();
    const box = $("#cron-preview");
    const key = `${cron}\n${tz}`;
    if (key === lastPreview) return;
    lastPreview = key;
    if (previewCtl) previewCtl.abort();
    if (!cron) {
      SO.clear(box).append(h("span.muted", null, "Type a cron expression to see when it fires."));
      box.dataset.state = "empty";
      return;
    }
    const controller = new AbortController();
    previewCtl = controller;
    box.dataset.state = "loading";
    box.classList.add("refreshing");
    try {
      const q = new URLSearchParams({ cron });
      if (tz) q.set("tz", tz);
      const res = await SO.request("GET", `${API}/preview?${q}`, undefined, { signal: controller.signal });
      if (previewCtl !== controller) return;
      if (!res.ok) throw new SO.ApiError(res.status, res.data);
      const data = res.data;
      const zone = data.timezone || tz;
      SO.clear(box).append(
        h(
          "div.preview-head",
          null,
          h("strong", { "data-testid": "cron-description" }, data.description || cron),
          zone && !(data.description || "").includes(zone) ? h("span.muted.small", null, ` · ${zone}`) : null,
        ),
        h(
          "ol.preview-list",
          { "aria-label": "Next fire times", "data-testid": "cron-next" },
          (data.next || []).map((iso) => h("li", null, h("span.preview-time", null, inZone(iso, zone)), h("span.muted.small", null, countdown(iso)))),
        ),
      );
      box.dataset.state = "ok";
    } catch (err) {
      if (err.name === "AbortError") return;
      const details = err.details || {};
      const fieldMsg = [details.cron, details.tz, details.timezone].flat().filter(Boolean).join(" ");
      SO.clear(box).append(
        h("div.preview-error", { "data-testid": "cron-error" }, h("strong", null, "⚠ "), fieldMsg || err.message),
      );
      box.dataset.state = "error";
    } finally {
      if (previewCtl === controller) {
        previewCtl = null;
        box.classList.remove("refreshing");
      }
    }
  }

  function buildPayload() {
    const f = form.elements;
    const errors = {};
    const payload = {
      name: f.name.value.trim(),
      description: f.description.value.trim(),
      schedule_type: currentType(),
      timezone: f.timezone.value.trim() || "UTC",
      events: f.events.value
        .split(",")
        .map((e) => e.trim())
        .filter(Boolean),
      depends_on: $$('input[name="depends_on"]:checked', form).map((i) => Number(i.value)),
      overlap_policy: f.overlap_policy.value,
      misfire_policy: f.misfire_policy.value,
      enabled: f.enabled.checked,
      working_dir: f.working_dir.value.trim() || null,
      log_level: f.log_level.value,
      retry_on_failure: f.retry_on_failure.checked,
    };
    if (!payload.name) errors.name = ["Give the task a name."];
    if (radioValue("source") === "library") {
      payload.script_id = f.script_id.value ? Number(f.script_id.value) : null;
      payload.script_path = "";
      if (!payload.script_id) errors.script_id = ["Which library script should run? Enter its id."];
    } else {
      payload.script_path = f.script_path.value.trim();
      payload.script_id = null;
      if (!payload.script_path) errors.script_path = ["Which script should run?"];
    }
    try {
      payload.args = splitArgs(f.args.value);
    } catch (err) {
      errors.args = [err.message];
    }
    payload.timeout = f.timeout.value === "" ? null : Number(f.timeout.value);
    payload.max_concurrent = payload.overlap_policy === "allow" && f.max_concurrent.value !== "" ? Number(f.max_concurrent.value) : null;
    if (payload.schedule_type === "interval") {
      payload.interval_seconds = intervalSeconds();
      if (!payload.interval_seconds) errors.interval_seconds = ["How often? Enter a positive number."];
    } else {
      payload.interval_seconds = null;
    }
    if (payload.schedule_type === "cron") {
      payload.cron = f.cron.value.trim();
      if (!payload.cron) errors.cron = ["Enter a cron expression, e.g. 30 2 * * * for 02:30 every day."];
    } else {
      payload.cron = "";
    }
    // Saved values come back masked ("********"); sent back as is, the API keeps them.
    const { env, errors: envErrors } = parseEnv(f.env_vars.value);
    if (envErrors.length) errors.env_vars = envErrors;
    payload.env_vars = env;
    if (payload.retry_on_failure) {
      for (const name of ["retry_max_attempts", "retry_initial_delay", "retry_max_delay", "retry_multiplier", "retry_max_time"]) {
        if (f[name].value !== "") payload[name] = Number(f[name].value);
      }
      payload.retry_strategy = f.retry_strategy.value;
    }
    return { payload, errors };
  }

  if (form) {
    for (const close of $$("[data-close]", dialog)) close.addEventListener("click", () => dialog.close());
    for (const input of $$('input[name="source"]', form)) input.addEventListener("change", syncSource);
    for (const input of $$('input[name="schedule_type"]', form)) {
      input.addEventListener("change", () => {
        syncSchedule();
        if (currentType() === "cron") previewSoon(0);
      });
    }
    form.elements.interval_value.addEventListener("input", syncIntervalWords);
    form.elements.interval_unit.addEventListener("change", syncIntervalWords);
    form.elements.cron.addEventListener("input", () => previewSoon());
    form.elements.timezone.addEventListener("input", () => previewSoon());
    form.elements.script_id.addEventListener("input", syncLibraryHint);
    form.elements.retry_on_failure.addEventListener("change", syncRetry);
    form.elements.overlap_policy.addEventListener("change", syncOverlap);
    for (const preset of $$("[data-cron]", form)) {
      preset.addEventListener("click", () => {
        form.elements.cron.value = preset.dataset.cron;
        previewSoon(0);
        form.elements.cron.focus();
      });
    }
    $("#deps-filter").addEventListener("input", (e) => {
      const q = e.target.value.trim().toLowerCase();
      for (const opt of $$(".dep-option", form)) opt.hidden = !!q && !opt.dataset.name.includes(q);
    });
    const zones = $("#time-zones");
    let names = [];
    try {
      names = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
    } catch (err) {
      names = [];
    }
    if (!names.includes("UTC")) names = ["UTC", ...names];
    for (const name of names) zones.append(h("option", { value: name }));

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      SO.clearFieldErrors(form);
      const { payload, errors } = buildPayload();
      if (Object.keys(errors).length) {
        SO.showFieldErrors(form, { details: errors });
        return;
      }
      const save = $("#task-save");
      save.disabled = true;
      save.classList.add("busy");
      $("#form-status").textContent = "Saving…";
      const wasEditing = editing;
      try {
        let task;
        let hook = null;
        if (wasEditing) {
          task = await SO.api("PATCH", `${API}/tasks/${wasEditing.id}`, payload);
          const wantHook = form.elements.webhook.checked;
          if (wantHook && !task.has_webhook) {
            hook = await SO.api("POST", `${API}/tasks/${task.id}/webhook`);
            task = { ...task, has_webhook: true };
          } else if (!wantHook && task.has_webhook) {
            await SO.api("DELETE", `${API}/tasks/${task.id}/webhook`);
            task = { ...task, has_webhook: false };
          }
        } else {
          payload.webhook = form.elements.webhook.checked;
          task = await SO.api("POST", `${API}/tasks`, payload);
          if (task.webhook_token) hook = { webhook_token: task.webhook_token, webhook_url: task.webhook_url };
        }
        dialog.close();
        SO.toast(wasEditing ? `Saved “${task.name}”.` : `Created “${task.name}”.`, { kind: "success" });
        scheduleReload(0);
        if (hook || drawer.id === task.id) {
          // The token is shown once: in the task's panel, with a copy button.
          openTask(task.id, { webhook: hook });
        }
      } catch (err) {
        SO.showFieldErrors(form, err);
      } finally {
        save.disabled = false;
        save.classList.remove("busy");
        $("#form-status").textContent = "";
      }
    });
  }

  const newTask = $("#new-task");
  if (newTask) newTask.addEventListener("click", () => openForm(null));
  for (const close of $$("[data-close]", drawer.el)) close.addEventListener("click", closeDrawer);

  // -- filters and paging ----------------------------------------------------------------
  function setEventFilter(name) {
    state.event = name;
    state.page = 1;
    if (drawer.el.open) closeDrawer();
    load();
    els.body.closest("section").scrollIntoView({ block: "start", behavior: "smooth" });
  }
  function clearFilters() {
    state.search = state.schedule_type = state.enabled = state.event = "";
    els.search.value = els.type.value = els.enabled.value = "";
    state.page = 1;
    load();
  }
  els.search.value = state.search;
  els.type.value = state.schedule_type;
  els.enabled.value = state.enabled;
  els.pageSize.value = String(state.pageSize);
  let searchTimer = null;
  els.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.search = els.search.value.trim();
      state.page = 1;
      load();
    }, 300);
  });
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  els.type.addEventListener("change", () => {
    state.schedule_type = els.type.value;
    state.page = 1;
    load();
  });
  els.enabled.addEventListener("change", () => {
    state.enabled = els.enabled.value;
    state.page = 1;
    load();
  });
  els.eventFilter.addEventListener("click", () => {
    state.event = "";
    state.page = 1;
    load();
  });
  els.clear.addEventListener("click", clearFilters);
  els.pageSize.addEventListener("change", () => {
    state.pageSize = parseInt(els.pageSize.value, 10);
    state.page = 1;
    load();
  });
  els.prev.addEventListener("click", () => {
    state.page = Math.max(1, state.page - 1);
    load();
  });
  els.next.addEventListener("click", () => {
    state.page += 1;
    load();
  });

  // -- live refresh ----------------------------------------------------------------------
  // Countdowns tick every second without a re-render; the list and the graph are polled.
  setInterval(() => {
    for (const node of $$("[data-countdown]")) node.textContent = countdown(node.dataset.countdown);
    renderRefresh();
  }, 1000);
  setInterval(() => {
    if (document.hidden) return;
    load({ quiet: true });
    loadGraph();
  }, POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) scheduleReload(0);
  });

  // -- start -----------------------------------------------------------------------------
  load();
  loadGraph();
  const initial = parseInt(params.get("task") || "", 10);
  if (initial) openTask(initial);
})();
