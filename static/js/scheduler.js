/* Scheduler page (7/7): starts the page once its panels (static/js/scheduler/) are loaded,
 * and keeps it live: countdowns tick every second, the list and the graph are polled.
 */
(function () {
  "use strict";
  const SO = window.SO;
  const S = SO.scheduler;

  // -- live refresh ----------------------------------------------------------------------
  setInterval(() => {
    for (const node of SO.$$("[data-countdown]")) node.textContent = S.countdown(node.dataset.countdown);
    S.renderRefresh();
  }, 1000);
  setInterval(() => {
    if (document.hidden) return;
    S.list.load({ quiet: true });
    S.loadGraph();
  }, S.POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) S.scheduleReload(0);
  });

  // -- start -----------------------------------------------------------------------------
  S.list.load();
  S.loadGraph();
  const initial = parseInt(new URLSearchParams(location.search).get("task") || "", 10);
  if (initial) S.openTask(initial);
})();
