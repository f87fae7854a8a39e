// covalent ui: one dispatch. Its summary (inputs, result, error, timings), its transport graph
// (or a sublattice's, with ?path=3/1), the node drawer, live updates over server-sent events and
// cancellation of the dispatch or of a node.
'use strict';

(() => {
  const { api, el, badge, duration, time, elapsed, json, isTerminal, toast, setLive, fmtInt } = Covalent;
  const $ = (x) => document.getElementById(x);
  const id = Covalent.meta('covalent-dispatch');
  const params = new URLSearchParams(location.search);
  const path = (params.get('path') || '').replace(/^\/+|\/+$/g, '');
  let showInternal = params.get('internal') === '1';
  let direction = params.get('dir') === 'LR' ? 'LR' : 'TB';
  let dispatch = null; // the dispatch, without its nodes
  let graph = null; // { nodes, status, crumbs, lattice }
  let view = null;
  let es = null;
  let drawerPath = null;
  let drawerTimer = null;
  let matches = [];
  let matchAt = -1;

  const nodePath = (nodeId) => (path ? `${path}/${nodeId}` : String(nodeId));

  function syncUrl() {
    const p = new URLSearchParams();
    if (path) p.set('path', path);
    if (showInternal) p.set('internal', '1');
    if (direction === 'LR') p.set('dir', 'LR');
    const q = p.toString();
    const hash = drawerPath ? `#node=${drawerPath}` : '';
    history.replaceState(null, '', `${location.pathname}${q ? `?${q}` : ''}${hash}`);
  }

  // ---- Summary -------------------------------------------------------------------------

  function renderSummary(d) {
    document.title = `${d.lattice} ${d.id.slice(0, 8)} · covalent`;
    $('lattice-name').textContent = d.lattice;
    $('crumbs').replaceChildren(
      el('a', { href: '/' }, 'Dispatches'), el('span', { class: 'sep' }, '›'),
      el('a', { href: `/dispatches/${d.id}` }, `${d.lattice} `, el('span', { class: 'mono' }, d.id.slice(0, 8))));
    updateHead();
    const io = [];
    if (d.inputs.length) {
      io.push(el('div', {}, el('h3', {}, 'Inputs'),
        el('table', { class: 'kv', id: 'inputs' }, d.inputs.map((i) =>
          el('tr', {}, el('td', { class: 'mono' }, i.name), el('td', {}, el('code', {}, json(i.value, 2000))))))));
    }
    if (d.output !== null && d.output !== undefined) {
      io.push(el('div', {}, el('h3', {}, 'Result'), el('pre', { id: 'result' }, json(d.output))));
    } else if (d.output_file) {
      io.push(el('div', {}, el('h3', {}, 'Result'), valueFile(d.output_file, 'result')));
    }
    if (d.error) {
      io.push(el('div', {}, el('h3', {}, 'Error'), el('pre', { class: 'error', id: 'dispatch-error' }, d.error)));
    }
    $('io').replaceChildren(...io);
  }

  /** A value too large for the store's row: its size and file, not its text. */
  function valueFile(f, id) {
    const mb = f.bytes >= 1e6 ? `${(f.bytes / 1e6).toFixed(1)} MB` : `${Math.round(f.bytes / 1e3)} KB`;
    return el('p', id ? { class: 'value-file', id } : { class: 'value-file' },
      `${mb} of JSON in `, el('code', {}, f.path));
  }

  function updateHead() {
    const d = dispatch;
    const status = $('dispatch-status');
    status.className = `badge s-${d.status}`;
    status.textContent = d.status;
    const pct = d.total ? Math.round((100 * d.done) / d.total) : 0;
    const bar = el('span', { class: 'progress' }, el('span'));
    bar.firstChild.style.width = `${pct}%`;
    $('facts').replaceChildren(
      el('span', {}, 'ID ', el('span', { class: 'mono', id: 'dispatch-id' }, d.id)),
      el('span', {}, 'Tasks ', el('b', { id: 'tasks' }, `${fmtInt(d.done)}/${fmtInt(d.total)}`), bar),
      el('span', {}, 'Started ', el('b', {}, time(d.start_time))),
      el('span', {}, 'Ended ', el('b', { id: 'ended' }, time(d.end_time))),
      el('span', {}, 'Runtime ', el('b', { id: 'runtime' }, duration(d.end_time ? d.runtime_ms : elapsed(d.start_time, null)))),
      d.results_dir ? el('span', {}, 'Results ', el('span', { class: 'mono' }, d.results_dir)) : null);
    const cancel = $('cancel-dispatch');
    cancel.hidden = isTerminal(d.status);
    if (isTerminal(d.status)) {
      const c = document.querySelector('.summary-head .confirm');
      if (c) c.remove();
    }
  }

  function confirmThen(anchor, question, yesLabel, action) {
    const old = anchor.parentElement.querySelector('.confirm');
    if (old) old.remove();
    const box = el('span', { class: 'confirm' }, question,
      el('button', { type: 'button', class: 'button danger small', id: 'confirm-yes' }, yesLabel),
      el('button', { type: 'button', class: 'button small', id: 'confirm-no' }, 'No'));
    box.querySelector('#confirm-no').addEventListener('click', () => { box.remove(); anchor.hidden = false; });
    box.querySelector('#confirm-yes').addEventListener('click', async () => {
      box.remove();
      await action();
      anchor.hidden = false;
    });
    anchor.hidden = true;
    anchor.after(box);
  }

  async function cancel(nodes) {
    try {
      await api(`/api/dispatches/${id}/cancel`, { body: nodes ? { nodes } : {} });
      toast(nodes ? `Cancellation of node ${nodes.join(', ')} requested` : 'Cancellation requested');
    } catch (e) {
      toast(e.message, true);
    }
  }

  $('cancel-dispatch').addEventListener('click', () => {
    confirmThen($('cancel-dispatch'), 'Cancel this dispatch?', 'Yes, cancel', () => cancel(null));
  });

  // ---- Graph ---------------------------------------------------------------------------

  function renderCrumbs() {
    const crumbs = [el('a', { href: `/dispatches/${id}${showInternal ? '?internal=1' : ''}` }, dispatch.lattice)];
    for (const c of (graph && graph.crumbs) || []) {
      crumbs.push(el('span', { class: 'sep' }, '›'));
      crumbs.push(el('a', { href: `/dispatches/${id}?path=${c.path}` }, `${c.name} (node ${c.path})`));
    }
    if (graph && path) crumbs.push(el('span', {}, ' ', badge(graph.status)));
    $('graph-crumbs').replaceChildren(...crumbs);
  }

  function renderLegend() {
    if (!view || !view.g) return;
    const counts = view.counts();
    $('legend').replaceChildren(...Covalent.STATUSES.filter((s) => counts[s]).map((s) =>
      el('span', { dataset: { status: s } }, el('span', { class: `dot s-${s}` }), `${s} ${fmtInt(counts[s])}`)));
  }

  let tip = null;
  function hover(node, e) {
    if (!tip) {
      tip = el('div', { class: 'graph-tip', hidden: true });
      $('graph-wrap').append(tip);
    }
    if (!node) { tip.hidden = true; return; }
    const r = $('graph-wrap').getBoundingClientRect();
    tip.textContent = `${node.name} #${node.id} · ${node.status}`;
    tip.style.left = `${e.clientX - r.left + 14}px`;
    tip.style.top = `${e.clientY - r.top + 12}px`;
    tip.hidden = false;
  }

  function drawGraph(g, fetchMs) {
    graph = g;
    renderCrumbs();
    if (!view) {
      view = new CovalentGraph.View($('graph'), {
        select: (node) => (node ? openNode(nodePath(node.id)) : closeDrawer()),
        open: (node) => { if (node.sub) location.href = subUrl(node.id); },
        hover,
      });
    }
    const old = document.querySelector('.graph-message');
    if (old) old.remove();
    const t0 = performance.now();
    const stats = view.setGraph(g.nodes, { showInternal, direction });
    view.fit();
    renderLegend();
    if (!stats.nodes) {
      $('graph-wrap').append(el('div', { class: 'graph-message' },
        g.nodes.length ? 'Only internal nodes: tick “internal nodes” to see them.' : 'This graph has no nodes yet.'));
    }
    $('direction').textContent = direction === 'TB' ? 'Top → bottom' : 'Left → right';
    // Measured once the browser has painted the drawing.
    requestAnimationFrame(() => setTimeout(() => {
      const renderMs = performance.now() - t0;
      const r = { ...stats, fetchMs, renderMs, sinceNavigationMs: performance.now() };
      window.covalentRender = r;
      const big = view.big ? ' · zoom in for names' : '';
      $('graph-status').textContent = `${fmtInt(stats.nodes)} nodes · ${fmtInt(stats.edges)} edges · ` +
        `drawn in ${Math.round(renderMs)} ms${big}`;
      $('graph-status').classList.remove('error');
      document.body.dataset.graphReady = String((Number(document.body.dataset.graphReady) || 0) + 1);
    }, 0));
  }

  function subUrl(nodeId) {
    const p = new URLSearchParams({ path: nodePath(nodeId) });
    if (showInternal) p.set('internal', '1');
    return `/dispatches/${id}?${p}`;
  }

  async function loadGraph() {
    if (!path) {
      return { nodes: dispatch.nodes, status: dispatch.status, crumbs: [], lattice: dispatch.lattice };
    }
    return api(`/api/dispatches/${id}/sublattices/${path}`);
  }

  async function reloadGraph() {
    try {
      const t0 = performance.now();
      if (!path) dispatch = await api(`/api/dispatches/${id}`);
      const g = await loadGraph();
      const keep = drawerPath;
      drawGraph(g, performance.now() - t0);
      if (keep) selectPath(keep);
    } catch (e) {
      graphError(e);
    }
  }

  function graphError(e) {
    $('graph-status').textContent = e.message;
    $('graph-status').classList.add('error');
  }

  // ---- Drawer --------------------------------------------------------------------------

  function kv(rows) {
    return el('table', { class: 'kv' }, rows.filter(Boolean).map(([k, v]) =>
      el('tr', {}, el('td', {}, k), el('td', {}, v))));
  }

  function stream(text, idName) {
    return text ? el('pre', { id: idName }, text) : el('p', { class: 'muted', id: idName }, '(nothing recorded)');
  }

  function renderDrawer(n) {
    $('drawer-title').replaceChildren(`${n.name} `, el('span', { class: 'muted mono' }, `#${n.path}`));
    const actions = el('div', { class: 'actions' });
    if (n.sublattice) {
      actions.append(el('a', { class: 'button primary small', id: 'open-sublattice', href: subUrl(n.id) },
        `Open sublattice graph (${fmtInt(n.sublattice.tasks)} tasks)`));
    }
    if (n.cancellable) {
      const b = el('button', { type: 'button', class: 'button danger small', id: 'cancel-node' }, 'Cancel node');
      b.addEventListener('click', () => confirmThen(b, 'Cancel this node?', 'Yes, cancel', () => cancel([n.id])));
      actions.append(b);
    }
    const parts = [
      el('div', { class: 'drawer-status' }, badge(n.status)),
      actions,
      kv([
        ['Status', el('span', { id: 'node-status' }, n.status)],
        ['Executor', el('span', { id: 'node-executor' }, n.executor || (n.internal ? '(internal node)' : '-'))],
        ['Started', time(n.start_time, true)],
        ['Ended', time(n.end_time, true)],
        ['Runtime', el('span', { id: 'node-runtime' }, n.start_time ? duration(n.runtime_ms) : '-')],
        ['Attempts', String(n.attempts.length)],
        n.sublattice ? ['Sublattice', `${n.sublattice.lattice}: ${n.sublattice.status}, ${n.sublattice.done}/${n.sublattice.tasks} tasks`] : null,
        n.job_handle !== null && n.job_handle !== undefined ? ['Job handle', el('code', {}, json(n.job_handle, 400))] : null,
      ]),
    ];
    if (n.executor_options && typeof n.executor_options === 'object') {
      parts.push(el('h3', { title: 'the plugin\'s defaults with [executors.*] of the configuration this server read' },
        `Executor options (${n.executor})`),
      el('table', { class: 'kv', id: 'node-executor-options' }, Object.entries(n.executor_options).map(([k, v]) =>
        el('tr', {}, el('td', { class: 'mono' }, k),
          el('td', {}, v === null ? el('span', { class: 'muted' }, 'default') : el('code', {}, json(v, 400)))))));
    }
    parts.push(el('h3', {}, 'Inputs'));
    if (n.inputs.length) {
      parts.push(el('table', { class: 'grid inputs', id: 'node-inputs' },
        el('tr', {}, el('th', {}, 'Parameter'), el('th', {}, 'From'), el('th', {}, 'Value')),
        n.inputs.map((i) => el('tr', {},
          el('td', { class: 'mono' }, i.name),
          el('td', {}, i.source_internal ? el('span', { class: 'muted' }, `${i.source_name} #${i.source}`)
            : el('a', { href: '#', dataset: { goto: String(i.source) } }, `${i.source_name} #${i.source}`)),
          el('td', {}, i.value_file ? valueFile(i.value_file)
            : i.value === null || i.value === undefined ? el('span', { class: 'muted' }, i.source_status || '-')
            : el('pre', {}, json(i.value, 20000)))))));
    } else {
      parts.push(el('p', { class: 'muted' }, 'none'));
    }
    parts.push(el('h3', {}, 'Output'));
    parts.push(n.output_file ? valueFile(n.output_file, 'node-output')
      : n.output === null || n.output === undefined ? el('p', { class: 'muted', id: 'node-output' }, '(none)')
      : el('pre', { id: 'node-output' }, json(n.output)));
    if (n.error) {
      parts.push(el('h3', {}, 'Error', n.error_kind ? el('span', { class: 'muted', id: 'node-error-kind' }, ` (${n.error_kind.replace(/_/g, ' ')})`) : ''),
        el('pre', { class: 'error', id: 'node-error' }, n.error));
    }
    if (n.attempts.length) {
      parts.push(el('h3', {}, 'Attempts'), el('table', { class: 'grid', id: 'node-attempts' },
        el('tr', {}, el('th', {}, '#'), el('th', {}, 'Started'), el('th', {}, 'Took'), el('th', {}, 'Error')),
        n.attempts.map((a) => el('tr', {}, el('td', {}, String(a.number)), el('td', {}, time(a.start_time, true)),
          el('td', {}, duration(elapsed(a.start_time, a.end_time))), el('td', {}, a.error ? (a.error_kind ? `[${a.error_kind}] ${a.error}` : a.error) : '')))));
    }
    parts.push(el('h3', {}, 'Stdout'), stream(n.stdout, 'node-stdout'));
    parts.push(el('h3', {}, 'Stderr'), stream(n.stderr, 'node-stderr'));
    if (n.dependants.length) {
      parts.push(el('h3', {}, 'Used by'), el('p', {}, n.dependants.map((d, k) => [k ? ', ' : '',
        d.internal ? el('span', { class: 'muted' }, `${d.name} #${d.id}`)
          : el('a', { href: '#', dataset: { goto: String(d.id) } }, `${d.name} #${d.id}`)])));
    }
    $('drawer-body').replaceChildren(...parts);
    $('drawer').dataset.node = n.path;
    $('drawer').dataset.status = n.status;
  }

  async function openNode(p) {
    drawerPath = p;
    syncUrl();
    $('drawer').hidden = false;
    try {
      const n = await api(`/api/dispatches/${id}/nodes/${p}`);
      if (drawerPath !== p) return;
      renderDrawer(n);
    } catch (e) {
      if (drawerPath !== p) return;
      $('drawer-title').textContent = `Node ${p}`;
      $('drawer-body').replaceChildren(el('p', { class: 'notice error' }, e.message));
    }
  }

  function closeDrawer() {
    drawerPath = null;
    $('drawer').hidden = true;
    if (view) view.select(-1);
    syncUrl();
  }

  /** Selects (and shows) the node at full path `p` if it is in this graph. */
  function selectPath(p) {
    const parts = p.split('/');
    const nid = Number(parts.pop());
    if (parts.join('/') !== path || !view) { openNode(p); return; }
    const i = view.indexOf(nid);
    if (i >= 0) { view.select(i); view.focus(i); }
    openNode(p);
  }

  $('drawer-close').addEventListener('click', closeDrawer);
  $('drawer-body').addEventListener('click', (e) => {
    const a = e.target.closest('[data-goto]');
    if (!a) return;
    e.preventDefault();
    selectPath(nodePath(a.dataset.goto));
  });

  // ---- Controls ------------------------------------------------------------------------

  $('show-internal').checked = showInternal;
  $('show-internal').addEventListener('change', () => {
    showInternal = $('show-internal').checked;
    syncUrl();
    if (graph) drawGraph(graph, 0);
    if (drawerPath) selectPath(drawerPath);
  });
  $('direction').addEventListener('click', () => {
    direction = direction === 'TB' ? 'LR' : 'TB';
    syncUrl();
    if (graph) drawGraph(graph, 0);
  });
  $('zoom-in').addEventListener('click', () => view && view.zoomBy(1.4));
  $('zoom-out').addEventListener('click', () => view && view.zoomBy(1 / 1.4));
  $('zoom-fit').addEventListener('click', () => view && view.fit());
  $('node-search').addEventListener('input', () => {
    if (!view) return;
    matches = view.find($('node-search').value);
    matchAt = -1;
    $('graph-status').textContent = $('node-search').value.trim()
      ? `${fmtInt(matches.length)} matching node${matches.length === 1 ? '' : 's'} (Enter for the next)` : '';
  });
  $('node-search').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || !matches.length) return;
    matchAt = (matchAt + 1) % matches.length;
    const i = matches[matchAt];
    view.select(i);
    view.focus(i);
    openNode(nodePath(view.g.nodes[i].id));
  });
  document.addEventListener('keydown', (e) => {
    if (e.target.closest('input, textarea, select')) return;
    if (e.key === 'Escape') closeDrawer();
    else if (!view) return;
    else if (e.key === '+' || e.key === '=') view.zoomBy(1.25);
    else if (e.key === '-') view.zoomBy(0.8);
    else if (e.key === '0') view.fit();
  });

  // ---- Live ----------------------------------------------------------------------------

  function applyUpdate(u) {
    Object.assign(dispatch, {
      status: u.status, done: u.done, total: u.total, end_time: u.end_time, runtime_ms: u.runtime_ms,
      error: u.error,
    });
    updateHead();
    if (u.reload || (graph && !graph.nodes.length && u.nodes.length)) { reloadGraph(); return; }
    if (graph && u.graph_status) {
      graph.status = u.graph_status;
      if (path) renderCrumbs();
    }
    if (view && view.g) {
      view.update(u.nodes, u.subs);
      renderLegend();
    }
    if (drawerPath) {
      const mine = drawerPath.split('/');
      const nid = Number(mine.pop());
      if (mine.join('/') === path && u.nodes.some(([n]) => n === nid)) {
        clearTimeout(drawerTimer);
        const p = drawerPath;
        drawerTimer = setTimeout(() => { if (drawerPath === p) openNode(p); }, 150);
      }
    }
  }

  async function finished() {
    setLive(false, 'ended');
    try {
      const d = await api(`/api/dispatches/${id}`);
      dispatch = d;
      renderSummary(d);
      if (!path && view) {
        view.update(d.nodes.map((n) => [n.id, n.status]),
          d.nodes.filter((n) => n.sub).map((n) => ({ id: n.id, ...n.sub })));
        renderLegend();
      }
      if (drawerPath) openNode(drawerPath);
      document.body.dataset.ended = '1';
    } catch (e) {
      toast(e.message, true);
    }
  }

  function connect() {
    if (isTerminal(dispatch.status)) {
      setLive(false, 'ended');
      return;
    }
    const q = path ? `?path=${encodeURIComponent(path)}` : '';
    es = new EventSource(`/api/dispatches/${id}/events${q}`);
    es.addEventListener('update', (e) => applyUpdate(JSON.parse(e.data)));
    es.addEventListener('end', () => {
      es.close();
      es = null;
      finished();
    });
    es.addEventListener('problem', (e) => {
      es.close();
      es = null;
      setLive(false, 'stopped');
      toast(JSON.parse(e.data).error, true);
    });
    es.onopen = () => setLive(true);
    es.onerror = () => { if (es) setLive(false, 'reconnecting…'); };
  }

  setInterval(() => {
    if (dispatch && !isTerminal(dispatch.status) && $('runtime')) {
      $('runtime').textContent = duration(elapsed(dispatch.start_time, null));
    }
  }, 1000);

  // ---- Start ---------------------------------------------------------------------------

  async function start() {
    const t0 = performance.now();
    try {
      dispatch = await api(`/api/dispatches/${id}`);
    } catch (e) {
      $('lattice-name').textContent = 'This dispatch cannot be shown';
      $('io').replaceChildren(el('p', { class: 'notice error' }, e.message));
      graphError(e);
      return;
    }
    renderSummary(dispatch);
    try {
      const g = await loadGraph();
      drawGraph(g, performance.now() - t0);
    } catch (e) {
      graph = { nodes: [], status: dispatch.status, crumbs: [], lattice: '' };
      renderCrumbs();
      graphError(e);
    }
    const m = location.hash.match(/^#node=([0-9/]+)$/);
    if (m) selectPath(m[1]);
    connect();
  }

  start();
})();
