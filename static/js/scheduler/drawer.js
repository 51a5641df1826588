/* Scheduler page (5/7): one task in the drawer (details, actions, webhook) and its
 * history (every tick, fired or skipped). */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;
  const S = SO.scheduler;
  const { can, API, drawer, countdownNode, inZone, keepFocus, quote, scriptLabel, taskById } = S;

  // -- one task: the drawer ------------------------------------------------------------
  function openFromLink(event, id) {
    // A plain click opens the drawer; ctrl/cmd-click keeps its new-tab meaning.
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button === 1) return;
    event.preventDefault();
    openTask(id);
  }

  async function openTask(id, { webhook = null } = {}) {
    const same = drawer.id === id;
    drawer.id = id;
    S.list.syncUrl();
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
    S.list.syncUrl();
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
      const buttons = S.actionsFor(task, { size: "md", inDrawer: true });
      buttons.classList.add("drawer-buttons");
      actions.append(buttons);
      if (can.manage) {
        const toggle = h(
          "button.btn.btn-md.btn-soft",
          { type: "button", dataset: { action: "toggle" } },
          task.enabled ? "Pause" : "Enable",
        );
        toggle.addEventListener("click", () => S.setEnabled(task, !task.enabled, toggle));
        buttons.append(toggle);
        const del = h("button.btn.btn-md.btn-danger-ghost.push-right", { type: "button", dataset: { action: "delete" }, "data-testid": "delete-task" }, "Delete");
        SO.confirmButton(del, "Really delete?", () => S.deleteTask(task));
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
        metaItem("Last run", S.lastRunNode(task.last_run), { wide: true }),
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
      S.upsert(await SO.api("GET", `${API}/tasks/${id}`));
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

  for (const close of $$("[data-close]", drawer.el)) close.addEventListener("click", closeDrawer);

  Object.assign(S, { openFromLink, openTask, closeDrawer, refreshDrawerFromList, renderDrawer, loadHistory });
})();
