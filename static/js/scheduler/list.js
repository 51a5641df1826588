/* Scheduler page (3/7): the tasks table (filters, pager and URL through SO.listView),
 * and the actions on a task: run now, pause or enable, delete. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;
  const S = SO.scheduler;
  const { can, API, state, drawer, countdownNode, inZone, isBusy, keepFocus, playIcon, scriptLabel, setBusy } = S;

  const els = { body: $("#tasks-body"), wrap: $("#tasks-wrap"), eventFilter: $("#f-event") };

  const list = (S.list = SO.listView({
    filters: ["search", "schedule_type", "enabled", "event"],
    controls: { search: $("#f-search"), schedule_type: $("#f-type"), enabled: $("#f-enabled") },
    form: $("#filters"),
    url: () => `${API}/tasks`,
    wrap: els.wrap,
    urlExtra: (q) => {
      if (drawer.id !== null) q.set("task", String(drawer.id)); // a reload reopens the drawer
    },
    onPage: (results) => {
      state.tasks = results;
      state.failing = false;
      state.lastOk = Date.now();
      renderTable();
      S.renderStats();
      S.refreshDrawerFromList();
    },
    onError: (err) => {
      state.failing = err.status === 0;
      // While the server is unreachable the last list stays (the indicator says so).
      if (list.state.loaded && state.failing) return;
      SO.clear(els.body).append(
        h(
          "tr.empty-row",
          null,
          h("td.empty", { colspan: "6" }, h("div.empty-title", null, "Could not load the tasks"), h("div.muted", { role: "alert" }, err.message)),
        ),
      );
    },
    onSync: () => syncEventFilter(),
    onSettled: () => S.renderRefresh(),
  }));

  // -- tasks table -------------------------------------------------------------------
  function taskCell(task) {
    const link = h(
      "a.task-name",
      { href: `?task=${task.id}`, dataset: { action: "open" }, onclick: (e) => S.openFromLink(e, task.id) },
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
      group.append(h(`button.btn.btn-${size}.btn-link`, { type: "button", dataset: { action: "history" }, onclick: () => S.openTask(task.id) }, "History"));
    }
    if (can.manage) {
      group.append(h(`button.btn.btn-${size}.btn-soft`, { type: "button", dataset: { action: "edit" }, onclick: () => S.openForm(task) }, "Edit"));
    }
    return group;
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
    if (list.active()) {
      cell.append(
        h("div.empty-title", null, "No tasks match these filters"),
        h("button.btn.btn-ghost.btn-sm", { type: "button", onclick: list.clear }, "Clear filters"),
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
      if (can.manage) cell.append(h("button.btn.btn-primary.btn-sm", { type: "button", onclick: () => S.openForm(null) }, "New task"));
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
          if (old) {
            // The new row takes the old one's place. When the old one was the cursor,
            // the cursor moves to the new row: inserting before a node that has left
            // the table throws ("Failed to execute 'insertBefore'").
            if (cursor === old) cursor = tr;
            old.replaceWith(tr);
          }
        }
        if (tr !== cursor) els.body.insertBefore(tr, cursor);
        cursor = tr.nextSibling;
      }
    });
  }

  let reloadTimer = null;
  /** Ask for the list and the graph again soon (several calls in a row make one request). */
  function scheduleReload(delay = 300) {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      list.load({ quiet: true });
      S.loadGraph();
    }, delay);
  }

  // -- task actions --------------------------------------------------------------------
  // Run now follows the task's overlap policy: a skip is a 409 "overlap_skipped" (recorded
  // in the history like a skipped fire), which an admin may override with force.
  async function runNow(task, button, { force = false } = {}) {
    if (button && isBusy(button)) return;
    if (button) setBusy(button, true);
    try {
      const result = await SO.api("POST", `${API}/tasks/${task.id}/run`, force ? { force: true } : undefined);
      const run = result.run || {};
      const how = result.reason ? ` ${result.reason}.` : "";
      SO.toast(`Started “${task.name}” (run ${fmt.shortId(run.id)}).${how}`, {
        kind: "success",
        link: run.id ? { href: `/runs/${run.id}/`, label: "Watch it live →" } : undefined,
      });
    } catch (err) {
      if (err.code === "overlap_skipped") {
        SO.toast(`Skipped “${task.name}”: ${err.message}`, {
          kind: "warn",
          action: can.force ? { name: "force", label: "Run anyway", onClick: () => runNow(task, null, { force: true }) } : undefined,
        });
      } else {
        SO.toast(`Could not run “${task.name}”: ${err.message}`, { kind: "error" });
      }
    } finally {
      if (button) setBusy(button, false);
      scheduleReload(400);
      if (drawer.id === task.id) S.loadHistory({ reset: true });
    }
  }

  async function setEnabled(task, enabled, button) {
    if (isBusy(button)) return;
    if (button) button.setAttribute("aria-busy", "true");
    try {
      const updated = await SO.api("POST", `${API}/tasks/${task.id}/${enabled ? "enable" : "pause"}`);
      upsert(updated); // the row, the summary cards and the drawer, at once
      SO.toast(enabled ? `“${task.name}” enabled.` : `“${task.name}” paused: it fires only when you run it.`, { kind: "success" });
      // Then from the server: the graph, and the list (an "Enabled" filter may drop the row).
      scheduleReload(0);
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
      S.closeDrawer();
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
    S.renderStats();
    if (drawer.id === task.id) S.renderDrawer(task);
  }

  // -- the event filter (a chip, not a form control) ------------------------------------
  function setEventFilter(name) {
    if (drawer.el.open) S.closeDrawer();
    list.set({ event: name });
    els.body.closest("section").scrollIntoView({ block: "start", behavior: "smooth" });
  }
  function syncEventFilter() {
    const event = list.state.event;
    els.eventFilter.hidden = !event;
    els.eventFilter.textContent = event ? `⚡ ${event} ×` : "";
    els.eventFilter.setAttribute("aria-label", `Event filter: ${event}. Remove it`);
  }
  els.eventFilter.addEventListener("click", () => list.set({ event: "" }));

  Object.assign(S, { actionsFor, lastRunNode, setEnabled, deleteTask, upsert, scheduleReload, setEventFilter });
})();
