/* Small SVG line charts drawn from plain data (no chart library). */
(function () {
  "use strict";
  const SO = window.SO;
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A "nice" upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten. */
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(value));
    for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * p) return m * p;
    return 10 * p;
  }
  SO.niceMax = niceMax;

  let uid = 0;

  /**
   * Draw a line chart into ``container``.
   * points: [{x: seconds, y: value}] (sorted by x); options:
   *   title, color, format(y) for labels, xFormat(x), minMax (smallest y-axis top),
   *   markers: [{x, label}] vertical guides, height, compact (no axes, for sparklines), empty.
   */
  SO.lineChart = function lineChart(container, points, options = {}) {
    const o = { height: 130, color: "#4f63ff", format: (v) => String(v), xFormat: (x) => SO.fmt.duration(x), ...options };
    const W = Math.max(160, Math.floor(container.clientWidth || 320));
    const H = o.height;
    const pad = o.compact ? { l: 2, r: 2, t: 4, b: 2 } : { l: 48, r: 12, t: 24, b: 20 };
    SO.clear(container);
    // A chart with a title is an image with a name; an untitled sparkline sits next to
    // the figure it draws, so it is hidden from assistive technology.
    const named = o.title ? { role: "img" } : { "aria-hidden": "true" };
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart-svg", ...named });
    if (o.title) root.append(svg("title", {}, o.title));
    container.append(root);

    const id = `g${(uid += 1)}`;
    const defs = svg("defs");
    const grad = svg("linearGradient", { id, x1: 0, y1: 0, x2: 0, y2: 1 });
    grad.append(svg("stop", { offset: "0%", "stop-color": o.color, "stop-opacity": 0.28 }));
    grad.append(svg("stop", { offset: "100%", "stop-color": o.color, "stop-opacity": 0.02 }));
    defs.append(grad);
    root.append(defs);

    if (!o.compact && o.title) {
      root.append(svg("text", { x: pad.l, y: 14, class: "chart-title" }, o.title));
    }
    if (!points.length) {
      root.append(svg("text", { x: W / 2, y: H / 2 + 4, "text-anchor": "middle", class: "chart-empty" }, o.empty || "No samples yet"));
      return;
    }

    const x0 = points[0].x;
    const x1 = Math.max(points[points.length - 1].x, x0 + 1e-6);
    const yTop = Math.max(niceMax(Math.max(...points.map((p) => p.y))), o.minMax || 0);
    const iw = W - pad.l - pad.r;
    const ih = H - pad.t - pad.b;
    const sx = (x) => pad.l + (points.length === 1 ? iw : ((x - x0) / (x1 - x0)) * iw);
    const sy = (y) => pad.t + ih - (Math.max(0, y) / yTop) * ih;

    if (!o.compact) {
      for (const f of [0, 0.5, 1]) {
        const y = pad.t + ih - f * ih;
        root.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: y, y2: y, class: "chart-grid" }));
        root.append(svg("text", { x: pad.l - 6, y: y + 4, "text-anchor": "end", class: "chart-axis" }, o.format(yTop * f)));
      }
      root.append(svg("text", { x: pad.l, y: H - 4, class: "chart-axis" }, "0 s"));
      root.append(svg("text", { x: W - pad.r, y: H - 4, "text-anchor": "end", class: "chart-axis" }, `+${o.xFormat(x1 - x0)}`));
      for (const m of o.markers || []) {
        const x = sx(m.x);
        root.append(svg("line", { x1: x, x2: x, y1: pad.t, y2: pad.t + ih, class: "chart-marker" }));
        root.append(svg("text", { x: x + 3, y: pad.t + 9, class: "chart-marker-label" }, m.label));
      }
    }

    const coords = points.map((p) => [sx(p.x), sy(p.y)]);
    const line = coords.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
    const base = (pad.t + ih).toFixed(1);
    const area = `${line}L${coords[coords.length - 1][0].toFixed(1)},${base}L${coords[0][0].toFixed(1)},${base}Z`;
    if (coords.length === 1 && !o.compact) {
      root.append(svg("circle", { cx: coords[0][0], cy: coords[0][1], r: 3.5, fill: o.color }));
    }
    root.append(svg("path", { d: area, fill: `url(#${id})`, stroke: "none" }));
    root.append(svg("path", { d: line, fill: "none", stroke: o.color, "stroke-width": o.compact ? 1.5 : 1.8, "stroke-linejoin": "round", "stroke-linecap": "round" }));

    if (o.compact) return;

    // Latest value, top right.
    const lastPoint = points[points.length - 1];
    root.append(svg("text", { x: W - pad.r, y: 14, "text-anchor": "end", class: "chart-value" }, o.format(lastPoint.y)));

    // Hover: a guide and the nearest sample's value.
    const guide = svg("line", { x1: 0, x2: 0, y1: pad.t, y2: pad.t + ih, class: "chart-guide", visibility: "hidden" });
    const dot = svg("circle", { r: 3.5, fill: o.color, stroke: getComputedStyle(document.documentElement).getPropertyValue("--surface").trim() || "#fff", "stroke-width": 1.5, visibility: "hidden" });
    const tip = svg("text", { x: 0, y: pad.t + 12, class: "chart-tip", visibility: "hidden" });
    root.append(guide, dot, tip);
    const overlay = svg("rect", { x: pad.l, y: pad.t, width: iw, height: ih, fill: "transparent" });
    root.append(overlay);
    overlay.addEventListener("mousemove", (event) => {
      const rect = root.getBoundingClientRect();
      const mx = ((event.clientX - rect.left) / rect.width) * W;
      let best = 0;
      for (let i = 1; i < coords.length; i += 1) if (Math.abs(coords[i][0] - mx) < Math.abs(coords[best][0] - mx)) best = i;
      const [cx, cy] = coords[best];
      for (const n of [guide, dot, tip]) n.setAttribute("visibility", "visible");
      guide.setAttribute("x1", cx);
      guide.setAttribute("x2", cx);
      dot.setAttribute("cx", cx);
      dot.setAttribute("cy", cy);
      tip.textContent = `${o.format(points[best].y)} at +${o.xFormat(points[best].x - x0)}`;
      const anchorEnd = cx > W / 2;
      tip.setAttribute("text-anchor", anchorEnd ? "end" : "start");
      tip.setAttribute("x", anchorEnd ? cx - 6 : cx + 6);
    });
    overlay.addEventListener("mouseleave", () => {
      for (const n of [guide, dot, tip]) n.setAttribute("visibility", "hidden");
    });
  };
})();
