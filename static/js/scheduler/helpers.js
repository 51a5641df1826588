/* Scheduler page (1/7): the page's namespace, its shared state and small helpers.
 *
 * The page is split by panel into static/js/scheduler/*.js, loaded in order by
 * templates/scheduler/scheduler.html: helpers, stats, list, graph, drawer, form, then
 * static/js/scheduler.js, which starts it. Each file is a plain script in its own IIFE;
 * they share ``SO.scheduler`` (here ``S``): data and helpers are read from it when a file
 * loads, functions of later files are called through it (``S.openTask(...)``).
 *
 * Everything goes through /api/scheduler/ (see scheduler/pages.py). Text from the
 * server is only ever inserted with textContent / text nodes (SO.h).
 */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, fmt } = SO;
  const S = (SO.scheduler = {});

  const root = SO.$("#scheduler");
  S.can = { run: root.dataset.canRun === "1", manage: root.dataset.canManage === "1", force: root.dataset.isAdmin === "1" };
  S.API = "/api/scheduler";
  S.POLL_MS = 5000;
  S.SVG_NS = "http://www.w3.org/2000/svg";
  const pad = (n) => String(n).padStart(2, "0");

  // -- shared state ----------------------------------------------------------------
  // The list's own state (filters, page, count) is S.list.state (list.js).
  const state = (S.state = {
    tasks: [], // the page of tasks on show
    graph: { nodes: [], edges: [] }, // every task, for the graph, the stats and the form
    graphSig: "",
    lastOk: null, // when the list last loaded
    failing: false,
  });
  // The task open in the drawer (drawer.js).
  S.drawer = {
    el: SO.$("#task-drawer"),
    id: null,
    task: null,
    sig: "",
    historyPage: 0,
    historyMore: false,
    historySig: "",
  };

  // -- small helpers ---------------------------------------------------------------
  function quote(arg) {
    return /^[A-Za-z0-9_./=:,@%+-]+$/.test(arg) ? arg : `'${String(arg).replace(/'/g, "'\\''")}'`;
  }

  /** Split arguments like a POSIX shell would (quotes and backslashes; no expansion). */
  function splitArgs(text) {
    const out = [];
    let cur = "";
    let inArg = false;
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) throw new Error("A single quote is not closed.");
        cur += text.slice(i + 1, end);
        inArg = true;
        i = end + 1;
      } else if (c === '"') {
        let closed = false;
        i += 1;
        inArg = true;
        while (i < text.length) {
          const d = text[i];
          if (d === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) {
            cur += text[i + 1];
            i += 2;
          } else if (d === '"') {
            closed = true;
            i += 1;
            break;
          } else {
            cur += d;
            i += 1;
          }
        }
        if (!closed) throw new Error("A double quote is not closed.");
      } else if (c === "\\" && i + 1 < text.length) {
        cur += text[i + 1];
        inArg = true;
        i += 2;
      } else if (/\s/.test(c)) {
        if (inArg) out.push(cur);
        cur = "";
        inArg = false;
        i += 1;
      } else {
        cur += c;
        inArg = true;
        i += 1;
      }
    }
    if (inArg) out.push(cur);
    return out;
  }

  /** "in 4m 12s" until an ISO time; "due now" once it has passed. */
  function countdown(iso) {
    const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    if (Number.isNaN(s)) return "–";
    if (s <= 0) return "due now";
    if (s < 60) return `in ${s} s`;
    if (s < 3600) return `in ${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `in ${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
    return `in ${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }
  function countdownNode(iso, tag = "span") {
    return h(`${tag}.countdown`, { dataset: { countdown: iso }, title: fmt.dateTime(iso) }, countdown(iso));
  }

  /** A time as the clock shows it in ``tz`` ("Mon, 06 Jan 2025, 02:30 CET (Europe/Paris)"):
   *  the zone is named, since it may not be the browser's. */
  function inZone(iso, tz) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    try {
      const text = new Intl.DateTimeFormat("en-GB", {
        timeZone: tz || undefined,
        weekday: "short",
        year: "numeric",
        month: "short",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
        timeZoneName: "short",
      }).format(d);
      return tz && !text.includes(tz) ? `${text} (${tz})` : text;
    } catch (err) {
      return fmt.dateTime(d); // an unknown zone name: the browser's own time
    }
  }

  function intervalWords(seconds) {
    const s = Number(seconds);
    if (!s || s < 0) return "";
    const units = [
      [86400, "day"],
      [3600, "hour"],
      [60, "minute"],
      [1, "second"],
    ];
    for (const [size, word] of units) {
      if (s % size === 0) {
        const n = s / size;
        return n === 1 ? `every ${word}` : `every ${fmt.number(n)} ${word}s`;
      }
    }
    return `every ${s} seconds`;
  }

  function scriptLabel(task) {
    if (task.script_id) return `${task.script_path || "library script"} (library #${task.script_id})`;
    return task.script_path || "–";
  }

  /** Re-render inside ``container`` without losing the keyboard focus of a [data-action] button. */
  function keepFocus(container, render) {
    const active = document.activeElement;
    const inside = active && container.contains(active) ? active : null;
    const action = inside && inside.dataset ? inside.dataset.action : null;
    const row = inside && inside.closest("[data-id]");
    const rowId = row ? row.dataset.id : null;
    render();
    if (!inside || document.activeElement === inside || !action) return;
    const scope = rowId ? container.querySelector(`[data-id="${CSS.escape(rowId)}"]`) : container;
    const again = scope && scope.querySelector(`[data-action="${CSS.escape(action)}"]`);
    if (again) again.focus();
  }

  function taskById(id) {
    return state.tasks.find((t) => t.id === id) || null;
  }
  function nodeName(id) {
    const node = state.graph.nodes.find((n) => n.id === id);
    return node ? node.name : `#${id}`;
  }

  function playIcon() {
    const svg = document.createElementNS(S.SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(S.SVG_NS, "path");
    path.setAttribute("d", "M4 2.5v11l9-5.5z");
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }

  // Busy buttons are marked aria-busy rather than disabled: a disabled button drops the
  // keyboard focus, and the row it sits in is redrawn right after.
  function setBusy(button, busy) {
    if (!button) return;
    button.classList.toggle("busy", busy);
    if (busy) button.setAttribute("aria-busy", "true");
    else button.removeAttribute("aria-busy");
  }
  const isBusy = (button) => !!button && button.getAttribute("aria-busy") === "true";

  const parseEnv = SO.parseEnv;

  Object.assign(S, {
    quote,
    splitArgs,
    countdown,
    countdownNode,
    inZone,
    intervalWords,
    scriptLabel,
    keepFocus,
    taskById,
    nodeName,
    playIcon,
    setBusy,
    isBusy,
    parseEnv,
  });
})();
