/* The output viewer: ANSI colours, a bounded window of lines, follow mode.
 *
 * The DOM never holds more than MAX_LINES lines: live lines drop the oldest ones,
 * older pages loaded on scroll-up drop the newest ones (the view then "detaches"
 * from the live tail until the user scrolls back down or jumps to the latest line).
 */
(function () {
  "use strict";
  const SO = window.SO;

  // -- ANSI SGR --------------------------------------------------------------------
  // CSI sequences (SGR and any other, e.g. "erase line"), OSC sequences, and lone ESCs.
  const ESCAPES = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;
  const CONTROL = /[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g; // not \t, \n, ESC

  function applySgr(style, params) {
    const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : parseInt(p, 10)));
    for (let i = 0; i < codes.length; i += 1) {
      const c = codes[i];
      if (c === 0) Object.assign(style, { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });
      else if (c === 1) style.bold = true;
      else if (c === 2) style.dim = true;
      else if (c === 3) style.italic = true;
      else if (c === 4) style.underline = true;
      else if (c === 22) style.bold = style.dim = false;
      else if (c === 23) style.italic = false;
      else if (c === 24) style.underline = false;
      else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) style.fg = c;
      else if (c === 39) style.fg = null;
      else if ((c >= 40 && c <= 47) || (c >= 100 && c <= 107)) style.bg = c;
      else if (c === 49) style.bg = null;
      else if (c === 38 || c === 48) {
        // 256-colour and true-colour forms: not rendered, but their arguments are skipped.
        if (codes[i + 1] === 5) i += 2;
        else if (codes[i + 1] === 2) i += 4;
      }
    }
  }

  function styled(style) {
    return style.fg || style.bg || style.bold || style.dim || style.italic || style.underline;
  }

  /** Append ``text`` with its ANSI colours to ``parent``; never parses HTML. */
  function renderAnsi(text, parent) {
    if (text.indexOf("\r") !== -1) {
      // A carriage return starts the line over (progress bars): keep what was written last.
      const parts = text.split("\r").filter((p) => p !== "");
      text = parts.length ? parts[parts.length - 1] : "";
    }
    if (text.indexOf("\x1b") === -1) {
      parent.append(document.createTextNode(text.replace(CONTROL, "")));
      return;
    }
    const style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
    let last = 0;
    const flush = (chunk) => {
      chunk = chunk.replace(CONTROL, "");
      if (!chunk) return;
      if (!styled(style)) {
        parent.append(document.createTextNode(chunk));
        return;
      }
      const span = document.createElement("span");
      const cls = [];
      if (style.fg) cls.push(`ansi-fg-${style.fg}`);
      if (style.bg) cls.push(`ansi-bg-${style.bg}`);
      if (style.bold) cls.push("ansi-bold");
      if (style.dim) cls.push("ansi-dim");
      if (style.italic) cls.push("ansi-italic");
      if (style.underline) cls.push("ansi-underline");
      span.className = cls.join(" ");
      span.textContent = chunk;
      parent.append(span);
    };
    ESCAPES.lastIndex = 0;
    let m;
    while ((m = ESCAPES.exec(text)) !== null) {
      flush(text.slice(last, m.index));
      if (m[2] === "m") applySgr(style, m[1] || "");
      last = m.index + m[0].length;
      if (m[0].length === 0) ESCAPES.lastIndex += 1;
    }
    flush(text.slice(last));
  }
  SO.renderAnsi = renderAnsi;

  // -- the viewer ------------------------------------------------------------------
  const MAX_LINES = 5000;
  const EDGE = 160; // px from the top/bottom that triggers loading the next page

  class Terminal {
    constructor({ scroller, lines, top, bottom, count, jump, followButton, onNeedOlder, onNeedNewer }) {
      Object.assign(this, { scroller, lines, top, bottom, count, jump, followButton, onNeedOlder, onNeedNewer });
      this.maxLines = MAX_LINES;
      this.first = null; // number of the first line in the DOM
      this.last = null; // number of the last line in the DOM
      this.newest = 0; // newest line number known to exist
      this.atTail = true; // the DOM ends with the newest line: live lines are appended
      this.hasMoreBefore = false;
      this.truncatedBefore = 0; // lines the output cap dropped before the first stored one
      this.follow = true;
      this.loading = false;
      this.pending = [];
      this.frame = null;
      this.lastScrollTop = 0;
      this.placeholder = "";
      this.streams = null; // the streams shown (a Set) when the viewer filters them; null: all
      scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
      followButton.addEventListener("click", () => this.setFollow(!this.follow));
      jump.addEventListener("click", () => this.jumpToLatest());
    }

    // -- lines --
    lineEl(line) {
      const row = document.createElement("div");
      row.className = `tl s-${line.stream}`;
      row.dataset.n = line.n;
      const num = document.createElement("span");
      num.className = "ln";
      num.textContent = line.n;
      if (line.ts) num.title = SO.fmt.dateTime(line.ts) + (line.stream !== "stdout" ? ` · ${line.stream}` : "");
      const text = document.createElement("span");
      text.className = "tx";
      renderAnsi(line.text, text);
      // The time each line was read (shown by the Times toggle: ``.term.show-ts``).
      const ts = document.createElement("span");
      ts.className = "ts";
      ts.textContent = line.ts ? SO.fmt.time(line.ts, true) : "";
      row.append(num, ts, text);
      return row;
    }

    fragment(lines) {
      const frag = document.createDocumentFragment();
      for (const line of lines) frag.append(this.lineEl(line));
      return frag;
    }

    size() {
      return this.lines.childElementCount;
    }

    /** Replace everything with ``lines`` (oldest first). */
    reset(lines, { hasMoreBefore = false, atTail = true } = {}) {
      this.pending = [];
      SO.clear(this.lines).append(this.fragment(lines));
      this.first = lines.length ? lines[0].n : null;
      this.last = lines.length ? lines[lines.length - 1].n : null;
      if (this.last !== null) this.newest = Math.max(this.newest, this.last);
      this.hasMoreBefore = hasMoreBefore;
      this.atTail = atTail;
      this.renderEdges();
    }

    /** A live line from the websocket. */
    live(line) {
      if (line.n <= this.newest && this.last !== null && line.n <= this.last) return; // already shown
      this.newest = Math.max(this.newest, line.n);
      if (this.streams && !this.streams.has(line.stream)) return; // filtered out, as the server filters pages
      if (!this.atTail) {
        this.renderEdges();
        return;
      }
      this.pending.push(line);
      if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
    }

    /** Live lines from one ``log_batch`` message, oldest first. */
    liveMany(lines) {
      for (const line of lines) this.live(line);
    }

    flush() {
      this.frame = null;
      if (!this.pending.length) return;
      let lines = this.pending;
      this.pending = [];
      if (this.last !== null) lines = lines.filter((l) => l.n > this.last);
      if (!lines.length) return;
      if (lines.length > this.maxLines) lines = lines.slice(-this.maxLines);
      this.lines.append(this.fragment(lines));
      if (this.first === null) this.first = lines[0].n;
      this.last = lines[lines.length - 1].n;
      this.trimTop();
      this.renderEdges();
      if (this.follow) this.scrollToBottom();
    }

    /** An older page, prepended without moving what the user is looking at. */
    prepend(lines, hasMoreBefore) {
      if (this.first !== null) lines = lines.filter((l) => l.n < this.first);
      this.hasMoreBefore = hasMoreBefore;
      if (lines.length) {
        const before = this.scroller.scrollHeight;
        const keep = this.scroller.scrollTop;
        this.lines.prepend(this.fragment(lines));
        this.first = lines[0].n;
        if (this.last === null) this.last = lines[lines.length - 1].n;
        this.scroller.scrollTop = keep + (this.scroller.scrollHeight - before);
        this.trimBottom();
      }
      this.renderEdges();
    }

    /** A newer page while detached from the tail (scrolling back down). */
    appendPage(lines) {
      if (this.last !== null) lines = lines.filter((l) => l.n > this.last);
      if (lines.length) {
        this.lines.append(this.fragment(lines));
        this.last = lines[lines.length - 1].n;
        this.trimTop();
      }
      if (!lines.length || this.last >= this.newest) this.atTail = true;
      this.renderEdges();
    }

    trimTop() {
      const extra = this.size() - this.maxLines;
      if (extra <= 0) return;
      const keep = this.scroller.scrollTop;
      const before = this.scroller.scrollHeight;
      for (let i = 0; i < extra; i += 1) this.lines.firstElementChild.remove();
      this.first = Number(this.lines.firstElementChild.dataset.n);
      this.hasMoreBefore = true;
      if (!this.follow) this.scroller.scrollTop = Math.max(0, keep - (before - this.scroller.scrollHeight));
    }

    trimBottom() {
      const extra = this.size() - this.maxLines;
      if (extra <= 0) return;
      for (let i = 0; i < extra; i += 1) this.lines.lastElementChild.remove();
      this.last = Number(this.lines.lastElementChild.dataset.n);
      this.atTail = false;
      this.setFollow(false);
    }

    // -- edges, counters --
    renderEdges() {
      SO.clear(this.top);
      if (this.loading === "older") this.top.append(SO.h("div.term-note", null, SO.h("span.spinner.spinner-sm"), " Loading older lines…"));
      else if (this.hasMoreBefore) this.top.append(SO.h("div.term-note", null, "↑ Scroll up for older lines"));
      else if (this.truncatedBefore) {
        this.top.append(SO.h("div.term-note.term-note-warn", null, `— ${SO.fmt.number(this.truncatedBefore)} earlier lines were dropped by the output cap —`));
      } else if (this.size()) this.top.append(SO.h("div.term-note", null, "— start of output —"));
      SO.clear(this.bottom);
      if (!this.size() && this.placeholder) this.bottom.append(SO.h("div.term-empty", null, this.placeholder));
      if (this.loading === "newer") this.bottom.append(SO.h("div.term-note", null, SO.h("span.spinner.spinner-sm"), " Loading newer lines…"));
      const unseen = this.atTail ? 0 : Math.max(0, this.newest - (this.last || 0));
      this.jump.hidden = this.atTail && this.follow;
      this.jump.textContent = unseen ? `↓ ${SO.fmt.number(unseen)} newer lines — jump to latest` : "↓ Jump to latest";
      const shown = this.size();
      this.count.textContent = shown
        ? `Lines ${SO.fmt.number(this.first)}–${SO.fmt.number(this.last)} shown · ${SO.fmt.number(this.newest)} total`
        : "";
      if (this.onRender) this.onRender();
    }

    setPlaceholder(text) {
      this.placeholder = text;
      this.renderEdges();
    }

    // -- scrolling --
    nearBottom() {
      const s = this.scroller;
      return s.scrollTop + s.clientHeight >= s.scrollHeight - 24;
    }

    scrollToBottom() {
      this.scroller.scrollTop = this.scroller.scrollHeight;
      this.lastScrollTop = this.scroller.scrollTop;
    }

    setFollow(on) {
      this.follow = on;
      this.followButton.classList.toggle("on", on);
      this.followButton.setAttribute("aria-pressed", on ? "true" : "false");
      if (on) {
        if (!this.atTail) this.jumpToLatest();
        else this.scrollToBottom();
      }
      this.renderEdges();
    }

    jumpToLatest() {
      if (this.atTail) {
        this.setFollowQuiet(true);
        this.scrollToBottom();
        this.renderEdges();
        return;
      }
      if (this.onJumpLatest) this.onJumpLatest();
    }

    setFollowQuiet(on) {
      this.follow = on;
      this.followButton.classList.toggle("on", on);
      this.followButton.setAttribute("aria-pressed", on ? "true" : "false");
    }

    onScroll() {
      const s = this.scroller;
      const up = s.scrollTop < this.lastScrollTop - 2;
      this.lastScrollTop = s.scrollTop;
      if (up && this.follow && !this.nearBottom()) {
        this.setFollowQuiet(false); // the user is reading: stop pulling the view down
        this.renderEdges();
      } else if (!this.follow && this.atTail && this.nearBottom() && !up) {
        this.setFollowQuiet(true); // back at the bottom: follow again
        this.renderEdges();
      }
      if (!this.loading && s.scrollTop < EDGE && this.hasMoreBefore && this.first !== null) this.onNeedOlder(this.first);
      else if (!this.loading && !this.atTail && s.scrollTop + s.clientHeight > s.scrollHeight - EDGE && this.last !== null) {
        this.onNeedNewer(this.last);
      }
    }

    /** Scroll line ``n`` into view and flash it; false if it is not in the DOM. */
    reveal(n) {
      const row = this.lines.querySelector(`.tl[data-n="${n}"]`);
      if (!row) return false;
      this.setFollowQuiet(false);
      // Scroll the terminal only (not the page): the row's offsetTop is relative to it.
      this.scroller.scrollTop = Math.max(0, row.offsetTop - this.scroller.clientHeight / 2);
      this.lastScrollTop = this.scroller.scrollTop;
      row.classList.remove("hit");
      void row.offsetWidth; // restart the animation
      row.classList.add("hit");
      this.renderEdges();
      return true;
    }

    has(n) {
      return this.first !== null && n >= this.first && n <= this.last;
    }
  }

  SO.Terminal = Terminal;
})();
