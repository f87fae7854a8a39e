// covalent ui: one dispatch. Its summary (inputs, result, error, timings), its transport graph
// (or a sublattice's, with ?path=3/1), the node drawer, live updates over server-sent events and
// cancellation of the dispatch or of a node. A dispatch too big to draw node by node comes
// summarized (`dispatch.summarized`): its groups of nodes (one name, one band of depth) are drawn
// as nodes, and a group's drawer pages through its members.
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
  let drawerGroup = null; // a summarized graph's group in the drawer: { key, offset }
  let drawerTimer = null;
  let groupsByKey = new Map();
  let searchNode = null;
  const GROUP_PAGE = 100;
  let matches = [];
  let matchAt = -1;

  const nodePath = (nodeId) => (path ? `${path}/${nodeId}` : String(nodeId));

  function syncUrl() {
    const p = new URLSearchParams();
    if (path) p.set('path', path);
    if (showInternal) p.set('internal', '1');
    if (direction === 'LR') p.set('dir', 'LR');
    const q = p.toString();
    const hash = drawerPath ? `#node=${drawerPath}` : drawerGroup ? `#group=${drawerGroup.key}` : '';
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
          el('tr', {}, el('td', { class: 'mono' }, i.name),
            el('td', {}, i.value_file ? valueFile(i.value_file) : el('code', {}, json(i.value, 2000))))))));
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
    const counts = graph && graph.summarized ? groupCounts() : view.counts();
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

  // ---- Summarized graphs -----------------------------------------------------------------

  const WORST = ['FAILED', 'INTERRUPTED', 'CANCELLED', 'RUNNING', 'PENDING'];

  /** The status a group is drawn with: the worst one any of its nodes has, else the commonest. */
  function groupStatus(counts) {
    for (const s of WORST) if (counts[s]) return s;
    let best = 'NEW';
    let most = -1;
    for (const [s, n] of Object.entries(counts)) if (n > most) { best = s; most = n; }
    return best;
  }

  /** Nodes per status over every group. */
  function groupCounts() {
    const c = {};
    for (const g of groupsByKey.values()) for (const [s, n] of Object.entries(g.statuses)) c[s] = (c[s] || 0) + n;
    return c;
  }

  const depthText = (g) => (g.depth[0] === g.depth[1] ? `depth ${fmtInt(g.depth[0])}` : `depth ${fmtInt(g.depth[0])}–${fmtInt(g.depth[1])}`);

  /** A summarized dispatch's groups as the graph view's nodes, edges labelled with counts. */
  function groupGraph(d) {
    groupsByKey = new Map(d.groups.map((g) => [g.key, g]));
    const inputs = new Map();
    for (const e of d.group_edges) {
      if (!inputs.has(e.target)) inputs.set(e.target, []);
      inputs.get(e.target).push([e.source, `×${fmtInt(e.count)}`]);
    }
    const nodes = d.groups.map((g) => ({
      id: g.key, group: g, name: `${g.name} ×${fmtInt(g.count)}`, internal: g.internal,
      status: groupStatus(g.statuses), executor: g.executor, inputs: inputs.get(g.key) || [], sub: null,
      caption: `${depthText(g)}${g.executor ? ` · ${g.executor}` : ''}`,
      title: `${g.name}: ${fmtInt(g.count)} nodes from #${g.first_id}, ${depthText(g)} · ` +
        Object.entries(g.statuses).map(([s, n]) => `${s} ${fmtInt(n)}`).join(', '),
    }));
    return { nodes, status: d.status, crumbs: [], lattice: d.lattice, summarized: true };
  }

  /** Applies new status counts `[[key, counts], ...]` to the groups drawn. */
  function updateGroups(changes) {
    const pairs = [];
    for (const [key, counts] of changes) {
      const g = groupsByKey.get(key);
      if (!g) continue;
      g.statuses = counts;
      pairs.push([key, groupStatus(counts)]);
    }
    if (view && view.g && pairs.length) view.update(pairs, []);
    renderLegend();
    if (drawerGroup && changes.some(([k]) => k === drawerGroup.key)) {
      clearTimeout(drawerTimer);
      const mine = drawerGroup;
      drawerTimer = setTimeout(() => { if (drawerGroup === mine) openGroup(mine.key, mine.offset); }, 150);
    }
  }

  /** The drawer of group `key`: its counts, then a page of its nodes from `offset`. */
  async function openGroup(key, offset = 0) {
    const g = groupsByKey.get(key);
    if (!g) return;
    const mine = { key, offset };
    drawerGroup = mine;
    drawerPath = null;
    syncUrl();
    $('drawer').hidden = false;
    $('drawer').dataset.group = String(key);
    delete $('drawer').dataset.node;
    $('drawer-title').replaceChildren(`${g.name} `, el('span', { class: 'muted' }, `×${fmtInt(g.count)}`));
    const head = [
      el('div', { class: 'group-counts', id: 'group-statuses' }, Object.entries(g.statuses).map(([s, n]) =>
        el('span', { class: `badge s-${s}`, dataset: { status: s } }, `${s} ${fmtInt(n)}`))),
      kv([
        ['Nodes', el('span', { id: 'group-count' }, fmtInt(g.count))],
        ['Executor', g.executor || (g.internal ? '(internal nodes)' : '-')],
        ['Depth', depthText(g).replace('depth ', '')],
        ['First node', el('a', { href: '#', dataset: { goto: String(g.first_id) } }, `#${g.first_id}`)],
        g.inner_edges ? ['Edges within', fmtInt(g.inner_edges)] : null,
      ]),
      el('h3', {}, 'Nodes'),
    ];
    $('drawer-body').replaceChildren(...head, el('p', { class: 'muted', id: 'group-loading' }, 'loading…'));
    try {
      const q = new URLSearchParams({ group: String(key), offset: String(offset), limit: String(GROUP_PAGE) });
      if (showInternal) q.set('internal', '1');
      const page = await api(`/api/dispatches/${id}/nodes?${q}`);
      if (drawerGroup !== mine) return;
      const end = offset + page.nodes.length;
      const prev = el('button', { type: 'button', class: 'button small', id: 'group-prev', disabled: offset === 0 }, '‹ Previous');
      const next = el('button', { type: 'button', class: 'button small', id: 'group-next', disabled: end >= page.matching }, 'Next ›');
      prev.addEventListener('click', () => openGroup(key, Math.max(0, offset - GROUP_PAGE)));
      next.addEventListener('click', () => openGroup(key, offset + GROUP_PAGE));
      const pager = el('div', { class: 'pager' },
        el('span', { id: 'group-range' }, page.nodes.length ? `${fmtInt(offset + 1)}–${fmtInt(end)} of ${fmtInt(page.matching)}` : `none of ${fmtInt(page.matching)}`),
        prev, next);
      const rows = page.nodes.map((n) => el('tr', { dataset: { id: String(n.id) } },
        el('td', {}, el('a', { href: '#', dataset: { goto: String(n.id) } }, `${n.name} #${n.id}`)),
        el('td', {}, badge(n.status)),
        el('td', { class: 'mono' }, n.executor || '')));
      $('drawer-body').replaceChildren(...head, pager,
        el('table', { class: 'grid', id: 'group-members' },
          el('tr', {}, el('th', {}, 'Node'), el('th', {}, 'Status'), el('th', {}, 'Executor')), rows));
    } catch (e) {
      if (drawerGroup !== mine) return;
      $('drawer-body').replaceChildren(...head, el('p', { class: 'notice error' }, e.message));
    }
  }

  function drawGraph(g, fetchMs) {
    graph = g;
    renderCrumbs();
    if (!view) {
      view = new CovalentGraph.View($('graph'), {
        select: (node) => (!node ? closeDrawer() : node.group ? openGroup(node.group.key) : openNode(nodePath(node.id))),
        open: (node) => { if (node.sub) location.href = subUrl(node.id); },
        hover,
      });
    }
    const old = document.querySelector('.graph-message');
    if (old) old.remove();
    const t0 = performance.now();
    const stats = view.setGraph(g.nodes, { showInternal: g.summarized ? true : showInternal, direction });
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
      if (g.summarized) Object.assign(r, { summarized: true, groups: stats.nodes, nodeCount: dispatch.node_count, shown: dispatch.shown });
      window.covalentRender = r;
      const big = view.big ? ' · zoom in for names' : '';
      $('graph-status').textContent = g.summarized
        ? `${fmtInt(dispatch.shown)} nodes, shown grouped by name and depth: ${fmtInt(stats.nodes)} ` +
          `group${stats.nodes === 1 ? '' : 's'} · ${fmtInt(stats.edges)} edge${stats.edges === 1 ? '' : 's'} · ` +
          `drawn in ${Math.round(renderMs)} ms`
        : `${fmtInt(stats.nodes)} nodes · ${fmtInt(stats.edges)} edges · drawn in ${Math.round(renderMs)} ms${big}`;
      $('graph-status').classList.remove('error');
      document.body.dataset.graphReady = String((Number(document.body.dataset.graphReady) || 0) + 1);
    }, 0));
  }

  function subUrl(nodeId) {
    const p = new URLSearchParams({ path: nodePath(nodeId) });
    if (showInternal) p.set('internal', '1');
    return `/dispatches/${id}?${p}`;
  }

  /** The dispatch answer (a summarized graph groups internal nodes too with the toggle on). */
  const dispatchUrl = () => `/api/dispatches/${id}${showInternal ? '?internal=1' : ''}`;

  async function loadGraph() {
    if (!path) {
      if (dispatch.summarized) return groupGraph(dispatch);
      return { nodes: dispatch.nodes, status: dispatch.status, crumbs: [], lattice: dispatch.lattice };
    }
    return api(`/api/dispatches/${id}/sublattices/${path}`);
  }

  async function reloadGraph() {
    try {
      const t0 = performance.now();
      if (!path) dispatch = await api(dispatchUrl());
      const g = await loadGraph();
      const keep = drawerPath;
      const keepGroup = drawerGroup;
      drawGraph(g, performance.now() - t0);
      if (keep) selectPath(keep);
      else if (keepGroup && g.summarized) openGroup(keepGroup.key, keepGroup.offset);
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
      if (n.inputs_total > n.inputs.length) {
        parts.push(el('p', { class: 'muted', id: 'node-inputs-more' },
          `the first ${fmtInt(n.inputs.length)} of ${fmtInt(n.inputs_total)} inputs`));
      }
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
    if (n.transfers && n.transfers.length) {
      parts.push(el('h3', {}, 'File transfers'), el('table', { class: 'grid', id: 'node-transfers' },
        el('tr', {}, el('th', {}, '#'), el('th', {}, 'Dir'), el('th', {}, 'From'), el('th', {}, 'To'),
          el('th', {}, 'How'), el('th', {}, 'Bytes'), el('th', {}, 'Took'), el('th', {}, 'BLAKE3 / error')),
        n.transfers.map((t) => el('tr', { class: t.error ? 'error' : '' }, el('td', {}, String(t.attempt)),
          el('td', {}, t.direction), el('td', {}, t.source), el('td', {}, t.destination),
          el('td', {}, t.via === 'dispatcher' ? `${t.strategy} (via the dispatcher)` : t.strategy),
          el('td', {}, fmtInt(t.bytes)), el('td', {}, duration(t.seconds * 1000)),
          el('td', {}, t.error ? t.error : (t.blake3 || '').slice(0, 16))))));
    }
    parts.push(el('h3', {}, 'Stdout'), stream(n.stdout, 'node-stdout'));
    parts.push(el('h3', {}, 'Stderr'), stream(n.stderr, 'node-stderr'));
    if (n.dependants.length) {
      parts.push(el('h3', {}, 'Used by'), el('p', {}, n.dependants.map((d, k) => [k ? ', ' : '',
        d.internal ? el('span', { class: 'muted' }, `${d.name} #${d.id}`)
          : el('a', { href: '#', dataset: { goto: String(d.id) } }, `${d.name} #${d.id}`)])));
      if (n.dependants_total > n.dependants.length) {
        parts.push(el('p', { class: 'muted', id: 'node-dependants-more' },
          `the first ${fmtInt(n.dependants.length)} of ${fmtInt(n.dependants_total)} nodes that use it`));
      }
    }
    $('drawer-body').replaceChildren(...parts);
    $('drawer').dataset.node = n.path;
    $('drawer').dataset.status = n.status;
    delete $('drawer').dataset.group;
  }

  async function openNode(p) {
    drawerPath = p;
    drawerGroup = null;
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
    drawerGroup = null;
    $('drawer').hidden = true;
    if (view) view.select(-1);
    syncUrl();
  }

  /** Selects (and shows) the node at full path `p` if it is in this graph. */
  function selectPath(p) {
    const parts = p.split('/');
    const nid = Number(parts.pop());
    // A summarized graph draws groups, not nodes: only the drawer opens.
    if (parts.join('/') !== path || !view || (graph && graph.summarized)) { openNode(p); return; }
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
    if (graph && graph.summarized) {
      // Other groups: asked for again, and the live stream with them.
      drawerGroup = null;
      reloadGraph();
      if (es) { es.close(); es = null; connect(); }
      return;
    }
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
    matchAt = -1;
    if (graph && graph.summarized) {
      // Groups by name; a number is a node id (Enter opens it).
      const q = $('node-search').value.trim().toLowerCase().replace(/^#/, '');
      searchNode = /^[0-9]+$/.test(q) ? q : null;
      matches = q ? view.g.nodes.flatMap((n, i) => (n.group.name.toLowerCase().includes(q) ? [i] : [])) : [];
      $('graph-status').textContent = !q ? ''
        : searchNode !== null ? `node #${searchNode}: Enter opens it`
          : `${fmtInt(matches.length)} matching group${matches.length === 1 ? '' : 's'} (Enter for the next)`;
      return;
    }
    matches = view.find($('node-search').value);
    $('graph-status').textContent = $('node-search').value.trim()
      ? `${fmtInt(matches.length)} matching node${matches.length === 1 ? '' : 's'} (Enter for the next)` : '';
  });
  $('node-search').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    if (graph && graph.summarized && searchNode !== null) { openNode(searchNode); return; }
    if (!matches.length) return;
    matchAt = (matchAt + 1) % matches.length;
    const i = matches[matchAt];
    view.select(i);
    view.focus(i);
    const n = view.g.nodes[i];
    if (n.group) openGroup(n.group.key); else openNode(nodePath(n.id));
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
    if (graph && graph.summarized) {
      if (u.groups) updateGroups(u.groups);
      return;
    }
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
      const d = await api(dispatchUrl());
      dispatch = d;
      renderSummary(d);
      if (!path && view && d.summarized) {
        if (graph && graph.summarized) updateGroups(d.groups.map((g) => [g.key, g.statuses]));
        else reloadGraph();
      } else if (!path && view) {
        view.update(d.nodes.map((n) => [n.id, n.status]),
          d.nodes.filter((n) => n.sub).map((n) => ({ id: n.id, ...n.sub })));
        renderLegend();
      }
      if (drawerPath) openNode(drawerPath);
      else if (drawerGroup) openGroup(drawerGroup.key, drawerGroup.offset);
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
    const p = new URLSearchParams();
    if (path) p.set('path', path);
    if (!path && dispatch.summarized && showInternal) p.set('internal', '1');
    const q = p.toString() ? `?${p}` : '';
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
      dispatch = await api(dispatchUrl());
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
    const mg = location.hash.match(/^#group=([0-9]+)$/);
    if (mg && graph && graph.summarized) openGroup(Number(mg[1]));
    connect();
  }

  start();
})();
