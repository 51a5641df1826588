/* Library page (9/9): starts the page once its panels (static/js/library/) are loaded. */
(function () {
  "use strict";
  const L = window.SO.library;

  L.list.syncUrl(); // the filter chips and the Clear button, as the URL says
  L.loadStats();
  L.loadRoots().then(() => L.loadDups());
  L.loadTags();
  L.loadScripts();
  L.feed.connect();
  L.routeHash();
})();
