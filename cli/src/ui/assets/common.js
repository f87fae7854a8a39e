// covalent ui: helpers shared by the pages (API calls, DOM building, formatting).
// Embedded in the `covalent` binary; no build step, no dependencies.
'use strict';

const Covalent = (() => {
  const STATUSES = ['RUNNING', 'PENDING', 'NEW', 'COMPLETED', 'REUSED', 'FAILED', 'CANCELLED',
    'NOT_RUN', 'INTERRUPTED'];

  function meta(name) {
    const m = document.querySelector(`meta[name="${name}"]`);
    return m ? m.content : '';
  }

  const csrf = meta('covalent-csrf');

  /** GET (or, with `body`, POST as JSON with the CSRF header) and parse the JSON answer. */
  async function api(path, opts = {}) {
    const init = { credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (opts.body !== undefined) {
      init.method = 'POST';
      init.headers['Content-Type'] = 'application/json';
      init.headers['X-Covalent-Csrf'] = csrf;
      init.body = JSON.stringify(opts.body);
    }
    if (opts.signal) init.signal = opts.signal;
    const res = await fetch(path, init);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const e = new Error((data && data.error) || `${res.status} ${res.statusText}`);
      e.status = res.status;
      e.kind = data && data.kind;
      throw e;
    }
    return data;
  }

  /** el('div', {class: 'x', onclick: f}, child, 'text', [more]) */
  function el(tag, attrs, ...children) {
    const svg = tag.startsWith('svg:');
    const node = svg
      ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) append(node, c);
      else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  /** `171µs`, `2.5ms`, `120ms`, `1.2s`, `3m 4s`, `2h 5m`, `3d 4h` (as the CLI prints). */
  function duration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return '-';
    const s = Math.floor(ms / 1000);
    if (ms < 1) return `${Math.round(ms * 1000)}µs`;
    if (ms < 10) return `${ms.toFixed(1)}ms`;
    if (ms < 1000) return `${Math.floor(ms)}ms`;
    if (s < 60) return `${s}.${Math.floor((ms % 1000) / 100)}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  /** A time in the local zone: `2026-11-21 09:06:26`. */
  function time(iso, withMillis) {
    if (!iso) return '-';
    const d = new Date(iso);
    const base = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return withMillis ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
  }

  /** Milliseconds from `start` to `end`, or to now. */
  function elapsed(start, end) {
    if (!start) return null;
    return (end ? new Date(end) : new Date()) - new Date(start);
  }

  function badge(status) {
    return el('span', { class: `badge s-${status}` }, status);
  }

  function isTerminal(status) {
    return !['NEW', 'PENDING', 'RUNNING'].includes(status);
  }

  /** Pretty JSON, cut at `max` characters. */
  function json(value, max = 200000) {
    let text = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value, null, 2);
    if (text === undefined) text = String(value);
    // Lists of plain values on one (wrapped) line: [1, 2, 3] rather than a line each.
    text = text.replace(/\[\n\s+([^[\]{}]*?)\n\s*\]/g, (_, items) => `[${items.split(/,\n\s*/).join(', ')}]`);
    if (text.length > max) text = `${text.slice(0, max)}\n… (${text.length - max} more characters)`;
    return text;
  }

  /** How many leading characters tell every id of `ids` apart (at least 8). */
  function idWidth(ids) {
    const sorted = [...ids].sort();
    let width = 8;
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1];
      const b = sorted[i];
      let k = 0;
      while (k < a.length && a[k] === b[k]) k++;
      width = Math.max(width, k + 1);
    }
    return Math.min(width, 36);
  }

  let toastTimer = null;
  /** A message at the bottom of the page for a few seconds. */
  function toast(message, isError) {
    let t = document.getElementById('toast');
    if (!t) {
      t = el('div', { id: 'toast', class: 'toast', role: 'status' });
      document.body.append(t);
    }
    t.textContent = message;
    t.className = isError ? 'toast error' : 'toast';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, isError ? 8000 : 4000);
  }

  function setLive(on, text) {
    const live = document.getElementById('live');
    if (!live) return;
    live.classList.toggle('on', !!on);
    live.textContent = text || (on ? 'live' : 'idle');
  }

  function fmtInt(n) {
    return Number(n).toLocaleString('en-US');
  }

  return { STATUSES, meta, api, el, duration, time, elapsed, badge, isTerminal, json, idWidth,
    toast, setLive, fmtInt };
})();
