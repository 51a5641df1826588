// Phone layout helpers. <details data-fold-on-phone> starts folded on a narrow screen
// (the launch form would otherwise push the runs list a screen down), unless the URL
// carries one of the names in data-fold-unless as a query parameter (?name=) or a hash
// (#name=): a link that asked for what is inside.
(function () {
  "use strict";
  const narrow = window.matchMedia("(max-width: 760px)");
  document.addEventListener("DOMContentLoaded", () => {
    if (!narrow.matches) return;
    const params = new URLSearchParams(window.location.search);
    const hashName = (/^#([\w-]+)=/.exec(window.location.hash) || [])[1];
    document.querySelectorAll("details[data-fold-on-phone]").forEach((details) => {
      const unless = (details.dataset.foldUnless || "").split(/\s+/).filter(Boolean);
      if (!unless.some((name) => params.has(name) || name === hashName)) details.open = false;
    });
  });
})();
