/* Scheduler page (2/7): the refresh indicator, the summary cards and firing events. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$, fmt } = SO;
  const S = SO.scheduler;
  const { state, countdownNode } = S;

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
      setStat("next-foot", S.list.state.loaded ? "nothing scheduled" : "\u00a0");
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
          { type: "button", title: `Show the tasks that listen to “${name}”`, onclick: () => S.setEventFilter(name) },
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
        const result = await SO.api("POST", `${S.API}/events/${encodeURIComponent(name)}`);
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
        S.scheduleReload(400);
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

  Object.assign(S, { renderRefresh, renderStats });
})();
