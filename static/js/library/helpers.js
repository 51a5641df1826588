/* Library page (1/9): the page's namespace, its shared state and small helpers.
 *
 * The page is split by panel into static/js/library/*.js, loaded in order by
 * templates/library/library.html: helpers, stats (and duplicates), roots (and scans),
 * root_form (and the folder picker), tags, scripts, sheet, sheet_tabs, then
 * static/js/library.js, which starts it. Each file is a plain script in its own IIFE;
 * they share ``SO.library`` (here ``L``): data and helpers are read from it when a file
 * loads, functions of later files are called through it (``L.openScript(...)``).
 *
 * Everything comes from /api/library/ and /api/browse; scan progress arrives on the
 * runs feed (/ws/runs/, ``scan_progress``) or, while it is down, by polling.
 *
 * Text from the server is only ever inserted with textContent / text nodes. The one
 * exception is the Pygments markup of the content viewer: it is parsed into an inert
 * <template> and only the elements and attributes Pygments emits are kept (see cleanCode
 * in sheet_tabs.js).
 */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, fmt } = SO;
  const L = (SO.library = {});

  const pageRoot = $("#library");
  L.can = {
    execute: SO.can.execute,
    edit: pageRoot.dataset.canEdit === "1", // scripts' metadata, tags, scans (user and up)
    admin: pageRoot.dataset.isAdmin === "1", // folder roots (admin)
  };
  L.ALLOWED_ROOTS = JSON.parse($("#allowed-roots").textContent || "[]");
  L.API = "/api/library";
  const STATUSES = (L.STATUSES = ["active", "draft", "deprecated", "archived"]);
  L.TAG_PALETTE = ["#4355e8", "#12805c", "#c5283d", "#a15c00", "#6d3fc6", "#1f6fd1", "#0f766e", "#be185d", "#4b5563"];

  // -- shared state -------------------------------------------------------------------
  // The scripts list's own state (filters, page, count) is L.list.state (scripts.js).
  L.roots = { list: [], byId: new Map(), loaded: false, loadedAt: 0 }; // roots.js
  L.tags = { list: [], byId: new Map() }; // tags.js
  // The script open in the sheet (sheet.js) and the sheet's tab panels.
  L.sheet = { el: $("#script-sheet"), id: null, script: null, opener: null, tab: "overview", loaded: {}, seq: 0 };
  L.panels = {
    overview: $("#panel-overview"),
    content: $("#panel-content"),
    history: $("#panel-history"),
    runs: $("#panel-runs"),
  };

  // -- small helpers ----------------------------------------------------------------
  const listOf = (data) => (Array.isArray(data) ? data : (data && data.results) || []);
  const plural = (n, word, many) => `${fmt.number(n)} ${Number(n) === 1 ? word : many || `${word}s`}`;
  const safeColor = (value) => (/^#[0-9a-fA-F]{6}$/.test(value || "") ? value : "#6b7280");
  // The API sends times as ISO 8601; a bare number is seconds since the epoch.
  const isoTime = (value) => (typeof value === "number" ? new Date(value * 1000).toISOString() : value || null);
  const scriptLink = (id) => `#script=${encodeURIComponent(id)}`;
  const runHref = (id) => `/?script_id=${encodeURIComponent(id)}`;

  function tagChip(tag, { onClick, onRemove, pressed } = {}) {
    const chip = h(
      "span.tag-chip",
      { dataset: { tagId: tag.id, tag: tag.name }, title: tag.description || undefined },
      h("span.tag-dot", { "aria-hidden": "true" }),
      h("span.tag-name", null, tag.name),
    );
    if (onClick) {
      const button = h(
        "button.tag-chip.tag-chip-button",
        {
          type: "button",
          dataset: { tagId: tag.id, tag: tag.name },
          title: tag.description || `Show scripts tagged ${tag.name}`,
          "aria-pressed": pressed ? "true" : "false",
          onclick: onClick,
        },
        ...chip.childNodes,
      );
      button.style.setProperty("--tag", safeColor(tag.color));
      return button;
    }
    chip.style.setProperty("--tag", safeColor(tag.color));
    if (onRemove) {
      chip.append(
        h("button.tag-remove", { type: "button", "aria-label": `Remove the tag ${tag.name}`, title: "Remove", onclick: onRemove }, "×"),
      );
    }
    return chip;
  }

  const statusBadge = (status) =>
    h(`span.badge.badge-lib-${STATUSES.includes(status) ? status : "other"}`, { dataset: { badge: "lib-status", value: status } }, status);
  const langBadge = (language) => h("span.badge.badge-lang", { dataset: { badge: "language", value: language } }, language || "other");
  const missingBadge = (since) =>
    h("span.badge.badge-missing", { dataset: { badge: "missing" }, title: since ? `Missing since ${fmt.dateTime(since)}` : undefined }, "missing");

  // A Python file that does not parse: shown, never passed off as healthy.
  const parseErrorBadge = (message) =>
    h("span.badge.badge-parse-error", { dataset: { badge: "parse-error" }, title: message }, "parse error");

  function emptyBlock(title, text, ...extra) {
    return h("div.lib-empty", null, h("div.empty-title", null, title), text ? h("div.muted", null, text) : null, ...extra);
  }

  function errorBlock(title, err) {
    return h("div.alert.alert-error.lib-error", { role: "alert" }, h("strong", null, `${title}: `), err.message);
  }

  // -- confirmation dialog ----------------------------------------------------------
  /** A modal yes/no question; resolves to true when confirmed. Focus returns to the opener. */
  function confirmDialog({ title, text, ok = "Delete" }) {
    const dialog = $("#confirm-dialog");
    const opener = document.activeElement;
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = ok;
    dialog.returnValue = "";
    dialog.showModal();
    $("#confirm-cancel").focus(); // the safe choice is the default one
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          resolve(dialog.returnValue === "ok");
          if (opener && opener.isConnected) opener.focus();
        },
        { once: true },
      );
    });
  }

  /** ▶ Run: the Runs page's launch form, filled in for this script. */
  function runButton(script, size) {
    const label = `Run ${script.relpath || script.name}`;
    if (script.missing || script.missing_since) {
      const why = "The file is missing: rescan its root or restore it";
      return h(`button.btn.btn-${size}.btn-secondary`, { type: "button", disabled: true, title: why, "aria-label": label }, "▶ Run");
    }
    return h(
      `a.btn.btn-${size}.${size === "sm" ? "btn-secondary" : "btn-primary"}`,
      { href: runHref(script.id), dataset: { action: "run" }, "aria-label": label, title: "Open the launch form for this script" },
      "▶ Run",
    );
  }

  /** A table head; a label starting with "#" is a number column. */
  function thead(...labels) {
    const cells = labels.map((label) => (label.startsWith("#") ? h("th.col-num", null, label.slice(1)) : h("th", null, label)));
    return h("thead", null, h("tr", null, ...cells));
  }

  Object.assign(L, {
    listOf,
    plural,
    safeColor,
    isoTime,
    scriptLink,
    runHref,
    tagChip,
    statusBadge,
    langBadge,
    missingBadge,
    parseErrorBadge,
    emptyBlock,
    errorBlock,
    confirmDialog,
    runButton,
    thead,
  });
})();
