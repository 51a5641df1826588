/* The Analytics page: one script's metric over time (uPlot, vendored in
 * static/vendor/uplot), its summary, the overview across scripts and the benchmarks.
 * Everything comes from /api/analytics/* with the session, like any other client.
 * Text from the server is only ever inserted with textContent / text nodes.
 */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt } = SO;

  const state = JSON.parse($("#analytics-state").textContent);
  state.since = null; // the zoom window (Date), or null for the whole window
  state.until = null;
  const byPath = new Map(state.scripts.map((s) => [s.script_path, s.metrics]));
  const els = {
    form: $("#an-form"),
    script: $("#an-script"),
    metric: $("#an-metric"),
    days: $("#an-days"),
    since: $("#an-since"),
    until: $("#an-until"),
    zoomApply: $("#an-zoom-apply"),
    zoomReset: $("#an-zoom-reset"),
    chart: $("#an-chart"),
    caption: $("#an-caption"),
    summary: $("#an-summary"),
    anomalies: $("#an-anomalies"),
    error: $("#an-error"),
    csv: $("#an-export-csv"),
    json: $("#an-export-json"),
    overview: $("#an-overview"),
    benchmarks: $("#an-benchmarks"),
  };
  let plot = null;
  let seq = 0;

  const isDuration = (metric) => /_seconds$/.test(metric);
  const show = (metric, v) => (v === null || v === undefined ? "–" : isDuration(metric) ? fmt.duration(v) : Number(v).toLocaleString("en-US", { maximumFractionDigits: 3 }));
  const percent = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)} %`);
  const signed = (v) => (v === null || v === undefined ? "–" : `${v > 0 ? "+" : ""}${v.toFixed(1)} %`);

  function query(extra) {
    const q = new URLSearchParams({ script_path: state.script_path, metric: state.metric, days: String(state.days), ...extra });
    return q.toString();
  }

  /** The address and the export links follow the filters (a reload or a shared link shows the same). */
  function syncLinks() {
    const page = new URLSearchParams({ script_path: state.script_path, metric: state.metric, days: String(state.days) });
    history.replaceState(null, "", `${location.pathname}?${page}`);
    els.csv.href = `/api/analytics/export?${query({ format: "csv" })}`;
    els.json.href = `/api/analytics/export?${query({ format: "json" })}`;
  }

  function showError(message) {
    els.error.textContent = message;
    els.error.hidden = !message;
  }

  // -- the chart ---------------------------------------------------------------------
  const pad2 = (n) => String(n).padStart(2, "0");
  function localInput(d) {
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function empty(title, text) {
    if (plot) {
      plot.destroy();
      plot = null;
    }
    SO.clear(els.chart).append(h("div.empty", { dataset: { testid: "an-empty" } }, h("div.empty-title", null, title), text ? h("div.muted", null, text) : null));
    els.chart.dataset.points = "0";
    SO.clear(els.summary);
    SO.clear(els.anomalies);
    els.caption.textContent = "";
  }

  /** uPlot's aligned columns: x (seconds), values, trend, anomalies, p50, p95. */
  function columns(data) {
    const xs = data.points.map((p) => p[0] / 1000);
    const ys = data.points.map((p) => p[1]);
    const line = data.trend.line || [];
    let trend = ys.map(() => null);
    if (line.length === 2) {
      const [[x0, y0], [x1, y1]] = line;
      const slope = x1 === x0 ? 0 : (y1 - y0) / (x1 - x0);
      trend = data.points.map((p) => y0 + slope * (p[0] - x0));
    }
    const odd = new Set(data.anomalies);
    const anomalies = data.points.map((p) => (odd.has(p[2]) ? p[1] : null));
    const band = data.baseline || {};
    const p50 = ys.map(() => (band.p50 === undefined ? null : band.p50));
    const p95 = ys.map(() => (band.p95 === undefined ? null : band.p95));
    return [xs, ys, trend, anomalies, p50, p95];
  }

  // Chart colours come from the page's theme (static/css/app.css variables); a theme
  // change redraws the chart with the new ones.
  let drawn = null;
  const themeColor = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  document.addEventListener("so:theme", () => {
    if (plot && drawn) draw(drawn);
  });

  function draw(data) {
    drawn = data;
    // The content box: clientWidth counts the padding, and a chart that wide sticks out
    // of the card (and scrolls a phone sideways).
    const box = getComputedStyle(els.chart);
    const inner = els.chart.clientWidth - parseFloat(box.paddingLeft) - parseFloat(box.paddingRight);
    const width = Math.max(240, Math.floor(inner || 800));
    const metric = state.metric;
    const axis = themeColor("--chart-axis", "#6b7587");
    const grid = themeColor("--chart-grid", "#edf0f5");
    const line = themeColor("--primary", "#4355e8");
    const trend = themeColor("--warn", "#a15c00");
    const anomaly = themeColor("--bad", "#c5283d");
    const opts = {
      width,
      height: 320,
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: axis, grid: { stroke: grid }, ticks: { stroke: grid } },
        { values: (u, ticks) => ticks.map((v) => show(metric, v)), size: 70, stroke: axis, grid: { stroke: grid }, ticks: { stroke: grid } },
      ],
      series: [
        {},
        { label: metric, stroke: line, width: 1.5, points: { show: true, size: 4 }, value: (u, v) => show(metric, v) },
        { label: "Trend", stroke: trend, width: 2, dash: [6, 4], points: { show: false }, value: (u, v) => show(metric, v) },
        { label: "Anomalies", stroke: anomaly, width: 0, paths: () => null, points: { show: true, size: 10, fill: anomaly }, value: (u, v) => show(metric, v) },
        { label: "p50", stroke: "rgba(35, 150, 100, 0.7)", width: 1, points: { show: false }, value: (u, v) => show(metric, v) },
        { label: "p95", stroke: "rgba(35, 150, 100, 0.45)", width: 1, dash: [3, 3], points: { show: false }, value: (u, v) => show(metric, v) },
      ],
      bands: [{ series: [5, 4], fill: "rgba(35, 150, 100, 0.08)" }],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 4) return;
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, width: 0 }, false);
            zoomTo(new Date(from * 1000), new Date(to * 1000));
          },
        ],
      },
    };
    if (plot) plot.destroy();
    SO.clear(els.chart);
    plot = new window.uPlot(opts, columns(data), els.chart);
  }

  function describe(data) {
    const t = data.trend;
    const n = data.points.length;
    els.chart.dataset.points = String(n);
    els.chart.dataset.metric = state.metric;
    els.chart.dataset.anomalies = String(data.anomalies.length);
    els.chart.dataset.trend = t.direction;
    const zoom = state.since ? ` · zoomed: ${fmt.dateTime(state.since)} – ${fmt.dateTime(state.until)}` : "";
    els.caption.textContent = `${n} point${n === 1 ? "" : "s"} of ${state.metric} · trend ${t.direction} (${signed(t.change_percent)}) · ${data.anomalies.length} anomal${data.anomalies.length === 1 ? "y" : "ies"}${zoom}`;

    const s = data.summary;
    const days = s.runs_per_day.length;
    const perDay = days ? s.runs / days : null;
    const item = (label, value) => h("div.an-stat", null, h("dt", null, label), h("dd", null, value));
    SO.clear(els.summary).append(
      item("Runs", fmt.number(s.runs)),
      item("Success rate", percent(s.success_rate)),
      item("Runs per day", perDay === null ? "–" : perDay.toFixed(1)),
      item("p50", show(state.metric, s.p50)),
      item("p90", show(state.metric, s.p90)),
      item("p95", show(state.metric, s.p95)),
      item("p99", show(state.metric, s.p99)),
    );

    SO.clear(els.anomalies);
    if (data.anomalies.length) {
      const odd = new Set(data.anomalies);
      const rows = data.points
        .filter((p) => odd.has(p[2]))
        .map((p) =>
          h(
            "tr",
            { dataset: { testid: "an-anomaly" } },
            h("td", null, fmt.dateTime(new Date(p[0]))),
            h("td.col-num", null, show(state.metric, p[1])),
            h("td", null, p[2] ? h("a.mono", { href: `/runs/${p[2]}/` }, fmt.shortId(p[2])) : "–"),
          ),
        );
      els.anomalies.append(
        h("h3.subhead", null, "Anomalies"),
        h("div.table-wrap", null, h("table.table.table-compact", null, h("thead", null, h("tr", null, h("th", null, "When"), h("th.col-num", null, "Value"), h("th", null, "Run"))), h("tbody", null, rows))),
      );
    }
  }

  async function loadChart() {
    if (!state.script_path || !state.metric) return; // the server rendered the empty state
    syncLinks();
    const mine = (seq += 1);
    const extra = {};
    if (state.since) extra.since = state.since.toISOString();
    if (state.until) extra.until = state.until.toISOString();
    els.chart.classList.add("refreshing");
    els.chart.setAttribute("aria-busy", "true");
    let data;
    try {
      data = await SO.api("GET", `/api/analytics/chart?${query(extra)}`);
    } catch (err) {
      if (mine !== seq) return;
      els.chart.classList.remove("refreshing");
      els.chart.removeAttribute("aria-busy");
      showError(`Could not load the chart: ${err.message}`);
      return;
    }
    if (mine !== seq) return; // a newer request was made meanwhile
    els.chart.classList.remove("refreshing");
    els.chart.removeAttribute("aria-busy");
    showError("");
    if (!data.points.length) {
      empty(state.since ? "Nothing in this time window" : "No history in this window", state.since ? "Zoom out, or pick a longer window." : `No run of this script recorded ${state.metric} in the last ${state.days} days.`);
    } else {
      draw(data);
      describe(data);
    }
    // Set once the first chart (or its empty state) is on screen; the benchmark waits for it.
    els.chart.dataset.chartReady = "1";
  }

  function zoomTo(since, until) {
    state.since = since;
    state.until = until;
    els.since.value = localInput(since);
    els.until.value = localInput(until);
    els.zoomReset.hidden = false;
    loadChart();
  }

  function unzoom() {
    state.since = null;
    state.until = null;
    els.since.value = "";
    els.until.value = "";
    els.zoomReset.hidden = true;
  }

  els.zoomApply.addEventListener("click", () => {
    const since = els.since.value ? new Date(els.since.value) : null;
    const until = els.until.value ? new Date(els.until.value) : null;
    if (!since || !until || Number.isNaN(since.getTime()) || Number.isNaN(until.getTime())) {
      showError("Give both ends of the time window.");
      return;
    }
    if (since >= until) {
      showError("The window's start must be before its end.");
      return;
    }
    zoomTo(since, until);
  });
  els.zoomReset.addEventListener("click", () => {
    unzoom();
    loadChart();
  });

  function fillMetrics() {
    const metrics = byPath.get(state.script_path) || [];
    SO.clear(els.metric).append(...metrics.map((m) => h("option", { value: m, selected: m === state.metric }, m)));
    els.metric.disabled = !metrics.length;
  }

  els.script.addEventListener("change", () => {
    state.script_path = els.script.value;
    const metrics = byPath.get(state.script_path) || [];
    if (!metrics.includes(state.metric)) state.metric = metrics.includes("duration_seconds") ? "duration_seconds" : metrics[0] || "";
    fillMetrics();
    unzoom();
    loadChart();
  });
  els.metric.addEventListener("change", () => {
    state.metric = els.metric.value;
    loadChart();
  });
  els.days.addEventListener("change", () => {
    state.days = Number(els.days.value);
    unzoom();
    loadChart();
    loadOverview();
  });
  els.form.addEventListener("submit", (e) => e.preventDefault());

  window.addEventListener("resize", () => {
    if (plot) plot.setSize({ width: Math.max(320, Math.floor(els.chart.clientWidth)), height: 320 });
  });

  // -- across scripts ----------------------------------------------------------------
  function scriptLink(path) {
    const q = new URLSearchParams({ script_path: path, metric: "duration_seconds", days: String(state.days) });
    return h("a.mono", { href: `/analytics/?${q}`, title: path }, fmt.basename(path));
  }

  function ranking(title, testid, rows, value) {
    const body = rows.length
      ? h("ol.an-rank", null, rows.map((r) => h("li", { dataset: { testid: `${testid}-row` } }, scriptLink(r.script_path), h("span.an-rank-value", null, value(r)))))
      : h("p.muted.empty-small", null, "None in this window.");
    return h("div.an-rank-col", { dataset: { testid } }, h("h3.subhead", null, title), body);
  }

  async function loadOverview() {
    let data;
    try {
      data = await SO.api("GET", `/api/analytics/overview?days=${state.days}&limit=5`);
    } catch (err) {
      SO.clear(els.overview).append(h("div.alert.alert-error", { role: "alert" }, `Could not load the overview: ${err.message}`));
      return;
    }
    if (!data.slowest.length) {
      SO.clear(els.overview).append(h("p.muted.empty-small", null, "No runs recorded in this window yet."));
      return;
    }
    SO.clear(els.overview).append(
      ranking("Slowest", "an-slowest", data.slowest, (r) => `${fmt.duration(r.mean)} mean · ${fmt.number(r.runs)} runs`),
      ranking("Most failing", "an-failing", data.most_failing, (r) => `${percent(r.failure_rate)} of ${fmt.number(r.runs)}`),
      ranking("Most regressed", "an-regressed", data.most_regressed, (r) => `${signed(r.change_percent)} over the window`),
    );
  }

  // -- benchmarks --------------------------------------------------------------------
  async function loadBenchmarks() {
    let names;
    try {
      names = (await SO.api("GET", "/api/analytics/benchmarks")).names;
    } catch (err) {
      SO.clear(els.benchmarks).append(h("div.alert.alert-error", { role: "alert" }, `Could not load the benchmarks: ${err.message}`));
      return;
    }
    if (!names.length) {
      SO.clear(els.benchmarks).append(h("p.muted.empty-small", null, "No benchmark yet. POST /api/analytics/benchmarks snapshots a script's metrics as a named version."));
      return;
    }
    const shown = names.slice(0, 20);
    const compared = await Promise.all(
      shown.map((b) => SO.api("GET", `/api/analytics/benchmarks/${encodeURIComponent(b.name)}/regressions`).catch(() => null)),
    );
    const rows = shown.map((b, i) => {
      const c = compared[i];
      let verdict;
      if (!c) verdict = h("span.muted", null, "–");
      else if (c.previous_version === null) verdict = h("span.muted", null, "first version");
      else if (c.regressions.length)
        verdict = h(
          "span.an-regressions",
          null,
          c.regressions.map((r) => h("span.badge.badge-status-failed", { title: `v${c.previous_version} ${r.previous} → v${c.version} ${r.current}` }, `${r.metric} ${signed(r.change_percent)}`)),
        );
      else verdict = h("span.badge.badge-status-completed", null, `no regression vs v${c.previous_version}`);
      return h(
        "tr",
        { dataset: { testid: "an-benchmark", name: b.name } },
        h("td", null, b.name),
        h("td.col-num", null, `v${b.latest_version}`),
        h("td", null, scriptLink(b.script_path)),
        h("td", null, SO.relTime(b.created_at)),
        h("td", null, verdict),
      );
    });
    SO.clear(els.benchmarks).append(
      h(
        "div.table-wrap",
        null,
        h(
          "table.table.table-compact",
          null,
          h("thead", null, h("tr", null, h("th", null, "Name"), h("th.col-num", null, "Latest"), h("th", null, "Script"), h("th", null, "Saved"), h("th", null, "Regressions"))),
          h("tbody", null, rows),
        ),
      ),
    );
  }

  if (state.requested_script && !state.script_path) els.chart.dataset.chartReady = "1"; // the server's empty state
  if (!state.scripts.length) els.chart.dataset.chartReady = "1";
  loadChart();
  loadOverview();
  loadBenchmarks();
})();
