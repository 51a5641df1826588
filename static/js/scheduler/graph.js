/* Scheduler page (4/7): the dependency graph, drawn as SVG (layers by dependency depth). */
(function () {
  "use strict";
  const SO = window.SO;
  const { h, $, $$ } = SO;
  const S = SO.scheduler;
  const { state, nodeName } = S;

  const els = { graph: $("#graph"), graphNote: $("#graph-note") };

  // -- dependency graph --------------------------------------------------------------
  const NODE_W = 188;
  const NODE_H = 50;
  const GAP_X = 84;
  const GAP_Y = 22;
  const MARGIN = 16;

  async function loadGraph() {
    try {
      const graph = await SO.api("GET", `${S.API}/graph`);
      state.graph = { nodes: graph.nodes || [], edges: graph.edges || [] };
      S.renderStats();
      const sig = JSON.stringify(state.graph);
      if (sig === state.graphSig) return;
      state.graphSig = sig;
      keepGraphFocus(renderGraph);
    } catch (err) {
      if (!state.graphSig) {
        SO.clear(els.graph).append(h("div.graph-empty", { role: "alert" }, `Could not load the dependency graph: ${err.message}`));
      }
    }
  }

  function keepGraphFocus(render) {
    const active = document.activeElement;
    const id = active && els.graph.contains(active) ? active.getAttribute("data-node") : null;
    render();
    if (id) {
      const again = els.graph.querySelector(`[data-node="${CSS.escape(id)}"]`);
      if (again) again.focus();
    }
  }

  /** Layers by dependency depth (left to right); within a layer, ordered by their parents. */
  function layout(nodes, edges) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const parents = new Map(nodes.map((n) => [n.id, []]));
    for (const e of edges) if (parents.has(e.to) && byId.has(e.from)) parents.get(e.to).push(e.from);
    const depth = new Map();
    const visiting = new Set();
    function depthOf(id) {
      if (depth.has(id)) return depth.get(id);
      if (visiting.has(id)) return 0; // a cycle (the API refuses them): cut it here
      visiting.add(id);
      const ps = parents.get(id) || [];
      const d = ps.length ? 1 + Math.max(...ps.map(depthOf)) : 0;
      visiting.delete(id);
      depth.set(id, d);
      return d;
    }
    nodes.forEach((n) => depthOf(n.id));
    const layers = [];
    for (const n of nodes) {
      const d = depth.get(n.id);
      (layers[d] = layers[d] || []).push(n);
    }
    const index = new Map();
    layers.forEach((layer, d) => {
      const key = (n) => {
        const ps = (parents.get(n.id) || []).filter((p) => index.has(p));
        return ps.length ? ps.reduce((sum, p) => sum + index.get(p), 0) / ps.length : Infinity;
      };
      if (d === 0) layer.sort((a, b) => a.name.localeCompare(b.name));
      else layer.sort((a, b) => key(a) - key(b) || a.name.localeCompare(b.name));
      layer.forEach((n, i) => index.set(n.id, i));
    });
    const tallest = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
    const height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
    const pos = new Map();
    layers.forEach((layer, d) => {
      if (!layer) return;
      const used = layer.length * NODE_H + (layer.length - 1) * GAP_Y;
      const top = (height - used) / 2;
      layer.forEach((n, i) => pos.set(n.id, { x: MARGIN + d * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) }));
    });
    const width = MARGIN * 2 + layers.length * NODE_W + Math.max(0, layers.length - 1) * GAP_X;
    return { pos, width, height };
  }

  /**
   * Which edges skip a layer and would be drawn behind a node of a layer in between:
   * those get a lane above the graph (``lanes``: edge -> y before the shift; ``laneSpace``).
   */
  function routeEdges(edges, pos) {
    const lanes = new Map();
    const boxes = [...pos.values()];
    let count = 0;
    for (const e of edges) {
      const a = pos.get(e.from);
      const b = pos.get(e.to);
      if (!a || !b || b.x - a.x <= NODE_W + GAP_X) continue; // neighbouring layers
      const y1 = a.y + NODE_H / 2;
      const y2 = b.y + NODE_H / 2;
      const blocked = boxes.some((box) => {
        if (box.x <= a.x || box.x >= b.x) return false;
        // Where the curve crosses this layer, roughly: along the straight line.
        const t = (box.x + NODE_W / 2 - (a.x + NODE_W)) / (b.x - (a.x + NODE_W));
        const y = y1 + (y2 - y1) * t;
        return y > box.y - 6 && y < box.y + NODE_H + 6;
      });
      if (blocked) {
        lanes.set(e, 12 + (count % 6) * 9);
        count += 1;
      }
    }
    const laneSpace = count ? 12 + Math.min(count, 6) * 9 : 0;
    return { lanes, laneSpace };
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(S.SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    for (const child of children) if (child) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function clip(text, max) {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  function renderGraph() {
    const { nodes, edges } = state.graph;
    SO.clear(els.graph);
    const linked = new Set(edges.flatMap((e) => [e.from, e.to]));
    const shown = nodes.filter((n) => linked.has(n.id));
    const alone = nodes.length - shown.length;
    if (!edges.length || !shown.length) {
      els.graphNote.hidden = true;
      els.graph.append(
        h(
          "div.graph-empty",
          { "data-testid": "graph-empty" },
          h("div.empty-title", null, "No dependencies yet"),
          h(
            "div.muted",
            null,
            nodes.length
              ? "When a task is set to run after another one, the chain is drawn here."
              : "Create tasks, then make one run after another to see the chain here.",
          ),
        ),
      );
      return;
    }
    els.graphNote.hidden = false;
    const laid = layout(shown, edges);
    const { pos, width } = laid;
    let height = laid.height;
    const routes = routeEdges(edges, pos);
    if (routes.laneSpace) {
      // Edges that would pass behind a node travel in lanes above the graph.
      for (const p of pos.values()) p.y += routes.laneSpace;
      height += routes.laneSpace;
    }
    const title = svg("title", { id: "graph-svg-title" }, "Dependency graph");
    const canvas = svg("svg", {
      class: "graph-svg",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "group",
      "aria-labelledby": "graph-svg-title",
    }, title);
    canvas.append(
      svg(
        "defs",
        null,
        svg(
          "marker",
          { id: "graph-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" },
          svg("path", { d: "M0 0L10 5L0 10z", class: "graph-arrow" }),
        ),
        svg(
          "marker",
          { id: "graph-arrow-hl", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" },
          svg("path", { d: "M0 0L10 5L0 10z", class: "graph-arrow-hl" }),
        ),
      ),
    );
    const edgeLayer = svg("g", { class: "graph-edges" });
    for (const e of edges) {
      const a = pos.get(e.from);
      const b = pos.get(e.to);
      if (!a || !b) continue;
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x - 2;
      const y2 = b.y + NODE_H / 2;
      const lane = routes.lanes.get(e);
      let d;
      if (lane !== undefined) {
        const bend = GAP_X / 2;
        d = `M${x1} ${y1} C${x1 + bend} ${y1} ${x1 + bend} ${lane} ${x1 + GAP_X} ${lane} L${x2 - GAP_X} ${lane} C${x2 - bend} ${lane} ${x2 - bend} ${y2} ${x2} ${y2}`;
      } else {
        const dx = Math.max(30, (x2 - x1) / 2);
        d = x2 > x1 ? `M${x1} ${y1} C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2} ${y2}` : `M${x1} ${y1} L${x2} ${y2}`;
      }
      edgeLayer.append(
        svg(
          "path",
          { d, class: "graph-edge", "marker-end": "url(#graph-arrow)", "data-edge": `${e.from}->${e.to}`, "data-from": e.from, "data-to": e.to },
          svg("title", null, `${nodeName(e.to)} runs after ${nodeName(e.from)}`),
        ),
      );
    }
    canvas.append(edgeLayer);
    const nodeLayer = svg("g", { class: "graph-nodes" });
    for (const n of shown) {
      const p = pos.get(n.id);
      const status = n.last_status || "none";
      const label = `${n.name}: ${n.last_status ? `last run ${n.last_status}` : "no run yet"}${n.enabled ? "" : ", paused"}`;
      const link = svg(
        "a",
        {
          href: `?task=${n.id}`,
          class: `graph-node node-${status}${n.enabled ? "" : " node-disabled"}`,
          "data-node": n.id,
          "aria-label": label,
          transform: `translate(${p.x} ${p.y})`,
        },
        svg("title", null, label),
        svg("rect", { width: NODE_W, height: NODE_H, rx: 9, class: "node-box" }),
        svg("rect", { width: 5, height: NODE_H - 16, x: 0, y: 8, rx: 2, class: "node-bar" }),
        svg("text", { x: 16, y: 21, class: "node-name" }, clip(n.name, 22)),
        svg("text", { x: 16, y: 38, class: "node-sub" }, `${n.last_status || "no run yet"}${n.enabled ? "" : " · paused"}`),
      );
      link.addEventListener("click", (ev) => S.openFromLink(ev, n.id));
      const hl = (on) => {
        for (const edge of $$(`.graph-edge[data-from="${n.id}"], .graph-edge[data-to="${n.id}"]`, canvas)) {
          edge.classList.toggle("hl", on);
          edge.setAttribute("marker-end", on ? "url(#graph-arrow-hl)" : "url(#graph-arrow)");
        }
      };
      link.addEventListener("mouseenter", () => hl(true));
      link.addEventListener("mouseleave", () => hl(false));
      link.addEventListener("focus", () => hl(true));
      link.addEventListener("blur", () => hl(false));
      nodeLayer.append(link);
    }
    canvas.append(nodeLayer);
    els.graph.append(canvas);
    if (alone > 0) {
      els.graph.append(h("div.graph-foot.muted.small", null, `${alone} task${alone === 1 ? "" : "s"} without dependencies ${alone === 1 ? "is" : "are"} not drawn.`));
    }
  }

  Object.assign(S, { loadGraph });
})();
