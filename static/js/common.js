/* ScriptOps dashboard: shared helpers (API calls with CSRF, formatting, badges,
 * toasts, the reconnecting websocket and the run action buttons).
 *
 * Plain browser JavaScript, no build step and no third-party code: everything the
 * dashboard needs is served by the app itself and works offline.
 * Text from the server is only ever inserted with textContent / text nodes.
 */
(function () {
  "use strict";

  const SO = (window.SO = window.SO || {});
  const body = document.body;

  SO.role = body.dataset.role || "readonly";
  SO.can = {
    execute: body.dataset.canExecute === "1",
    remove: body.dataset.canDelete === "1",
  };

  // -- DOM -------------------------------------------------------------------------
  /** h("tag.class", {attrs}, ...children): children that are strings become text nodes. */
  SO.h = function h(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split(".");
    const node = document.createElement(tag || "div");
    if (classes.length) node.className = classes.join(" ");
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "text") node.textContent = value;
        else if (key === "class") node.className += (node.className ? " " : "") + value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
        else if (value === true) node.setAttribute(key, "");
        else node.setAttribute(key, String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };
  const ICONS = {
    copy: "M5.5 5.5V3.25c0-.41.34-.75.75-.75h6.5c.41 0 .75.34.75.75v6.5c0 .41-.34.75-.75.75H10.5M3.25 5.5h6.5c.41 0 .75.34.75.75v6.5c0 .41-.34.75-.75.75h-6.5a.75.75 0 01-.75-.75v-6.5c0-.41.34-.75.75-.75z",
  };
  /** A small stroke icon as inline SVG (built with DOM calls, never from HTML strings). */
  SO.icon = function icon(name) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "1.4");
    path.setAttribute("stroke-linejoin", "round");
    svg.append(path);
    return svg;
  };
  SO.$ = (sel, root) => (root || document).querySelector(sel);
  SO.$$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  SO.clear = function (node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  };

  // -- API -------------------------------------------------------------------------
  function cookie(name) {
    for (const part of document.cookie ? document.cookie.split(";") : []) {
      const [key, ...rest] = part.trim().split("=");
      if (key === name) return decodeURIComponent(rest.join("="));
    }
    return null;
  }

  let csrfFromApi = null;
  async function csrfToken() {
    const fromCookie = cookie("csrftoken");
    if (fromCookie) return fromCookie;
    if (!csrfFromApi) {
      const res = await fetch("/api/csrf_token", { credentials: "same-origin", headers: { Accept: "application/json" } });
      csrfFromApi = (await res.json()).csrf_token;
    }
    return csrfFromApi;
  }

  class ApiError extends Error {
    constructor(status, data) {
      const message =
        data && typeof data === "object" && data.message
          ? data.message
          : status === 0
            ? "The server could not be reached."
            : `The server answered ${status}.`;
      super(message);
      this.status = status;
      this.data = data && typeof data === "object" ? data : { message };
      this.code = this.data.error || "error";
      this.details = this.data.details || {};
    }
  }
  SO.ApiError = ApiError;

  function toLogin() {
    const next = encodeURIComponent(location.pathname + location.search + location.hash);
    location.assign(`/login/?next=${next}`);
  }

  /** One request; resolves to {status, ok, data, headers}. Never throws for HTTP errors. */
  SO.request = async function request(method, url, payload, { signal } = {}) {
    // The header tells a launch from these pages (source "dashboard") from an API client's.
    const headers = { Accept: "application/json", "X-ScriptOps-Client": "dashboard" };
    const init = { method, headers, credentials: "same-origin", signal };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    if (!["GET", "HEAD", "OPTIONS"].includes(method)) headers["X-CSRFToken"] = await csrfToken();
    let res;
    try {
      res = await fetch(url, init);
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      return { status: 0, ok: false, data: null, headers: new Headers() };
    }
    if (res.status === 401) {
      // The session expired (or the user signed out in another tab).
      toLogin();
    }
    const type = res.headers.get("Content-Type") || "";
    let data = null;
    if (res.status !== 204) data = type.includes("json") ? await res.json().catch(() => null) : await res.text();
    return { status: res.status, ok: res.ok, data, headers: res.headers };
  };

  /** Like request() but resolves to the data and throws ApiError on failure. */
  SO.api = async function api(method, url, payload, options) {
    const res = await SO.request(method, url, payload, options);
    if (!res.ok) throw new ApiError(res.status, res.data);
    return res.data;
  };

  // -- formatting ------------------------------------------------------------------
  const pad = (n, w = 2) => String(n).padStart(w, "0");

  SO.fmt = {
    duration(seconds) {
      if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
      const s = Number(seconds);
      if (s < 1) return `${Math.round(s * 1000)} ms`;
      if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
      if (s < 3600) return `${Math.floor(s / 60)}m ${pad(Math.floor(s % 60))}s`;
      if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
      return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
    },
    dateTime(value) {
      if (!value) return "–";
      const d = value instanceof Date ? value : new Date(typeof value === "number" ? value * 1000 : value);
      if (Number.isNaN(d.getTime())) return "–";
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    },
    time(value, withMs) {
      if (!value && value !== 0) return "–";
      const d = value instanceof Date ? value : new Date(typeof value === "number" ? value * 1000 : value);
      if (Number.isNaN(d.getTime())) return "–";
      const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
      return withMs ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
    },
    relative(value) {
      if (!value) return "–";
      const d = new Date(value);
      const diff = (Date.now() - d.getTime()) / 1000;
      if (Number.isNaN(diff)) return "–";
      if (diff < 0 && diff > -5) return "just now";
      if (diff < 0) return `in ${SO.fmt.duration(-diff)}`;
      if (diff < 5) return "just now";
      if (diff < 60) return `${Math.floor(diff)} s ago`;
      if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
      if (diff < 86400) return `${Math.floor(diff / 3600)} h ago`;
      if (diff < 7 * 86400) return `${Math.floor(diff / 86400)} d ago`;
      return SO.fmt.dateTime(d).slice(0, 10);
    },
    bytes(n) {
      if (n === null || n === undefined) return "–";
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let v = Number(n);
      let i = 0;
      while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i += 1;
      }
      return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
    },
    number(n) {
      return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
    },
    shortId(id) {
      return id ? String(id).slice(0, 8) : "–";
    },
    basename(path) {
      const parts = String(path || "").split("/");
      return parts[parts.length - 1] || path || "";
    },
    dirname(path) {
      const parts = String(path || "").split("/");
      parts.pop();
      return parts.join("/");
    },
  };

  /** A <time> that keeps saying "12 s ago" correctly (refreshed by a shared timer). */
  SO.relTime = function relTime(iso) {
    if (!iso) return SO.h("span.muted", null, "–");
    return SO.h("time", { datetime: iso, title: SO.fmt.dateTime(iso), dataset: { rel: iso } }, SO.fmt.relative(iso));
  };
  setInterval(() => {
    for (const node of SO.$$("time[data-rel]")) node.textContent = SO.fmt.relative(node.dataset.rel);
  }, 10000);

  // -- badges ----------------------------------------------------------------------
  const STATUS_LABELS = {
    queued: "queued",
    running: "running",
    completed: "completed",
    failed: "failed",
    cancelled: "cancelled",
  };
  SO.badge = function badge(kind, value, extra) {
    return SO.h(
      `span.badge.badge-${kind}-${value}`,
      { dataset: { badge: kind, value }, title: extra || undefined },
      kind === "status" && value === "running" ? SO.h("span.pulse", { "aria-hidden": "true" }) : null,
      STATUS_LABELS[value] || value,
    );
  };
  /** status + runner status + paused, as one group of badges. */
  SO.runBadges = function runBadges(run) {
    const group = SO.h("span.badge-group");
    group.append(SO.badge("status", run.status, "Run status"));
    if (run.run_status) {
      // The API says "killed" for any ended-on-request run; a graceful stop (SIGTERM, then
      // the grace period) reads "stopped", a kill (SIGKILL at once) "killed".
      const reason = run.error_summary && run.error_summary.reason;
      const stopped = run.run_status === "killed" && /^(stopped|cancelled) /.test(reason || "");
      const badge = SO.badge("run", run.run_status, stopped ? `Stopped on request (${reason}): SIGTERM, then SIGKILL after the grace period` : "What the runner reported");
      if (stopped) badge.lastChild.textContent = "stopped";
      group.append(badge);
    }
    if (run.paused && run.status === "running") group.append(SO.badge("flag", "paused", "SIGSTOP: paused"));
    return group;
  };
  SO.isActive = (run) => run.status === "queued" || run.status === "running";

  /** "KEY=value" lines (blank lines and # comments skipped) → {env, errors}: the
   * environment fields of the launch form and of the scheduler's task form. */
  /** The lines of a ``log_batch`` message ({n, stream, ts, text} each): its chunks hold
   *  consecutive lines joined by newlines, the first numbered ``first offset``. */
  SO.batchLines = function batchLines(data) {
    const lines = [];
    for (const [first, stream, ts, text] of data.chunks || []) {
      text.split("\n").forEach((line, i) => lines.push({ n: first + i, stream, ts, text: line }));
    }
    return lines;
  };

  SO.parseEnv = function parseEnv(text) {
    const env = {};
    const errors = [];
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith("#")) return;
      const eq = line.indexOf("=");
      if (eq <= 0) {
        errors.push(`Line ${i + 1}: expected KEY=VALUE.`);
        return;
      }
      env[line.slice(0, eq).trim()] = line.slice(eq + 1);
    });
    return { env, errors };
  };

  // -- toasts ----------------------------------------------------------------------
  SO.toast = function toast(message, { kind = "info", link, action, timeout } = {}) {
    const root = document.getElementById("toasts");
    if (!root) return;
    const close = SO.h("button.toast-close", { type: "button", "aria-label": "Dismiss" }, "×");
    const node = SO.h(
      `div.toast.toast-${kind}`,
      { role: kind === "error" ? "alert" : "status" },
      SO.h("span.toast-msg", null, message),
      link ? SO.h("a.toast-link", { href: link.href }, link.label) : null,
      action ? SO.h("button.toast-link.toast-action", { type: "button", dataset: { action: action.name || "" } }, action.label) : null,
      close,
    );
    const remove = () => {
      node.classList.add("leaving");
      setTimeout(() => node.remove(), 200);
    };
    if (action) {
      SO.$(".toast-action", node).addEventListener("click", () => {
        remove();
        action.onClick();
      });
    }
    close.addEventListener("click", remove);
    root.append(node);
    setTimeout(remove, timeout || (kind === "error" || link ? 10000 : 6000));
    return node;
  };

  // -- live indicator + reconnecting websocket ---------------------------------------
  SO.setLive = function setLive(state, label) {
    const node = document.getElementById("live-indicator");
    if (!node) return;
    node.hidden = false;
    node.dataset.state = state;
    SO.$(".live-label", node).textContent =
      label || { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", off: "Offline", done: "Finished" }[state] || state;
  };

  /**
   * A websocket that reconnects with exponential backoff (1 s → 30 s, jittered) and
   * pings every 15 s. ``path`` is a function so each reconnect can resume (``?after=``).
   * Close codes 4401/4403/4404 (not signed in, not allowed, no such run) end it.
   */
  class LiveSocket {
    constructor(path, { onMessage, onState, onGiveUp } = {}) {
      this.path = path;
      this.onMessage = onMessage || (() => {});
      this.onState = onState || (() => {});
      this.onGiveUp = onGiveUp || (() => {});
      this.attempt = 0;
      this.closed = false;
      this.ws = null;
      this.pingTimer = null;
      this.retryTimer = null;
    }
    connect() {
      if (this.closed) return this;
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      this.onState(this.attempt ? "reconnecting" : "connecting");
      const ws = new WebSocket(scheme + location.host + this.path());
      this.ws = ws;
      ws.addEventListener("open", () => {
        this.attempt = 0;
        this.onState("live");
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => this.send({ type: "ping", timestamp: new Date().toISOString() }), 15000);
      });
      ws.addEventListener("message", (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        this.onMessage(msg);
      });
      ws.addEventListener("close", (event) => {
        clearInterval(this.pingTimer);
        if (this.ws !== ws) return;
        this.ws = null;
        if (this.closed) return;
        if (event.code === 4401) return toLogin();
        if (event.code === 4403 || event.code === 4404) {
          this.closed = true;
          this.onState("off");
          this.onGiveUp(event.code);
          return;
        }
        this.schedule();
      });
      return this;
    }
    schedule() {
      const delay = Math.min(30000, 1000 * 2 ** this.attempt) * (0.6 + Math.random() * 0.4);
      this.attempt += 1;
      this.onState("reconnecting");
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    }
    /** Connected: what the server sends reaches the page, in order. */
    get open() {
      return !!this.ws && this.ws.readyState === WebSocket.OPEN;
    }
    send(payload) {
      if (this.open) this.ws.send(JSON.stringify(payload));
    }
    close() {
      this.closed = true;
      clearInterval(this.pingTimer);
      clearTimeout(this.retryTimer);
      if (this.ws) this.ws.close(1000);
      this.ws = null;
    }
  }
  SO.LiveSocket = LiveSocket;

  // -- forms -----------------------------------------------------------------------
  /** Show the API's {"details": {field: [...]}} next to the fields; returns unplaced messages. */
  SO.showFieldErrors = function showFieldErrors(form, err) {
    SO.clearFieldErrors(form);
    const details = (err && err.details) || {};
    const unplaced = [];
    for (const [field, messages] of Object.entries(details)) {
      const text = (Array.isArray(messages) ? messages : [messages])
        .map((m) => (typeof m === "object" ? JSON.stringify(m) : String(m)))
        .join(" ");
      const slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
      if (slot && field !== "non_field_errors") {
        slot.textContent = text;
        const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
        if (input) {
          input.setAttribute("aria-invalid", "true");
          const details = input.closest("details");
          if (details) details.open = true;
        }
      } else {
        unplaced.push(field === "non_field_errors" ? text : `${field}: ${text}`);
      }
    }
    if (!Object.keys(details).length && err) unplaced.push(err.message);
    const general = form.querySelector('[data-error-for="non_field_errors"]');
    if (general && unplaced.length) {
      general.textContent = unplaced.join(" ");
      general.hidden = false;
    }
    const first = form.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
    return unplaced;
  };
  SO.clearFieldErrors = function clearFieldErrors(form) {
    for (const slot of SO.$$("[data-error-for]", form)) {
      slot.textContent = "";
      if (slot.classList.contains("alert")) slot.hidden = true;
    }
    for (const input of SO.$$('[aria-invalid="true"]', form)) input.removeAttribute("aria-invalid");
  };

  /** A button that asks "Sure?" on the first click and acts on a second one within 4 s. */
  SO.confirmButton = function confirmButton(button, label, action) {
    const original = button.textContent;
    let armed = null;
    button.addEventListener("click", async (event) => {
      event.preventDefault();
      if (!armed) {
        button.textContent = label;
        button.classList.add("armed");
        armed = setTimeout(() => {
          armed = null;
          button.textContent = original;
          button.classList.remove("armed");
        }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      button.classList.remove("armed");
      button.textContent = original;
      await action();
    });
    return button;
  };

  // -- run actions -----------------------------------------------------------------
  /** Which controls the run's state allows now (the role is checked separately). */
  SO.runAllows = function runAllows(run) {
    const active = SO.isActive(run);
    const running = run.status === "running";
    return {
      stop: active,
      kill: active,
      pause: running && !run.paused,
      resume: running && !!run.paused,
      restart: true,
      remove: !active,
    };
  };

  const ACTION_TITLES = {
    stop: "Graceful stop: SIGTERM, then SIGKILL after the grace period",
    kill: "SIGKILL the process group and every descendant",
    pause: "SIGSTOP: pause the process group",
    resume: "SIGCONT: resume the process group",
    restart: "Cancel if active, then queue a fresh run with the same parameters",
    remove: "Delete this run and its output",
  };

  /** POST a control action; resolves to the API's answer (a RunRecord) or null. */
  SO.runAction = async function runAction(run, action) {
    const id = run.id;
    try {
      if (action === "remove") {
        await SO.api("DELETE", `/api/runs/${id}`);
        SO.toast(`Run ${SO.fmt.shortId(id)} deleted.`, { kind: "success" });
        return { deleted: true };
      }
      const result = await SO.api("POST", `/api/runs/${id}/${action}`);
      if (action === "restart") {
        SO.toast(`Restarted as run ${SO.fmt.shortId(result.id)}.`, {
          kind: "success",
          link: { href: `/runs/${result.id}/`, label: "Open →" },
        });
      } else {
        const verb = { stop: "Stop requested", kill: "Kill requested", pause: "Paused", resume: "Resumed" }[action];
        SO.toast(`${verb}: ${SO.fmt.basename(run.script_path)} (${SO.fmt.shortId(id)}).`, { kind: "success" });
      }
      return result;
    } catch (err) {
      SO.toast(`Could not ${action === "remove" ? "delete" : action} the run: ${err.message}`, { kind: "error" });
      return null;
    }
  };

  /**
   * The control buttons a role may use, enabled when the run's state allows them.
   * ``onDone(action, result)`` is called after a successful action. ``result`` is the run
   * as the request left it: a page whose socket is open takes the run's changes from the
   * socket only (the runner may have paused the run, and the socket said so, before this
   * answer arrived; merging it would undo that).
   */
  SO.actionButtons = function actionButtons(run, { size = "sm", withDelete = false, onDone, applicableOnly = false } = {}) {
    const group = SO.h("span.actions");
    if (!SO.can.execute) return group;
    const allows = SO.runAllows(run);
    const make = (action, label, cls) => {
      const enabled = allows[action];
      // A table row shows only what applies to its run (no greyed buttons on every row).
      if (applicableOnly && !enabled) return null;
      const button = SO.h(
        `button.btn.btn-${size}.${cls}`,
        {
          type: "button",
          title: ACTION_TITLES[action],
          disabled: !enabled,
          dataset: { action },
        },
        label,
      );
      const perform = async () => {
        button.disabled = true;
        button.classList.add("busy");
        const result = await SO.runAction(run, action);
        button.classList.remove("busy");
        if (result && onDone) onDone(action, result);
        else button.disabled = !SO.runAllows(run)[action];
      };
      // What cannot be undone asks first: delete, kill, and a restart that ends a live run.
      if (action === "remove") SO.confirmButton(button, "Really delete?", perform);
      else if (action === "kill") SO.confirmButton(button, "Really kill?", perform);
      else if (action === "restart" && SO.isActive(run)) SO.confirmButton(button, "End it and restart?", perform);
      else button.addEventListener("click", perform);
      return button;
    };
    const add = (button) => button && group.append(button);
    add(make("stop", "Stop", "btn-warn"));
    add(make("kill", "Kill", "btn-danger"));
    add(run.paused && run.status === "running" ? make("resume", "Resume", "btn-soft") : make("pause", "Pause", "btn-soft"));
    add(make("restart", "↺ Restart", "btn-soft"));
    if (withDelete && SO.can.remove) add(make("remove", "Delete", "btn-danger-ghost"));
    return group;
  };

  // -- list pages: filters, pager and the URL ------------------------------------------
  /**
   * A paged, filtered list whose state lives in the page's URL, so a reload or a shared
   * link shows the same list. The Runs, Scheduler and Library pages use it.
   *
   * Markup: the pager of templates/dashboard/_pager.html (#pager-info, #page-prev,
   * #page-next, #page-num, #page-size) and #f-clear, shown while a filter is set.
   *
   * Options:
   *   filters   names of the filters: URL parameter = API parameter = key in ``state``
   *   passive   filters that do not count as "filtered" (an ordering, say)
   *   controls  {filter: element}, kept in step both ways: a search or text box is
   *             debounced, a checkbox stands for its value when ticked, others on change
   *   form      the filter <form> (submitting it does nothing: the list follows as one types)
   *   url       () => the API path of the list
   *   wrap      the element dimmed while a page loads
   *   noun      n => the total in the pager ("12 scripts"); the bare number by default
   *   urlExtra  (URLSearchParams) => void: page state that is not a filter (an open drawer)
   *   keepHash  keep location.hash when the URL is rewritten
   *   onPage    (results, data) => void: a page arrived (``state.count`` is already set)
   *   onError   (err) => void: a page could not be loaded
   *   onFilter  () => void: a filter changed (before the new page is asked for)
   *   onSync    () => void: the controls and the URL were brought up to date
   *   onSettled () => void: after every load, whatever happened
   *
   * Returns {state, load({quiet}), set(changes), clear(), active(), syncUrl(), renderPager()}.
   */
  SO.listView = function listView(options) {
    const {
      filters = [],
      passive = [],
      controls = {},
      form = null,
      url,
      wrap = null,
      noun = (n) => SO.fmt.number(n),
      urlExtra = null,
      keepHash = false,
      onPage = () => {},
      onError = () => {},
      onFilter = () => {},
      onSync = () => {},
      onSettled = () => {},
    } = options;
    const params = new URLSearchParams(location.search);
    const state = {
      page: Math.max(1, parseInt(params.get("page") || "1", 10) || 1),
      pageSize: parseInt(params.get("page_size") || "25", 10) || 25,
      count: 0,
      loaded: false,
    };
    for (const name of filters) state[name] = params.get(name) || "";
    const els = {
      info: SO.$("#pager-info"),
      prev: SO.$("#page-prev"),
      next: SO.$("#page-next"),
      pageNum: SO.$("#page-num"),
      pageSize: SO.$("#page-size"),
      clear: SO.$("#f-clear"),
    };

    const active = () => filters.some((name) => !passive.includes(name) && state[name]);
    const typed = (el) => el.type === "search" || el.type === "text";
    const read = (el) => (el.type === "checkbox" ? (el.checked ? el.value : "") : typed(el) ? el.value.trim() : el.value);

    function writeControls() {
      for (const [name, el] of Object.entries(controls)) {
        // A box being typed in keeps its text (a trailing space is not lost mid-word).
        if (read(el) === state[name]) continue;
        if (el.type === "checkbox") el.checked = !!state[name] && state[name] === el.value;
        else el.value = state[name];
      }
      if (els.pageSize) els.pageSize.value = String(state.pageSize);
    }

    function syncUrl() {
      const q = new URLSearchParams();
      for (const name of filters) if (state[name]) q.set(name, state[name]);
      if (state.page > 1) q.set("page", String(state.page));
      if (state.pageSize !== 25) q.set("page_size", String(state.pageSize));
      if (urlExtra) urlExtra(q);
      const qs = q.toString();
      history.replaceState(null, "", (qs ? `?${qs}` : location.pathname) + (keepHash ? location.hash : ""));
      if (els.clear) els.clear.hidden = !active();
      onSync();
    }

    function renderPager() {
      const pages = Math.max(1, Math.ceil(state.count / state.pageSize));
      const first = state.count ? (state.page - 1) * state.pageSize + 1 : 0;
      const last = Math.min(state.count, state.page * state.pageSize);
      els.info.textContent = state.count ? `Showing ${first}–${last} of ${noun(state.count)}` : "";
      els.pageNum.textContent = `Page ${state.page} of ${pages}`;
      els.prev.disabled = state.page <= 1;
      els.next.disabled = state.page >= pages;
    }

    let inflight = null;
    async function load({ quiet = false } = {}) {
      // Only the latest answer counts: a slow page must not overwrite a newer one.
      if (inflight) inflight.abort();
      const controller = new AbortController();
      inflight = controller;
      const q = new URLSearchParams({ page: String(state.page), page_size: String(state.pageSize) });
      for (const name of filters) if (state[name]) q.set(name, state[name]);
      if (wrap && !quiet) wrap.classList.add("refreshing");
      try {
        const res = await SO.request("GET", `${url()}?${q}`, undefined, { signal: controller.signal });
        if (res.status === 404 && state.page > 1) {
          state.page = 1; // the page vanished (rows deleted meanwhile): back to the first
          return load({ quiet });
        }
        if (!res.ok) throw new ApiError(res.status, res.data);
        const data = res.data;
        const results = Array.isArray(data) ? data : data.results || [];
        state.count = Array.isArray(data) ? data.length : data.count;
        state.loaded = true;
        onPage(results, data);
        renderPager();
        syncUrl();
      } catch (err) {
        if (err.name === "AbortError") return;
        onError(err);
      } finally {
        if (inflight === controller) {
          inflight = null;
          if (wrap) wrap.classList.remove("refreshing");
        }
        onSettled();
      }
    }

    /** Change filters (``{status: "failed"}``): back to the first page, controls and URL follow. */
    function set(changes) {
      Object.assign(state, changes);
      state.page = 1;
      writeControls();
      if (els.clear) els.clear.hidden = !active();
      onFilter();
      onSync();
      return load();
    }
    function clear() {
      const changes = {};
      for (const name of filters) if (!passive.includes(name)) changes[name] = "";
      return set(changes);
    }

    for (const [name, el] of Object.entries(controls)) {
      if (typed(el)) {
        let timer = null;
        el.addEventListener("input", () => {
          clearTimeout(timer);
          timer = setTimeout(() => set({ [name]: read(el) }), 300);
        });
      } else {
        el.addEventListener("change", () => set({ [name]: read(el) }));
      }
    }
    if (form) form.addEventListener("submit", (event) => event.preventDefault());
    if (els.clear) els.clear.addEventListener("click", clear);
    els.pageSize.addEventListener("change", () => {
      state.pageSize = parseInt(els.pageSize.value, 10);
      state.page = 1;
      load();
    });
    els.prev.addEventListener("click", () => {
      state.page = Math.max(1, state.page - 1);
      load();
    });
    els.next.addEventListener("click", () => {
      state.page += 1;
      load();
    });
    writeControls();

    return { state, load, set, clear, active, syncUrl, renderPager };
  };

  // -- copy to clipboard -------------------------------------------------------------
  SO.copy = async function copy(text, input) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (err) {
      // Fallback for browsers that refuse the async clipboard (e.g. plain http on a LAN name).
      if (input) {
        input.select();
        try {
          return document.execCommand("copy");
        } catch (err2) {
          return false;
        }
      }
      return false;
    }
  };
})();
