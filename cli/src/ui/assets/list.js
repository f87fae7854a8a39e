// covalent ui: the dispatch list (search, status filter, sort, pagination, counts per status),
// kept current by the store's change events.
'use strict';

(() => {
  const { api, el, badge, duration, time, elapsed, idWidth, fmtInt } = Covalent;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = {
    status: params.get('status') || '',
    search: params.get('search') || '',
    sort: params.get('sort') || 'start',
    order: params.get('order') || '',
    page: Math.max(0, parseInt(params.get('page') || '0', 10) || 0),
    size: parseInt(params.get('size') || '50', 10) || 50,
  };
  let last = null;
  let loading = null;
  let again = false;

  function defaultOrder(sort) {
    return ['id', 'lattice', 'status'].includes(sort) ? 'asc' : 'desc';
  }

  function syncUrl() {
    const p = new URLSearchParams();
    if (state.status) p.set('status', state.status);
    if (state.search) p.set('search', state.search);
    if (state.sort !== 'start') p.set('sort', state.sort);
    if (state.order && state.order !== defaultOrder(state.sort)) p.set('order', state.order);
    if (state.page) p.set('page', state.page);
    if (state.size !== 50) p.set('size', state.size);
    const q = p.toString();
    history.replaceState(null, '', q ? `/?${q}` : '/');
  }

  async function load() {
    if (loading) { again = true; return loading; }
    const q = new URLSearchParams({
      sort: state.sort,
      order: state.order || defaultOrder(state.sort),
      limit: state.size,
      offset: state.page * state.size,
    });
    if (state.status) q.set('status', state.status);
    if (state.search) q.set('search', state.search);
    loading = (async () => {
      try {
        const data = await api(`/api/dispatches?${q}`);
        last = data;
        render(data);
        $('notice').hidden = true;
        if (!data.store.exists) {
          $('notice').className = 'notice';
          $('notice').textContent = `No dispatches recorded yet: the store ${data.store.path} ` +
            'does not exist. Run a workflow with recording on and it appears here.';
          $('notice').hidden = false;
        }
      } catch (e) {
        $('notice').className = 'notice error';
        $('notice').textContent = e.message;
        $('notice').hidden = false;
      } finally {
        loading = null;
        if (again) { again = false; load(); }
      }
    })();
    return loading;
  }

  function render(data) {
    const counts = $('counts');
    counts.replaceChildren();
    const all = el('button', { type: 'button', class: `chip${state.status ? '' : ' active'}`,
      dataset: { status: '' } }, 'All ', el('b', {}, fmtInt(data.total)));
    counts.append(all);
    for (const s of Covalent.STATUSES) {
      const n = data.counts[s];
      if (!n) continue;
      counts.append(el('button', { type: 'button', class: `chip${state.status === s ? ' active' : ''}`,
        dataset: { status: s } }, el('span', { class: `dot s-${s}` }), `${s} `, el('b', {}, fmtInt(n))));
    }

    for (const th of document.querySelectorAll('th[data-sort]')) {
      const on = th.dataset.sort === data.sort;
      th.classList.toggle('sorted', on);
      th.classList.toggle('asc', on && data.order === 'asc');
      th.setAttribute('aria-sort', on ? (data.order === 'asc' ? 'ascending' : 'descending') : 'none');
    }

    const tbody = document.querySelector('#dispatches tbody');
    const width = idWidth(data.dispatches.map((d) => d.id));
    const rows = data.dispatches.map((d) => {
      const pct = d.total ? Math.round((100 * d.done) / d.total) : 0;
      const bar = el('span', { class: 'progress' }, el('span'));
      bar.firstChild.style.width = `${pct}%`;
      return el('tr', { dataset: { id: d.id, status: d.status } },
        el('td', { class: 'id', title: d.id }, el('a', { href: `/dispatches/${d.id}` }, d.id.slice(0, width))),
        el('td', { class: 'lattice' }, d.lattice),
        el('td', {}, badge(d.status)),
        el('td', { class: 'num tasks' }, `${fmtInt(d.done)}/${fmtInt(d.total)}`, bar),
        el('td', { class: 'start' }, time(d.start_time)),
        el('td', { class: 'num runtime', dataset: { start: d.start_time, end: d.end_time || '' } },
          duration(d.runtime_ms)));
    });
    if (!rows.length) {
      const why = data.total ? 'No dispatch matches.' : 'No dispatches recorded yet.';
      rows.push(el('tr', {}, el('td', { class: 'empty', colspan: 6 }, why)));
    }
    tbody.replaceChildren(...rows);

    const pager = $('pager');
    const from = data.matched ? data.offset + 1 : 0;
    const to = Math.min(data.offset + data.dispatches.length, data.matched);
    const prev = el('button', { type: 'button', class: 'button small', id: 'prev-page',
      disabled: state.page === 0 }, '‹ Newer');
    const next = el('button', { type: 'button', class: 'button small', id: 'next-page',
      disabled: to >= data.matched }, 'Older ›');
    if (state.sort !== 'start') { prev.textContent = '‹ Previous'; next.textContent = 'Next ›'; }
    prev.addEventListener('click', () => { state.page = Math.max(0, state.page - 1); changed(); });
    next.addEventListener('click', () => { state.page += 1; changed(); });
    pager.replaceChildren(
      el('span', { id: 'range' }, `${fmtInt(from)}–${fmtInt(to)} of ${fmtInt(data.matched)}` +
        (data.matched !== data.total ? ` (${fmtInt(data.total)} in the store)` : '')),
      prev, next);
  }

  function changed() {
    syncUrl();
    load();
  }

  // Controls.
  $('search').value = state.search;
  $('status').value = state.status;
  $('page-size').value = String(state.size);
  let searchTimer = null;
  $('search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.search = $('search').value.trim();
      state.page = 0;
      changed();
    }, 200);
  });
  $('status').addEventListener('change', () => {
    state.status = $('status').value;
    state.page = 0;
    changed();
  });
  $('page-size').addEventListener('change', () => {
    state.size = parseInt($('page-size').value, 10);
    state.page = 0;
    changed();
  });
  $('counts').addEventListener('click', (e) => {
    const chip = e.target.closest('.chip');
    if (!chip) return;
    state.status = chip.dataset.status;
    $('status').value = state.status;
    state.page = 0;
    changed();
  });
  document.querySelector('#dispatches thead').addEventListener('click', (e) => {
    const th = e.target.closest('th[data-sort]');
    if (!th) return;
    const key = th.dataset.sort;
    if (state.sort === key) {
      const cur = state.order || defaultOrder(key);
      state.order = cur === 'asc' ? 'desc' : 'asc';
    } else {
      state.sort = key;
      state.order = '';
    }
    state.page = 0;
    changed();
  });
  document.querySelector('#dispatches tbody').addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-id]');
    if (!tr || e.target.closest('a')) return;
    location.href = `/dispatches/${tr.dataset.id}`;
  });

  // Running dispatches' runtimes tick between updates.
  setInterval(() => {
    for (const td of document.querySelectorAll('tr[data-status="RUNNING"] td.runtime')) {
      td.textContent = duration(elapsed(td.dataset.start, td.dataset.end || null));
    }
  }, 1000);

  // Live: refetch when the store changes.
  let refetch = null;
  function connect() {
    const es = new EventSource('/api/events');
    es.addEventListener('hello', () => Covalent.setLive(true));
    es.addEventListener('change', () => {
      clearTimeout(refetch);
      refetch = setTimeout(load, 50);
    });
    es.onerror = () => Covalent.setLive(false, 'reconnecting…');
    es.onopen = () => Covalent.setLive(true);
  }

  syncUrl();
  load();
  connect();
})();
