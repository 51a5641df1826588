/* Scheduler page (6/7): the create / edit dialog, with its live cron preview. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;
  const S = SO.scheduler;
  const { API, state, drawer, countdown, inZone, intervalWords, parseEnv, quote, splitArgs } = S;

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

  // -- cron preview (debounced, only the latest answer counts) ---------------------------
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
        S.scheduleReload(0);
        if (hook || drawer.id === task.id) {
          // The token is shown once: in the task's panel, with a copy button.
          S.openTask(task.id, { webhook: hook });
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

  Object.assign(S, { openForm });
})();
