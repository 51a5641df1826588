/* System page: GET /api/system/status every 2 s, with short CPU/memory histories. */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt } = SO;
  const INTERVAL = 2000;
  const HISTORY = 90; // three minutes of points
  const history = { cpu: [], mem: [] };
  let failures = 0;

  function set(name, value) {
    for (const node of SO.$$(`[data-sys="${name}"]`)) node.textContent = value;
  }
  function bar(name, percent) {
    const node = $(`[data-sys="${name}"]`);
    if (!node) return;
    const p = Math.max(0, Math.min(100, Number(percent) || 0));
    node.style.width = `${p}%`;
    node.className = `meter-fill ${p >= 90 ? "meter-bad" : p >= 70 ? "meter-warn" : "meter-good"}`;
  }
  function spark(name, values, color) {
    const node = $(`[data-spark="${name}"]`);
    if (!node) return;
    SO.lineChart(node, values.map((y, x) => ({ x, y })), { compact: true, height: 44, color, minMax: 100 });
  }

  function render(s) {
    const load = s.cpu.load_average || [];
    set("cpu-count", `${s.cpu.count} core${s.cpu.count === 1 ? "" : "s"}`);
    set("cpu-percent", Number(s.cpu.percent).toFixed(0));
    bar("cpu-bar", s.cpu.percent);
    set("load-1", load[0] !== undefined ? load[0].toFixed(2) : "–");
    set("load-5", load[1] !== undefined ? load[1].toFixed(2) : "–");
    set("load-15", load[2] !== undefined ? load[2].toFixed(2) : "–");

    set("mem-total", `${fmt.bytes(s.memory.total)} total`);
    set("mem-percent", Number(s.memory.percent).toFixed(0));
    bar("mem-bar", s.memory.percent);
    set("mem-used", fmt.bytes(s.memory.used));
    set("mem-available", fmt.bytes(s.memory.available));

    set("disk-path", s.disk.path);
    set("disk-percent", Number(s.disk.percent).toFixed(0));
    bar("disk-bar", s.disk.percent);
    set("disk-free", fmt.bytes(s.disk.free));
    set("disk-total", fmt.bytes(s.disk.total));

    const w = s.workers;
    set("workers-busy", fmt.number(w.busy));
    set("workers-configured", fmt.number(w.configured));
    set("broker", `broker: ${w.broker}`);
    set("hosts", w.hosts && w.hosts.length ? w.hosts.join(", ") : "none");
    const slots = SO.clear($('[data-sys="worker-slots"]'));
    const total = Math.max(w.configured, w.busy);
    for (let i = 0; i < Math.min(total, 64); i += 1) slots.append(h(`span.slot${i < w.busy ? ".busy" : ""}`));

    const q = s.queue;
    set("queued", fmt.number(q.queued_runs));
    set("running", fmt.number(q.running_runs));
    set("paused", fmt.number(q.paused_runs));
    set("pending", q.broker_pending_tasks === null ? "unknown (broker unreachable)" : fmt.number(q.broker_pending_tasks));
    set("server-time", fmt.dateTime(s.server_time));

    history.cpu.push(Number(s.cpu.percent) || 0);
    history.mem.push(Number(s.memory.percent) || 0);
    for (const list of Object.values(history)) while (list.length > HISTORY) list.shift();
    spark("cpu", history.cpu, "#4f63ff");
    spark("mem", history.mem, "#0e9f8e");
  }

  async function tick() {
    const stateEl = $("#refresh-state");
    try {
      const s = await SO.api("GET", "/api/system/status");
      render(s);
      failures = 0;
      $("#system-error").hidden = true;
      SO.clear(stateEl).append(h("span.live-dot.on", { "aria-hidden": "true" }), ` Updated ${fmt.time(new Date())}`);
    } catch (err) {
      failures += 1;
      const box = $("#system-error");
      box.hidden = false;
      box.textContent = `Could not refresh (${failures}×): ${err.message}`;
      SO.clear(stateEl).append(h("span.live-dot.off", { "aria-hidden": "true" }), " Retrying…");
    }
    // Slow down while the tab is hidden or the server keeps failing.
    const delay = document.hidden ? INTERVAL * 5 : INTERVAL * Math.min(8, 2 ** Math.max(0, failures - 1));
    setTimeout(tick, delay);
  }
  tick();
})();
