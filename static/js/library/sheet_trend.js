/* Library page: a script's recent runs in its sheet's overview — a strip of the last 30
 * runs' statuses and the duration trend (GET /api/analytics/scripts/summary). */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, fmt } = SO;
  const L = SO.library;

  /** Fill ``container`` with the script's strip and trend; ``stale()`` true drops the answer
   * (another script was opened meanwhile). */
  L.renderTrend = async function renderTrend(container, script, stale) {
    SO.clear(container).append(h("p.loading-row", null, h("span.spinner"), " Loading its runs…"));
    let data;
    try {
      data = await SO.api("GET", `/api/analytics/scripts/summary?${new URLSearchParams({ script_path: script.path })}`);
    } catch (err) {
      if (!stale()) SO.clear(container).append(h("div.alert.alert-error", { role: "alert" }, `Could not load its runs: ${err.message}`));
      return;
    }
    if (stale()) return;
    SO.clear(container);
    if (!data.last_runs.length) {
      container.append(h("p.muted", { dataset: { testid: "script-trend-empty" } }, "No run of this script recorded yet."));
      return;
    }
    const cells = data.last_runs.map((r) =>
      h(
        r.run_id ? "a" : "span",
        {
          class: `cell cell-${r.status}`,
          href: r.run_id ? `/runs/${r.run_id}/` : undefined,
          title: `${r.status} · ${fmt.duration(r.duration)} · ${fmt.dateTime(r.recorded_at)}`,
          "aria-label": `${r.status}, ${fmt.duration(r.duration)}`,
          dataset: { status: r.status },
        },
      ),
    );
    const rate = data.success_rate === null ? "–" : `${Math.round(data.success_rate * 100)} %`;
    const trend = data.trend.direction === "stable" ? "stable" : `${data.trend.direction} (${data.trend.change_percent > 0 ? "+" : ""}${data.trend.change_percent.toFixed(1)} %)`;
    const chart = h("div.chart", { dataset: { testid: "script-trend-chart" } });
    container.append(
      h("div.status-strip", { dataset: { testid: "status-strip" }, role: "list", "aria-label": `Last ${cells.length} runs, oldest first` }, cells),
      h("p.muted.small", null, `Last 30 days: ${rate} successful · p50 ${fmt.duration(data.p50)} · duration ${trend} · `, h("a", { href: `/analytics/?${new URLSearchParams({ script_path: script.path, metric: "duration_seconds" })}` }, "Analytics")),
      chart,
    );
    const first = new Date(data.last_runs[0].recorded_at).getTime() / 1000;
    SO.lineChart(
      chart,
      data.last_runs.map((r) => ({ x: new Date(r.recorded_at).getTime() / 1000 - first, y: r.duration })),
      { title: "Duration of the last runs", height: 110, format: (v) => fmt.duration(v) },
    );
  };
})();
