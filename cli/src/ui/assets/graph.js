// covalent ui: the transport graph. A layered DAG layout (Sugiyama style: longest-path layers,
// dummy vertices on long edges, barycentre sweeps that keep the order with the fewest
// crossings, coordinates smoothed by isotonic regression) and an SVG view with zoom, pan and
// a level of detail that keeps 10,000 nodes responsive: past SMALL nodes the whole graph is a
// handful of <path> elements (one per status, one for the edges) and node boxes with labels
// are drawn only for the part on screen once zoomed in.
'use strict';

const CovalentGraph = (() => {
  const NODE_W = 156;
  const NODE_H = 42;
  const LAYER_GAP = { TB: 66, LR: 96 };
  const GAP = { TB: 26, LR: 16 };
  const DUMMY_GAP = 12;
  const SMALL = 1500; // up to this many nodes, every node is its own SVG group
  const DETAIL_SCALE = 0.45; // zoom from which a big graph draws node boxes on screen
  const DETAIL_MAX = 2500; // at most this many boxes at once
  const LABELS_ALWAYS = 1200; // up to this many edges, edge labels are always drawn
  const LABEL_SCALE = 0.8; // else from this zoom, for the edges on screen
  const LABEL_MAX = 3000;
  const TILE_LAYERS = 6; // a big graph's drawing is cut into tiles of this many rows ...
  const TILE_ALONG = 1600; // ... by this many pixels along the layers
  const SVG = 'http://www.w3.org/2000/svg';

  /**
   * The graph to draw: the nodes (internal ones only with `showInternal`) and the edges
   * between them, an edge through hidden internal nodes joining their visible ends. Labels are
   * the parameter names on the visible target.
   */
  function visible(nodes, showInternal) {
    const byId = new Map();
    for (const n of nodes) byId.set(n.id, n);
    const shown = showInternal ? nodes.slice() : nodes.filter((n) => !n.internal);
    const index = new Map();
    shown.forEach((n, i) => index.set(n.id, i));
    const memo = new Map();
    const through = (id) => {
      // Visible nodes upstream of hidden node `id`.
      if (memo.has(id)) return memo.get(id);
      memo.set(id, []);
      const out = new Set();
      const n = byId.get(id);
      if (n) {
        for (const [src] of n.inputs) {
          if (index.has(src)) out.add(index.get(src));
          else for (const v of through(src)) out.add(v);
        }
      }
      const arr = [...out];
      memo.set(id, arr);
      return arr;
    };
    const edges = [];
    const seen = new Map();
    const N = shown.length;
    shown.forEach((n, t) => {
      for (const [src, name] of n.inputs) {
        const sources = index.has(src) ? [index.get(src)] : through(src);
        for (const s of sources) {
          if (s === t) continue;
          const key = s * N + t;
          let e = seen.get(key);
          if (e === undefined) {
            e = { s, t, label: '' };
            seen.set(key, e);
            edges.push(e);
          }
          if (name && !e.label.split(', ').includes(name)) e.label = e.label ? `${e.label}, ${name}` : name;
        }
      }
    });
    return { nodes: shown, edges, index };
  }

  /** Compressed adjacency: the neighbours of v are adj[off[v]] .. adj[off[v+1]-1]. */
  function csr(n, from, to, count) {
    const off = new Int32Array(n + 1);
    for (let i = 0; i < count; i++) off[from[i] + 1]++;
    for (let i = 0; i < n; i++) off[i + 1] += off[i];
    const adj = new Int32Array(count);
    const fill = off.slice(0, n);
    for (let i = 0; i < count; i++) adj[fill[from[i]]++] = to[i];
    return { off, adj };
  }

  /** Pool-adjacent-violators: the non-decreasing sequence closest to `y` (weights `w`). */
  function isotonic(y, w, n, out) {
    const mean = new Float64Array(n);
    const wt = new Float64Array(n);
    const len = new Int32Array(n);
    let k = 0;
    for (let i = 0; i < n; i++) {
      mean[k] = y[i];
      wt[k] = w[i];
      len[k] = 1;
      while (k > 0 && mean[k - 1] > mean[k]) {
        const W = wt[k - 1] + wt[k];
        mean[k - 1] = (mean[k - 1] * wt[k - 1] + mean[k] * wt[k]) / W;
        wt[k - 1] = W;
        len[k - 1] += len[k];
        k--;
      }
      k++;
    }
    let i = 0;
    for (let b = 0; b < k; b++) for (let j = 0; j < len[b]; j++) out[i++] = mean[b];
  }

  /**
   * Lays out `g` (from `visible`), top to bottom (`TB`) or left to right (`LR`). Returns the
   * centres of the nodes, the route of every edge and the size of the drawing.
   */
  function layout(g, direction = 'TB') {
    const t0 = performance.now();
    const n = g.nodes.length;
    const m = g.edges.length;
    const es = new Int32Array(m);
    const et = new Int32Array(m);
    g.edges.forEach((e, i) => { es[i] = e.s; et[i] = e.t; });
    const out = csr(n, es, et, m);
    const inn = csr(n, et, es, m);

    // 1. Layers: longest path from the sources, in Kahn's order.
    const indeg = new Int32Array(n);
    for (let i = 0; i < m; i++) indeg[et[i]]++;
    const topo = new Int32Array(n);
    let qh = 0;
    let qt = 0;
    for (let v = 0; v < n; v++) if (indeg[v] === 0) topo[qt++] = v;
    const layer = new Int32Array(n);
    while (qh < qt) {
      const v = topo[qh++];
      for (let j = out.off[v]; j < out.off[v + 1]; j++) {
        const w = out.adj[j];
        if (layer[w] < layer[v] + 1) layer[w] = layer[v] + 1;
        if (--indeg[w] === 0) topo[qt++] = w;
      }
    }
    if (qt < n) {
      // A cycle (a graph never has one): put what is left below, its back edges drawn straight.
      let top = 0;
      for (let i = 0; i < qt; i++) top = Math.max(top, layer[topo[i]]);
      for (let v = 0; v < n; v++) if (indeg[v] > 0) { layer[v] = ++top; topo[qt++] = v; }
    }
    // Sources sit just above their first consumer (parameters next to where they are used).
    for (let i = n - 1; i >= 0; i--) {
      const v = topo[i];
      if (inn.off[v + 1] > inn.off[v] || out.off[v + 1] === out.off[v]) continue;
      let lo = Infinity;
      for (let j = out.off[v]; j < out.off[v + 1]; j++) lo = Math.min(lo, layer[out.adj[j]]);
      if (lo - 1 > layer[v]) layer[v] = lo - 1;
    }
    let L = 0;
    for (let v = 0; v < n; v++) L = Math.max(L, layer[v] + 1);

    // 2. Dummy vertices on edges longer than one layer (unless there would be too many).
    let span = 0;
    for (let i = 0; i < m; i++) {
      const d = layer[et[i]] - layer[es[i]];
      if (d > 1) span += d - 1;
    }
    const dummies = span <= Math.max(30000, 3 * n) ? span : 0;
    const total = n + dummies;
    const lay = new Int32Array(total);
    lay.set(layer);
    const chainStart = new Int32Array(m).fill(-1);
    const chainLen = new Int32Array(m);
    const segCap = m + dummies;
    const sf = new Int32Array(segCap);
    const st = new Int32Array(segCap);
    let segs = 0;
    let next = n;
    for (let i = 0; i < m; i++) {
      const s = es[i];
      const t = et[i];
      const d = layer[t] - layer[s];
      if (d <= 0) continue; // back edge of a cycle
      if (d > 1 && dummies) {
        chainStart[i] = next;
        chainLen[i] = d - 1;
        let prev = s;
        for (let k = 1; k < d; k++) {
          lay[next] = layer[s] + k;
          sf[segs] = prev; st[segs++] = next;
          prev = next++;
        }
        sf[segs] = prev; st[segs++] = t;
      } else {
        sf[segs] = s; st[segs++] = t;
      }
    }
    const down = csr(total, sf, st, segs);
    const up = csr(total, st, sf, segs);

    // 3. Order within layers: barycentre sweeps, keeping the order with the fewest crossings.
    const lOff = new Int32Array(L + 1);
    for (let v = 0; v < total; v++) lOff[lay[v] + 1]++;
    for (let l = 0; l < L; l++) lOff[l + 1] += lOff[l];
    const order = new Int32Array(total);
    const fill = lOff.slice(0, L);
    for (let i = 0; i < n; i++) { const v = topo[i]; order[fill[lay[v]]++] = v; }
    for (let v = n; v < total; v++) order[fill[lay[v]]++] = v;
    const pos = new Float64Array(total);
    const key = new Float64Array(total);
    const setPos = () => { for (let l = 0; l < L; l++) for (let i = lOff[l]; i < lOff[l + 1]; i++) pos[order[i]] = i - lOff[l]; };
    setPos();
    const byKey = (a, b) => key[a] - key[b] || pos[a] - pos[b];
    const sweep = (downward) => {
      const adj = downward ? up : down;
      for (let step = 1; step < L; step++) {
        const l = downward ? step : L - 1 - step;
        for (let i = lOff[l]; i < lOff[l + 1]; i++) {
          const v = order[i];
          const a = adj.off[v];
          const b = adj.off[v + 1];
          if (a === b) { key[v] = pos[v]; continue; }
          let sum = 0;
          for (let j = a; j < b; j++) sum += pos[adj.adj[j]];
          key[v] = sum / (b - a);
        }
        order.subarray(lOff[l], lOff[l + 1]).sort(byKey);
        for (let i = lOff[l]; i < lOff[l + 1]; i++) pos[order[i]] = i - lOff[l];
      }
    };
    let maxLayer = 0;
    for (let l = 0; l < L; l++) maxLayer = Math.max(maxLayer, lOff[l + 1] - lOff[l]);
    const tree = new Int32Array(maxLayer + 1);
    const nb = [];
    const crossings = () => {
      // Bilayer crossings by counting inversions with a Fenwick tree (Barth, Jünger, Mutzel).
      let c = 0;
      for (let l = 0; l + 1 < L; l++) {
        const size = lOff[l + 2] - lOff[l + 1];
        tree.fill(0, 0, size + 1);
        let inserted = 0;
        for (let i = lOff[l]; i < lOff[l + 1]; i++) {
          const u = order[i];
          nb.length = 0;
          for (let j = down.off[u]; j < down.off[u + 1]; j++) {
            const v = down.adj[j];
            if (lay[v] === l + 1) nb.push(pos[v]);
          }
          nb.sort((a, b) => a - b);
          for (const p of nb) {
            let s = 0;
            for (let x = p + 1; x > 0; x -= x & -x) s += tree[x];
            c += inserted - s;
            for (let x = p + 1; x <= size; x += x & -x) tree[x]++;
            inserted++;
          }
        }
      }
      return c;
    };
    const work = total + segs;
    const iterations = work < 4000 ? 24 : work < 40000 ? 8 : 4;
    let best = crossings();
    let bestOrder = order.slice();
    let stale = 0;
    for (let it = 0; it < iterations && best > 0 && stale < 6; it++) {
      sweep(it % 2 === 0);
      const c = crossings();
      if (c < best) { best = c; bestOrder = order.slice(); stale = 0; } else stale++;
    }
    order.set(bestOrder);
    setPos();

    // 4. Coordinates along the layers: each node pulled toward its neighbours' mean, the
    // layer's order and spacing kept (isotonic regression, linear time).
    const tb = direction !== 'LR';
    const size = (v) => (v < n ? (tb ? NODE_W : NODE_H) : 0);
    const gap = (a, b) => (a < n && b < n ? GAP[tb ? 'TB' : 'LR'] : DUMMY_GAP);
    const sep = (a, b) => (size(a) + size(b)) / 2 + gap(a, b);
    const x = new Float64Array(total);
    // A layer much wider than the graph is deep (10,000 tasks fanned out) wraps onto several
    // rows of `wrap` cells, in its order, so the drawing stays about as wide as it is tall.
    const wrap = Math.max(40, Math.ceil(Math.sqrt(n)));
    const rowStart = new Int32Array(L + 1);
    const wrapped = new Uint8Array(L);
    const prow = new Int32Array(total);
    const cell = (tb ? NODE_W : NODE_H) + GAP[tb ? 'TB' : 'LR'];
    for (let l = 0; l < L; l++) {
      const cnt = lOff[l + 1] - lOff[l];
      wrapped[l] = cnt > wrap ? 1 : 0;
      rowStart[l + 1] = rowStart[l] + (wrapped[l] ? Math.ceil(cnt / wrap) : 1);
      if (wrapped[l]) {
        const mid = ((Math.min(cnt, wrap) - 1) * cell) / 2;
        for (let j = 0; j < cnt; j++) {
          const v = order[lOff[l] + j];
          x[v] = (j % wrap) * cell - mid;
          prow[v] = rowStart[l] + Math.floor(j / wrap);
        }
        continue;
      }
      let c = 0;
      for (let i = lOff[l]; i < lOff[l + 1]; i++) {
        if (i > lOff[l]) c += sep(order[i - 1], order[i]);
        x[order[i]] = c;
        prow[order[i]] = rowStart[l];
      }
      const mid = c / 2;
      for (let i = lOff[l]; i < lOff[l + 1]; i++) x[order[i]] -= mid;
    }
    const physRows = rowStart[L];
    const target = new Float64Array(maxLayer);
    const weight = new Float64Array(maxLayer);
    const fit = new Float64Array(maxLayer);
    const offs = new Float64Array(maxLayer);
    const place = (l, mode) => {
      if (wrapped[l]) return;
      const a0 = lOff[l];
      const cnt = lOff[l + 1] - a0;
      let o = 0;
      for (let i = 0; i < cnt; i++) {
        const v = order[a0 + i];
        if (i > 0) o += sep(order[a0 + i - 1], v);
        offs[i] = o;
        let sum = 0;
        let k = 0;
        if (mode !== 1) for (let j = up.off[v]; j < up.off[v + 1]; j++) { sum += x[up.adj[j]]; k++; }
        if (mode !== 0) for (let j = down.off[v]; j < down.off[v + 1]; j++) { sum += x[down.adj[j]]; k++; }
        target[i] = (k ? sum / k : x[v]) - o;
        weight[i] = v < n ? (k ? 1 : 0.25) : 0.5;
      }
      isotonic(target, weight, cnt, fit);
      for (let i = 0; i < cnt; i++) x[order[a0 + i]] = fit[i] + offs[i];
    };
    const passes = work < 4000 ? 9 : 5;
    for (let p = 0; p < passes; p++) {
      const mode = p % 3; // 0: toward parents, 1: toward children, 2: both
      if (mode === 1) for (let l = L - 2; l >= 0; l--) place(l, 1);
      else for (let l = mode === 0 ? 1 : 0; l < L; l++) place(l, mode);
    }

    // 5. Final coordinates.
    let lo = Infinity;
    let hi = -Infinity;
    for (let v = 0; v < total; v++) {
      lo = Math.min(lo, x[v] - size(v) / 2);
      hi = Math.max(hi, x[v] + size(v) / 2);
    }
    if (!Number.isFinite(lo)) { lo = 0; hi = 0; }
    const margin = 30;
    const stepAcross = tb ? NODE_H + LAYER_GAP.TB : NODE_W + LAYER_GAP.LR;
    const cx = new Float64Array(total);
    const cy = new Float64Array(total);
    for (let v = 0; v < total; v++) {
      const along = x[v] - lo + margin;
      const across = prow[v] * stepAcross + margin + (tb ? NODE_H : NODE_W) / 2;
      if (tb) { cx[v] = along; cy[v] = across; } else { cx[v] = across; cy[v] = along; }
    }
    const alongSize = hi - lo + 2 * margin;
    const acrossSize = physRows * stepAcross - (tb ? LAYER_GAP.TB : LAYER_GAP.LR) + 2 * margin;
    // Real nodes of each drawn row in order along it, for finding the node under the pointer.
    const rows = Array.from({ length: physRows }, () => []);
    for (let i = 0; i < total; i++) if (order[i] < n) rows[prow[order[i]]].push(order[i]);
    return {
      n, direction: tb ? 'TB' : 'LR', x: cx, y: cy, w: NODE_W, h: NODE_H, layers: L,
      width: Math.max(tb ? alongSize : acrossSize, 1), height: Math.max(tb ? acrossSize : alongSize, 1),
      edges: g.edges, es, et, chainStart, chainLen, layer: lay, row: prow, rows, stepAcross, margin,
      crossings: best, dummies, ms: performance.now() - t0,
    };
  }

  const r1 = (v) => Math.round(v * 10) / 10;

  /** The SVG path of edge i, and where its label goes. */
  function route(Lo, i) {
    const tb = Lo.direction === 'TB';
    const s = Lo.es[i];
    const t = Lo.et[i];
    const hw = Lo.w / 2;
    const hh = Lo.h / 2;
    const pts = [tb ? [Lo.x[s], Lo.y[s] + hh] : [Lo.x[s] + hw, Lo.y[s]]];
    const c0 = Lo.chainStart[i];
    for (let k = 0; k < Lo.chainLen[i]; k++) pts.push([Lo.x[c0 + k], Lo.y[c0 + k]]);
    pts.push(tb ? [Lo.x[t], Lo.y[t] - hh - 2] : [Lo.x[t] - hw - 2, Lo.y[t]]);
    let d = `M${r1(pts[0][0])},${r1(pts[0][1])}`;
    for (let k = 1; k < pts.length; k++) {
      const [px, py] = pts[k - 1];
      const [qx, qy] = pts[k];
      if (tb) {
        const my = r1((py + qy) / 2);
        d += `C${r1(px)},${my} ${r1(qx)},${my} ${r1(qx)},${r1(qy)}`;
      } else {
        const mx = r1((px + qx) / 2);
        d += `C${mx},${r1(py)} ${mx},${r1(qy)} ${r1(qx)},${r1(qy)}`;
      }
    }
    const [px, py] = pts[pts.length - 2];
    const [qx, qy] = pts[pts.length - 1];
    return { d, lx: (px + qx) / 2, ly: (py + qy) / 2 };
  }

  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  /** Cuts a label to `max` characters. */
  function cut(text, max) {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  /** The drawing: zoom, pan, selection, live statuses. */
  class View {
    /** `handlers`: `select(node | null)`, `open(node)` (double click), `hover(node | null)`. */
    constructor(svg, handlers) {
      this.svg = svg;
      this.handlers = handlers || {};
      this.k = 1;
      this.tx = 0;
      this.ty = 0;
      this.minK = 0.02;
      this.selected = -1;
      this.detail = new Map();
      this.labels = new Map();
      this.frame = 0;
      this.overviewDirty = false;
      svg.replaceChildren();
      const defs = svgEl('defs', {});
      const marker = svgEl('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '9', refY: '5',
        markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' });
      marker.append(svgEl('path', { d: 'M0,0L10,5L0,10z', fill: '#9aa4b1' }));
      defs.append(marker);
      this.viewport = svgEl('g', { class: 'viewport' });
      this.gEdges = svgEl('g', { class: 'edges' });
      this.gHl = svgEl('path', { class: 'edges-hl', 'stroke-width': '2.2' });
      this.gLabels = svgEl('g', { class: 'elabels' });
      this.gOverview = svgEl('g', { class: 'overview' });
      this.gSel = svgEl('path', { class: 'ov-sel', 'stroke-width': '3' });
      this.gNodes = svgEl('g', { class: 'nodes' });
      this.viewport.append(this.gEdges, this.gHl, this.gOverview, this.gSel, this.gNodes, this.gLabels);
      svg.append(defs, this.viewport);
      this.bindEvents();
    }

    /** Lays out and draws `nodes` (the API's graph nodes). Returns timings. */
    setGraph(nodes, opts) {
      const t0 = performance.now();
      this.nodes = nodes;
      this.opts = { showInternal: false, direction: 'TB', ...opts };
      this.g = visible(nodes, this.opts.showInternal);
      const t1 = performance.now();
      this.lay = layout(this.g, this.opts.direction);
      const t2 = performance.now();
      this.big = this.g.nodes.length > SMALL;
      this.selected = -1;
      this.draw();
      const t3 = performance.now();
      this.svg.dataset.nodes = String(this.g.nodes.length);
      this.svg.dataset.edges = String(this.g.edges.length);
      this.svg.dataset.mode = this.big ? 'overview' : 'full';
      return {
        nodes: this.g.nodes.length, edges: this.g.edges.length, layers: this.lay.layers,
        crossings: this.lay.crossings, graphMs: t1 - t0, layoutMs: t2 - t1, drawMs: t3 - t2,
      };
    }

    draw() {
      const Lo = this.lay;
      this.detail.clear();
      this.labels.clear();
      this.gNodes.replaceChildren();
      this.gLabels.replaceChildren();
      this.gOverview.replaceChildren();
      this.gEdges.replaceChildren();
      this.gEdges.removeAttribute('stroke-width');
      this.gHl.setAttribute('d', '');
      this.gHl.setAttribute('stroke-width', '2.2');
      this.gSel.setAttribute('d', '');
      const m = Lo.edges.length;
      if (!this.big) {
        const frag = document.createDocumentFragment();
        for (let i = 0; i < m; i++) {
          if (Lo.layer[Lo.et[i]] <= Lo.layer[Lo.es[i]]) continue;
          frag.append(svgEl('path', { class: 'edge', d: route(Lo, i).d, 'marker-end': 'url(#arrow)' }));
        }
        this.gEdges.append(frag);
        const nodes = document.createDocumentFragment();
        for (let i = 0; i < this.g.nodes.length; i++) {
          const el = this.nodeEl(i);
          this.detail.set(i, el);
          nodes.append(el);
        }
        this.gNodes.append(nodes);
        if (m <= LABELS_ALWAYS) {
          const frag2 = document.createDocumentFragment();
          for (let i = 0; i < m; i++) { const l = this.labelEl(i); if (l) frag2.append(l); }
          this.gLabels.append(frag2);
        }
      } else {
        // Tiles of a few layers by TILE_ALONG pixels: the browser skips the paths of tiles
        // off screen, so a zoomed-in pan costs what is on screen, not the whole graph.
        this.tiles = new Map();
        const tb = Lo.direction === 'TB';
        const tileOf = (v) => `${Math.floor(Lo.row[v] / TILE_LAYERS)}:${Math.floor((tb ? Lo.x[v] : Lo.y[v]) / TILE_ALONG)}`;
        const tile = (key) => {
          let t = this.tiles.get(key);
          if (!t) {
            t = { nodes: [], edges: [], g: svgEl('g', {}), dirty: true };
            this.tiles.set(key, t);
          }
          return t;
        };
        for (let i = 0; i < this.g.nodes.length; i++) tile(tileOf(i)).nodes.push(i);
        for (let i = 0; i < m; i++) if (Lo.layer[Lo.et[i]] > Lo.layer[Lo.es[i]]) tile(tileOf(Lo.et[i])).edges.push(i);
        const edges = document.createDocumentFragment();
        const overview = document.createDocumentFragment();
        for (const t of this.tiles.values()) {
          if (t.edges.length) edges.append(svgEl('path', { class: 'edges-all', d: t.edges.map((i) => route(Lo, i).d).join('') }));
          overview.append(t.g);
        }
        this.gEdges.append(edges);
        this.gOverview.append(overview);
        this.strokeK = 0;
        this.drawOverview();
      }
    }

    /** Per tile, one path per status with a rectangle per node. Redraws changed tiles only. */
    drawOverview() {
      const Lo = this.lay;
      const w = Lo.w;
      const h = Lo.h;
      for (const t of this.tiles.values()) {
        if (!t.dirty) continue;
        const by = new Map();
        for (const i of t.nodes) {
          const s = this.g.nodes[i].status;
          let arr = by.get(s);
          if (!arr) { arr = []; by.set(s, arr); }
          arr.push(`M${r1(Lo.x[i] - w / 2)},${r1(Lo.y[i] - h / 2)}h${w}v${h}h${-w}z`);
        }
        const paths = [];
        for (const [s, arr] of by) paths.push(svgEl('path', { class: `ov s-${s}`, d: arr.join('') }));
        t.g.replaceChildren(...paths);
        t.dirty = false;
      }
      this.overviewDirty = false;
    }

    nodeEl(i) {
      const Lo = this.lay;
      const n = this.g.nodes[i];
      const cls = ['node', `s-${n.status}`];
      if (n.internal) cls.push('internal');
      if (n.sub) cls.push('sub');
      if (n.group) cls.push('group');
      if (i === this.selected) cls.push('selected');
      const g = svgEl('g', { class: cls.join(' '), transform: `translate(${r1(Lo.x[i] - Lo.w / 2)},${r1(Lo.y[i] - Lo.h / 2)})` });
      g.dataset.i = String(i);
      g.dataset.id = String(n.id);
      if (n.group) g.dataset.count = String(n.group.count);
      if (n.sub) g.dataset.tasks = String(n.sub.tasks);
      if (n.sub || n.group) g.append(svgEl('rect', { class: 'back', x: 4, y: 4, width: Lo.w, height: Lo.h }));
      g.append(svgEl('rect', { width: Lo.w, height: Lo.h }));
      const name = svgEl('text', { class: 'name', x: 10, y: 17 });
      name.textContent = cut(n.name, n.sub ? 17 : 19);
      const nid = svgEl('text', { class: 'nid', x: 10, y: 32 });
      nid.textContent = n.caption ? cut(n.caption, 23)
        : n.sub ? `#${n.id} · ${n.sub.tasks} tasks` : `#${n.id}${n.executor ? ` · ${cut(n.executor, 12)}` : ''}`;
      g.append(name, nid);
      if (n.sub) {
        // Two stacked boxes: "opens a graph of its own".
        g.append(svgEl('path', { class: 'subicon', d: `M${Lo.w - 22},11h9v9h-9zM${Lo.w - 18},7h9v9h-9`,
        }));
      }
      const title = svgEl('title', {});
      title.textContent = n.title || `${n.name} #${n.id} · ${n.status}${n.sub ? ` · sublattice ${n.sub.lattice}` : ''}`;
      g.append(title);
      return g;
    }

    labelEl(i) {
      const e = this.lay.edges[i];
      if (!e.label || this.lay.layer[this.lay.et[i]] <= this.lay.layer[this.lay.es[i]]) return null;
      const r = route(this.lay, i);
      const t = svgEl('text', { class: 'elabel', x: r1(r.lx), y: r1(r.ly + 3) });
      t.textContent = cut(e.label, 24);
      return t;
    }

    /** Big graphs: node boxes and edge labels for what is on screen, once zoomed in enough. */
    updateDetail() {
      if (!this.big) return;
      const Lo = this.lay;
      const W = this.svg.clientWidth;
      const H = this.svg.clientHeight;
      const x0 = -this.tx / this.k - Lo.w;
      const y0 = -this.ty / this.k - Lo.h;
      const x1 = (W - this.tx) / this.k + Lo.w;
      const y1 = (H - this.ty) / this.k + Lo.h;
      const want = new Set();
      if (this.k >= DETAIL_SCALE) {
        for (let i = 0; i < this.g.nodes.length && want.size < DETAIL_MAX; i++) {
          if (Lo.x[i] >= x0 && Lo.x[i] <= x1 && Lo.y[i] >= y0 && Lo.y[i] <= y1) want.add(i);
        }
      }
      for (const [i, el] of this.detail) if (!want.has(i)) { el.remove(); this.detail.delete(i); }
      const frag = document.createDocumentFragment();
      for (const i of want) {
        if (this.detail.has(i)) continue;
        const el = this.nodeEl(i);
        this.detail.set(i, el);
        frag.append(el);
      }
      this.gNodes.append(frag);
      const wantL = new Set();
      if (this.k >= LABEL_SCALE) {
        for (let i = 0; i < Lo.edges.length && wantL.size < LABEL_MAX; i++) {
          const t = Lo.et[i];
          if (Lo.edges[i].label && Lo.x[t] >= x0 && Lo.x[t] <= x1 && Lo.y[t] >= y0 && Lo.y[t] <= y1) wantL.add(i);
        }
      }
      for (const [i, el] of this.labels) if (!wantL.has(i)) { el.remove(); this.labels.delete(i); }
      const fragL = document.createDocumentFragment();
      for (const i of wantL) {
        if (this.labels.has(i)) continue;
        const el = this.labelEl(i);
        if (!el) continue;
        this.labels.set(i, el);
        fragL.append(el);
      }
      this.gLabels.append(fragL);
      this.svg.dataset.drawnNodes = String(this.detail.size);
    }

    schedule() {
      if (this.frame) return;
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        if (this.overviewDirty) this.drawOverview();
        this.updateDetail();
      });
    }

    apply() {
      this.viewport.setAttribute('transform', `translate(${r1(this.tx)},${r1(this.ty)}) scale(${this.k})`);
      const labelsOff = !this.big && this.lay && this.lay.edges.length > LABELS_ALWAYS && this.k < LABEL_SCALE;
      this.svg.classList.toggle('labels-off', labelsOff);
      if (!this.big && this.lay && this.lay.edges.length > LABELS_ALWAYS && !labelsOff && !this.gLabels.firstChild) {
        const frag = document.createDocumentFragment();
        for (let i = 0; i < this.lay.edges.length; i++) { const l = this.labelEl(i); if (l) frag.append(l); }
        this.gLabels.append(frag);
      }
      if (this.big && this.strokeK !== this.k) {
        // Hairlines whatever the zoom (cheaper than `vector-effect: non-scaling-stroke`, which
        // makes every frame of a pan re-rasterize 20,000 curves).
        this.strokeK = this.k;
        this.gEdges.setAttribute('stroke-width', String(Math.min(1 / this.k, 12)));
        this.gHl.setAttribute('stroke-width', String(Math.min(2.4 / this.k, 30)));
        this.gSel.setAttribute('stroke-width', String(Math.min(3 / this.k, 40)));
      }
      this.svg.dataset.zoom = this.k.toFixed(3);
      this.schedule();
    }

    fit() {
      const W = this.svg.clientWidth || 800;
      const H = this.svg.clientHeight || 500;
      const k = Math.min((W - 20) / this.lay.width, (H - 20) / this.lay.height, 1.2);
      this.minK = Math.min(k / 2, 0.2);
      this.k = k;
      this.tx = (W - this.lay.width * k) / 2;
      this.ty = Math.max(10, (H - this.lay.height * k) / 2);
      this.apply();
    }

    zoomAt(factor, cx, cy) {
      const k = Math.max(this.minK, Math.min(3, this.k * factor));
      const f = k / this.k;
      this.tx = cx - (cx - this.tx) * f;
      this.ty = cy - (cy - this.ty) * f;
      this.k = k;
      this.apply();
    }

    zoomBy(factor) {
      this.zoomAt(factor, this.svg.clientWidth / 2, this.svg.clientHeight / 2);
    }

    /** Centres node index `i` at a readable zoom. */
    focus(i) {
      const W = this.svg.clientWidth;
      const H = this.svg.clientHeight;
      this.k = Math.max(this.k, 0.9);
      this.tx = W / 2 - this.lay.x[i] * this.k;
      this.ty = H / 2 - this.lay.y[i] * this.k;
      this.apply();
    }

    /** The node index at graph coordinates (gx, gy), or -1. */
    nodeAt(gx, gy) {
      const Lo = this.lay;
      const tb = Lo.direction === 'TB';
      const across = tb ? gy : gx;
      const along = tb ? gx : gy;
      const first = Lo.margin + (tb ? Lo.h : Lo.w) / 2;
      const l = Math.round((across - first) / Lo.stepAcross);
      if (l < 0 || l >= Lo.rows.length) return -1;
      const row = Lo.rows[l];
      const a = tb ? Lo.x : Lo.y;
      let lo = 0;
      let hi = row.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (a[row[mid]] < along) lo = mid + 1; else hi = mid;
      }
      for (const j of [lo - 1, lo]) {
        const v = row[j];
        if (v === undefined) continue;
        if (Math.abs(Lo.x[v] - gx) <= Lo.w / 2 && Math.abs(Lo.y[v] - gy) <= Lo.h / 2) return v;
      }
      return -1;
    }

    toGraph(clientX, clientY) {
      const r = this.svg.getBoundingClientRect();
      return [(clientX - r.left - this.tx) / this.k, (clientY - r.top - this.ty) / this.k];
    }

    /** Marks node index `i` (-1 for none) and its edges. */
    select(i) {
      if (this.selected >= 0) {
        const old = this.detail.get(this.selected);
        if (old) old.classList.remove('selected');
      }
      this.selected = i;
      if (i < 0) {
        this.gHl.setAttribute('d', '');
        this.gSel.setAttribute('d', '');
        return;
      }
      const el = this.detail.get(i);
      if (el) el.classList.add('selected');
      const Lo = this.lay;
      const parts = [];
      for (let e = 0; e < Lo.edges.length; e++) {
        if ((Lo.es[e] === i || Lo.et[e] === i) && Lo.layer[Lo.et[e]] > Lo.layer[Lo.es[e]]) parts.push(route(Lo, e).d);
      }
      this.gHl.setAttribute('d', parts.join(''));
      this.gSel.setAttribute('d', this.big
        ? `M${r1(Lo.x[i] - Lo.w / 2 - 3)},${r1(Lo.y[i] - Lo.h / 2 - 3)}h${Lo.w + 6}v${Lo.h + 6}h${-Lo.w - 6}z` : '');
    }

    /** The visible index of node `id`, or -1. */
    indexOf(id) {
      const i = this.g ? this.g.index.get(id) : undefined;
      return i === undefined ? -1 : i;
    }

    /** Applies live statuses: `[[id, status], ...]`, and sublattice summaries by id. */
    update(pairs, subs) {
      const byId = new Map();
      for (const n of this.nodes) byId.set(n.id, n);
      for (const [id, status] of pairs) {
        const n = byId.get(id);
        if (!n || n.status === status) continue;
        n.status = status;
        const i = this.indexOf(id);
        if (i < 0) continue;
        if (this.big) {
          this.overviewDirty = true;
          this.tileOfNode(i).dirty = true;
        }
        const el = this.detail.get(i);
        if (el) el.replaceWith(this.redraw(i));
      }
      for (const sub of subs || []) {
        const n = byId.get(sub.id);
        if (!n) continue;
        const had = !!n.sub;
        n.sub = sub;
        const i = this.indexOf(sub.id);
        const el = i >= 0 ? this.detail.get(i) : null;
        if (el && (!had || el.dataset.tasks !== String(sub.tasks))) el.replaceWith(this.redraw(i));
      }
      if (this.overviewDirty) this.schedule();
    }

    tileOfNode(i) {
      const Lo = this.lay;
      const a = Lo.direction === 'TB' ? Lo.x[i] : Lo.y[i];
      return this.tiles.get(`${Math.floor(Lo.row[i] / TILE_LAYERS)}:${Math.floor(a / TILE_ALONG)}`);
    }

    redraw(i) {
      const el = this.nodeEl(i);
      this.detail.set(i, el);
      return el;
    }

    /** Visible node indices whose name contains `text` or whose id is `text` (or `#text`). */
    find(text) {
      const q = text.trim().toLowerCase().replace(/^#/, '');
      if (!q) return [];
      const out = [];
      this.g.nodes.forEach((n, i) => {
        if (String(n.id) === q || n.name.toLowerCase().includes(q)) out.push(i);
      });
      return out;
    }

    /** Counts of visible nodes per status. */
    counts() {
      const c = {};
      for (const n of this.g.nodes) c[n.status] = (c[n.status] || 0) + 1;
      return c;
    }

    bindEvents() {
      const svg = this.svg;
      svg.addEventListener('wheel', (e) => {
        e.preventDefault();
        const r = svg.getBoundingClientRect();
        const f = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015));
        this.zoomAt(f, e.clientX - r.left, e.clientY - r.top);
      }, { passive: false });
      let drag = null;
      let lastClick = { i: -2, t: 0 };
      svg.addEventListener('pointerdown', (e) => {
        if (e.button !== 0) return;
        const g = e.target.closest && e.target.closest('g.node');
        drag = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, moved: false,
          node: g ? Number(g.dataset.i) : -1, id: e.pointerId };
      });
      svg.addEventListener('pointermove', (e) => {
        if (drag && drag.id === e.pointerId) {
          const dx = e.clientX - drag.x;
          const dy = e.clientY - drag.y;
          if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 4) {
            drag.moved = true;
            svg.classList.add('dragging');
            try { svg.setPointerCapture(e.pointerId); } catch (_) { /* already released */ }
          }
          if (drag.moved) {
            this.tx = drag.tx + dx;
            this.ty = drag.ty + dy;
            this.apply();
          }
          return;
        }
        if (this.big && this.handlers.hover && this.lay) {
          const [gx, gy] = this.toGraph(e.clientX, e.clientY);
          const i = this.nodeAt(gx, gy);
          this.handlers.hover(i >= 0 ? this.g.nodes[i] : null, e);
        }
      });
      const end = (e) => {
        if (!drag || drag.id !== e.pointerId) return;
        const d = drag;
        drag = null;
        svg.classList.remove('dragging');
        if (d.moved || !this.lay) return;
        let i = d.node;
        if (i < 0 && this.big) {
          const [gx, gy] = this.toGraph(e.clientX, e.clientY);
          i = this.nodeAt(gx, gy);
        }
        const now = performance.now();
        const double = i >= 0 && lastClick.i === i && now - lastClick.t < 400;
        lastClick = { i, t: now };
        this.select(i);
        if (this.handlers.select) this.handlers.select(i >= 0 ? this.g.nodes[i] : null);
        if (double && this.handlers.open) this.handlers.open(this.g.nodes[i]);
      };
      svg.addEventListener('pointerup', end);
      svg.addEventListener('pointercancel', () => { drag = null; svg.classList.remove('dragging'); });
      svg.addEventListener('pointerleave', () => { if (this.handlers.hover) this.handlers.hover(null); });
      new ResizeObserver(() => this.schedule()).observe(svg);
    }
  }

  return { visible, layout, route, View, SMALL };
})();
