// The browser test of `covalent ui`: the real binary serving a store that the `ui_fixture`
// example fills, looked at in Debian's headless Chromium driven by playwright-core.
//
//   cd cli/tests/browser && npm ci && node run.mjs
//
// It builds both binaries first (a no-op after `cargo test`), saves a screenshot of every page
// it looks at in ./screenshots (or $SCREENSHOT_DIR), prints `ok - ...` / `not ok - ...` per
// check and ends with `N passed, M failed` (exit 1 if any failed). $CHROMIUM names the browser
// (default /usr/bin/chromium), $CARGO_TARGET_DIR the build directory.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const target = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
const shots = process.env.SCREENSHOT_DIR || path.join(here, 'screenshots');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
fs.mkdirSync(shots, { recursive: true });

const results = [];
const children = [];
let home = null;

function log(...args) {
  console.log(...args);
}

/** Kills what this script started, by the ids it got (never by name). */
function cleanup() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { c.kill('SIGTERM'); } catch (_) { /* gone */ }
    }
  }
  if (home) fs.rmSync(home, { recursive: true, force: true });
}
process.on('exit', cleanup);

/** Lines of a child's stdout, as an async queue. */
function lines(child) {
  const rl = readline.createInterface({ input: child.stdout });
  const queue = [];
  const waiters = [];
  rl.on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l); else queue.push(l);
  });
  return (timeoutMs = 60000) => (queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out waiting for a line')), timeoutMs);
    waiters.push((l) => { clearTimeout(t); resolve(l); });
  }));
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push(true);
    log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push(false);
    log(`not ok - ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function main() {
  log('building covalent and the ui_fixture example...');
  execFileSync('cargo', ['build', '-q', '-p', 'covalent-cli', '--bin', 'covalent', '--example', 'ui_fixture'],
    { cwd: root, stdio: 'inherit' });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'covalent-ui-test-'));
  const env = { ...process.env, COVALENT_HOME: home, COVALENT_NO_PROGRESS: '1' };
  delete env.COVALENT_CONFIG;

  const fixture = spawn(path.join(target, 'debug', 'examples', 'ui_fixture'), ['--home', home],
    { env, stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(fixture);
  const fixtureLine = lines(fixture);
  const ids = {};
  for (;;) {
    const l = await fixtureLine(120000);
    if (l === 'ready') break;
    const [name, id] = l.split(' ');
    if (id && /^[0-9a-f-]{36}$/.test(id)) ids[name] = id;
  }
  log(`fixture recorded: ${Object.keys(ids).join(', ')}`);
  const live = async (steps, ms) => {
    fixture.stdin.write(`live ${steps} ${ms}\n`);
    for (;;) {
      const l = await fixtureLine(30000);
      if (l.startsWith('live ')) return l.split(' ')[1];
    }
  };

  const server = spawn(path.join(target, 'debug', 'covalent'), ['ui', '--port', '0', '--home', home],
    { env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(server);
  const first = await lines(server)(30000);
  const base = first.match(/http:\/\/\S+/)[0].replace(/\/$/, '');
  log(`server: ${base}`);

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  let expect404 = false;
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expect404 && m.text().includes('status of 404')) return;
    pageErrors.push(m.text());
  });
  page.setDefaultTimeout(20000);
  const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`) });
  const graphReady = async (n = 1) => page.waitForFunction((k) => Number(document.body.dataset.graphReady || 0) >= k, n);
  const status = () => page.locator('#dispatch-status').textContent();
  const nodeByName = (name) => page.locator('#graph g.node', { has: page.locator('text.name', { hasText: new RegExp(`^${name}$`) }) });

  await check('the list shows every dispatch, tasks done/total and counts per status', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('#dispatches tbody tr[data-id]');
    const rows = await page.locator('#dispatches tbody tr[data-id]').count();
    assert(rows === 6, `6 rows, not ${rows}`);
    const grid = page.locator(`tr[data-id="${ids.big}"]`);
    assert((await grid.locator('td.tasks').textContent()).startsWith('10,001/10,001'), 'grid: 10,001/10,001 tasks');
    assert((await grid.locator('.badge').textContent()) === 'COMPLETED', 'grid completed');
    const counts = await page.locator('#counts').textContent();
    assert(/COMPLETED 4/.test(counts) && /FAILED 1/.test(counts) && /RUNNING 1/.test(counts), `counts: ${counts}`);
    assert((await page.locator('#range').textContent()).startsWith('1–6 of 6'), 'the pager counts 6');
    await shot('01-list');
  });

  await check('the list searches by name and id, filters by status and sorts', async () => {
    await page.fill('#search', 'train');
    await page.waitForFunction(() => document.querySelectorAll('#dispatches tbody tr[data-id]').length === 1);
    assert((await page.locator('#dispatches td.lattice').textContent()) === 'training', 'search by name');
    await page.fill('#search', ids.failed.slice(0, 30));
    await page.waitForFunction((id) => {
      const rows = document.querySelectorAll('#dispatches tbody tr[data-id]');
      return rows.length === 1 && rows[0].dataset.id === id;
    }, ids.failed);
    await page.fill('#search', '');
    await page.selectOption('#status', 'FAILED');
    await page.waitForFunction(() => document.querySelectorAll('#dispatches tbody tr[data-id]').length === 1);
    assert((await page.locator('#dispatches td.lattice').textContent()) === 'broken', 'filter by status');
    await page.selectOption('#status', '');
    await page.waitForFunction(() => document.querySelectorAll('#dispatches tbody tr[data-id]').length === 6);
    await page.click('th[data-sort="lattice"]');
    await page.waitForFunction(() => document.querySelector('#dispatches tbody td.lattice').textContent === 'broken');
    assert(page.url().includes('sort=lattice'), 'the sort is in the address');
    await page.click('th[data-sort="lattice"]');
    await page.waitForFunction(() => document.querySelector('#dispatches tbody td.lattice').textContent === 'workflow');
    await page.selectOption('#page-size', '25');
    await shot('02-list-sorted');
  });

  await check('a dispatch page draws its graph: nodes, edge labels, result', async () => {
    await page.goto(`${base}/`);
    await page.click(`tr[data-id="${ids.training}"] td.lattice`);
    await graphReady();
    const nodes = await page.locator('#graph g.node').count();
    assert(nodes === 7, `7 drawn nodes, not ${nodes}`);
    const labels = await page.locator('#graph text.elabel').allTextContents();
    for (const l of ['rows', 'train_set', 'test_set', 'model', 'score']) assert(labels.includes(l), `edge label ${l}: ${labels}`);
    assert((await status()) === 'COMPLETED', 'completed');
    assert((await page.locator('#result').textContent()).includes('scored'), 'the result');
    assert((await page.locator('#inputs').textContent()).includes('sensors.csv'), 'the inputs');
    assert(await page.locator('#graph g.node.s-COMPLETED').count() === 7, 'coloured by status');
    await shot('03-dispatch');
  });

  await check('the node drawer shows status, executor, inputs, output, attempts and streams', async () => {
    await nodeByName('train').click();
    await page.waitForSelector('#drawer:not([hidden]) #node-status');
    assert((await page.locator('#node-status').textContent()) === 'COMPLETED', 'status');
    assert((await page.locator('#node-executor').textContent()) === 'local', 'executor');
    const inputs = await page.locator('#node-inputs').textContent();
    assert(inputs.includes('train_set') && inputs.includes('epochs'), `inputs: ${inputs}`);
    assert((await page.locator('#node-output').textContent()).trim().length > 0, 'output');
    assert(await page.locator('#node-attempts tr').count() === 2, 'one attempt');
    assert(await page.locator('#node-stdout').count() === 1 && await page.locator('#node-stderr').count() === 1, 'streams');
    assert(await page.locator('#node-executor-options').count() === 1, 'executor options');
    assert(page.url().endsWith(`#node=${await page.locator('#drawer').getAttribute('data-node')}`), 'the node is in the address');
    await shot('04-drawer');
    await page.click('#drawer-close');
    await page.waitForSelector('#drawer', { state: 'hidden' });
  });

  await check('the node drawer lists the file transfers of a node', async () => {
    await nodeByName('load').click();
    await page.waitForSelector('#drawer:not([hidden]) #node-transfers');
    const rows = await page.locator('#node-transfers tr').count();
    assert(rows === 2, `one transfer (and the header): ${rows}`);
    const row = await page.locator('#node-transfers tr').nth(1).textContent();
    assert(row.includes('sensors.csv') && row.includes('in') && row.includes('copy'), `the transfer: ${row}`);
    await shot('04b-drawer-transfers');
    await page.click('#drawer-close');
    await page.waitForSelector('#drawer', { state: 'hidden' });
  });

  await check('internal nodes appear with the toggle', async () => {
    await page.check('#show-internal');
    await graphReady(2);
    const all = await page.locator('#graph g.node').count();
    assert(all > 7, `more than 7 nodes with internal ones: ${all}`);
    assert(await page.locator('#graph g.node.internal').count() === all - 7, 'internal nodes marked');
    await page.uncheck('#show-internal');
    await graphReady(3);
    assert(await page.locator('#graph g.node').count() === 7, 'hidden again');
  });

  await check('a failed dispatch shows its error and the failed and skipped nodes', async () => {
    await page.goto(`${base}/dispatches/${ids.failed}`);
    await graphReady();
    assert((await status()) === 'FAILED', 'failed');
    assert((await page.locator('#dispatch-error').textContent()).includes('bad input 5'), 'the error');
    assert(await page.locator('#graph g.node.s-FAILED').count() === 1, 'one failed node');
    assert(await page.locator('#graph g.node.s-NOT_RUN').count() === 1, 'one node not run');
    await nodeByName('fails').click();
    await page.waitForSelector('#node-error');
    assert((await page.locator('#node-error').textContent()).includes('bad input 5'), 'the node error');
    assert((await page.locator('#node-error-kind').textContent()).includes('user'), 'the node error kind');
    await shot('05-failed');
  });

  await check('a sublattice node opens its own graph', async () => {
    await page.goto(`${base}/dispatches/${ids.sublattice}`);
    await graphReady();
    assert(await page.locator('#graph g.node.sub').count() === 1, 'a sublattice node');
    await page.locator('#graph g.node.sub').click();
    await page.click('#open-sublattice');
    await page.waitForURL(/path=/);
    await graphReady();
    const nodes = await page.locator('#graph g.node').count();
    assert(nodes === 5, `4 squares and a total, not ${nodes}`);
    assert((await page.locator('#graph-crumbs').textContent()).includes('fan (node'), 'crumbs');
    await shot('06-sublattice');
  });

  let renderNote = '';
  await check('a 10,000-node graph opens, renders and stays usable', async () => {
    const t0 = Date.now();
    await page.goto(`${base}/dispatches/${ids.big}`);
    await graphReady();
    const openMs = Date.now() - t0;
    const r = await page.evaluate(() => window.covalentRender);
    assert(r.nodes === 10001, `10,001 nodes laid out, not ${r.nodes}`);
    assert(await page.locator('#graph').getAttribute('data-nodes') === '10001', 'svg data-nodes');
    renderNote = `10,001 nodes / ${r.edges} edges: page open to drawn ${openMs} ms ` +
      `(graph JSON ${Math.round(r.fetchMs)} ms, layout ${Math.round(r.layoutMs)} ms, ` +
      `SVG ${Math.round(r.drawMs)} ms, layout+draw+paint ${Math.round(r.renderMs)} ms)`;
    log(`# ${renderNote}`);
    await shot('07-big');
    // Zoom in where the pointer is: node boxes with names appear for what is on screen.
    const box = await page.locator('#graph').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + 40);
    for (let i = 0; i < 7; i++) { await page.mouse.wheel(0, -300); await page.waitForTimeout(40); }
    await page.waitForFunction(() => Number(document.querySelector('#graph').dataset.drawnNodes || 0) > 0);
    const drawn = Number(await page.locator('#graph').getAttribute('data-drawn-nodes'));
    assert(drawn > 0 && drawn < 2500, `some boxes drawn: ${drawn}`);
    // Frames while panning.
    const frames = await page.evaluate(async () => {
      const svg = document.querySelector('#graph');
      const b = svg.getBoundingClientRect();
      const ev = (type, x, y) => svg.dispatchEvent(new PointerEvent(type, { bubbles: true, clientX: x, clientY: y, pointerId: 7, button: 0 }));
      let x = b.left + 600;
      let y = b.top + 300;
      const times = [];
      ev('pointerdown', x, y);
      for (let i = 0; i < 40; i++) {
        const t = performance.now();
        x -= 9; y -= 4;
        ev('pointermove', x, y);
        await new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
        times.push(performance.now() - t);
      }
      ev('pointerup', x, y);
      times.sort((a, b) => a - b);
      return { median: times[20], p90: times[36] };
    });
    renderNote += `; zoomed-in pan frames: median ${Math.round(frames.median)} ms, p90 ${Math.round(frames.p90)} ms`;
    log(`# pan frames while zoomed in: median ${frames.median.toFixed(1)} ms, p90 ${frames.p90.toFixed(1)} ms`);
    assert(frames.median < 250, `panning stays interactive (median frame ${frames.median} ms)`);
    const onScreen = await page.evaluate(() => {
      const r = document.querySelector('#graph').getBoundingClientRect();
      const g = [...document.querySelectorAll('#graph g.node')].find((n) => {
        const b = n.getBoundingClientRect();
        return b.left > r.left && b.right < r.right - 500 && b.top > r.top && b.bottom < r.bottom;
      });
      return g && g.dataset.id;
    });
    assert(onScreen, 'a node box on screen');
    await page.locator(`#graph g.node[data-id="${onScreen}"]`).click();
    await page.waitForSelector('#drawer:not([hidden]) #node-status');
    assert((await page.locator('#node-status').textContent()) === 'COMPLETED', 'a node of the big graph opens');
    await shot('08-big-zoomed');
    await page.click('#drawer-close');
    await page.click('#zoom-fit');
  });

  await check('a dispatch too big to draw node by node is drawn grouped; a group lists its nodes', async () => {
    fixture.stdin.write('fanout 25000\n');
    let fid = null;
    while (!fid) {
      const l = await fixtureLine(120000);
      if (l.startsWith('fanout ')) fid = l.split(' ')[1];
    }
    const t0 = Date.now();
    await page.goto(`${base}/dispatches/${fid}`);
    await graphReady();
    const openMs = Date.now() - t0;
    const r = await page.evaluate(() => window.covalentRender);
    assert(r.summarized === true, 'summarized');
    assert(r.groups === 2 && r.shown === 25001, `2 groups of 25,001 nodes, not ${r.groups} of ${r.shown}`);
    log(`# 25,001 tasks (50,003 nodes) grouped: page open to drawn ${openMs} ms (dispatch JSON ${Math.round(r.fetchMs)} ms)`);
    const names = await page.locator('#graph g.node.group text.name').allTextContents();
    assert(names.includes('tick ×25,000') && names.includes('sum_all ×1'), `group names: ${names}`);
    const labels = await page.locator('#graph text.elabel').allTextContents();
    assert(labels.includes('×25,000'), `edge label with the count: ${labels}`);
    assert((await page.locator('#graph-status').textContent()).includes('25,001 nodes, shown grouped by name and depth'),
      'the status line says so');
    assert(await page.locator('#graph g.node.group.s-COMPLETED').count() === 2, 'coloured by status');
    await shot('08b-summarized');
    await nodeByName('tick ×25,000').click();
    await page.waitForSelector('#group-members tr[data-id]');
    assert(await page.locator('#group-members tr[data-id]').count() === 100, 'a page of 100 members');
    assert((await page.locator('#group-range').textContent()) === '1–100 of 25,000', 'the range');
    const firstId = await page.locator('#group-members tr[data-id]').first().getAttribute('data-id');
    await page.click('#group-next');
    await page.waitForFunction(() => document.querySelector('#group-range') &&
      document.querySelector('#group-range').textContent === '101–200 of 25,000');
    const nextId = await page.locator('#group-members tr[data-id]').first().getAttribute('data-id');
    assert(Number(nextId) > Number(firstId), 'the next page has later nodes');
    await shot('08c-summarized-group');
    await page.locator('#group-members tr[data-id] a').first().click();
    await page.waitForSelector(`#drawer[data-node="${nextId}"] #node-status`);
    assert((await page.locator('#node-status').textContent()) === 'COMPLETED', 'a member opens in the node drawer');
    assert((await page.locator('#drawer-title').textContent()).startsWith('tick'), 'the member is a tick');
    await page.fill('#node-search', firstId);
    await page.press('#node-search', 'Enter');
    await page.waitForSelector(`#drawer[data-node="${firstId}"] #node-status`);
    await page.click('#drawer-close');
    await page.waitForSelector('#drawer', { state: 'hidden' });
    await page.check('#show-internal');
    await graphReady(2);
    const withInternal = await page.locator('#graph g.node.group').count();
    assert(withInternal > 2, `more groups with internal nodes: ${withInternal}`);
    await page.uncheck('#show-internal');
    await graphReady(3);
    assert(await page.locator('#graph g.node.group').count() === 2, 'two groups again');
  });

  await check('a running dispatch updates live and finishes without a reload', async () => {
    const id = await live(6, 600);
    await page.goto(`${base}/dispatches/${id}`);
    await graphReady();
    await page.evaluate(() => { window.notReloaded = true; });
    assert(['RUNNING', 'PENDING', 'NEW'].includes(await status()), 'running at first');
    await page.waitForFunction(() => document.querySelector('#live').classList.contains('on'));
    await page.waitForFunction(() => document.querySelectorAll('#graph g.node.s-COMPLETED').length >= 1, null, { timeout: 15000 });
    await shot('09-live-running');
    await page.waitForFunction(() => document.querySelector('#dispatch-status').textContent === 'COMPLETED', null, { timeout: 30000 });
    assert(await page.evaluate(() => window.notReloaded === true), 'the page was not reloaded');
    await page.waitForFunction(() => document.querySelectorAll('#graph g.node.s-COMPLETED').length === 6);
    assert((await page.locator('#tasks').textContent()) === '6/6', 'tasks 6/6');
    await page.waitForSelector('#result');
    assert((await page.locator('#result').textContent()).trim() === '6', 'the result appears');
    await shot('10-live-done');
  });

  await check('the list updates live', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('#dispatches tbody tr[data-id]');
    const before = await page.locator('#dispatches tbody tr[data-id]').count();
    const id = await live(1, 10);
    await page.waitForSelector(`tr[data-id="${id}"]`, { timeout: 10000 });
    const after = await page.locator('#dispatches tbody tr[data-id]').count();
    assert(after === before + 1, `one more row (${before} -> ${after})`);
  });

  await check('a running dispatch is cancelled from its page', async () => {
    await page.goto(`${base}/dispatches/${ids.running}`);
    await graphReady();
    assert((await status()) === 'RUNNING', 'running');
    await page.click('#cancel-dispatch');
    await shot('11-cancel-confirm');
    await page.click('#confirm-yes');
    await page.waitForFunction(() => document.querySelector('#dispatch-status').textContent === 'CANCELLED', null, { timeout: 15000 });
    assert(await page.locator('#cancel-dispatch').isHidden(), 'no cancel button once ended');
    await shot('12-cancelled');
  });

  await check('a node is cancelled from its drawer', async () => {
    const id = await live(4, 1500);
    await page.goto(`${base}/dispatches/${id}`);
    await graphReady();
    const last = page.locator('#graph g.node').last();
    const nodeId = await last.getAttribute('data-id');
    await last.click();
    await page.waitForSelector('#cancel-node');
    await page.click('#cancel-node');
    await page.click('#confirm-yes');
    await page.waitForFunction((n) => document.querySelector(`#graph g.node[data-id="${n}"]`).classList.contains('s-CANCELLED'),
      nodeId, { timeout: 15000 });
    await page.waitForFunction(() => document.querySelector('#dispatch-status').textContent === 'CANCELLED', null, { timeout: 20000 });
    assert(await page.locator('#graph g.node.s-COMPLETED').count() >= 1, 'the nodes before it ran');
    await shot('13-node-cancelled');
  });

  await check('an unknown dispatch is a 404 page', async () => {
    expect404 = true;
    const res = await page.goto(`${base}/dispatches/0123abcd`);
    assert(res.status() === 404, `404, not ${res.status()}`);
    assert((await page.locator('h1').textContent()) === 'Unknown dispatch', 'says so');
    assert((await page.locator('#error-message').textContent()).includes('0123abcd'), 'names the id');
    await shot('14-not-found');
  });

  await check('the pages ran without script errors', async () => {
    assert(pageErrors.length === 0, pageErrors.join(' | '));
  });

  await browser.close();
  fixture.stdin.end('quit\n');
  if (renderNote) log(`# ${renderNote}`);
  log(`# screenshots in ${shots}`);
}

try {
  await main();
} catch (e) {
  results.push(false);
  log(`not ok - the test could not run: ${e && e.stack ? e.stack : e}`);
}
const passed = results.filter(Boolean).length;
const failed = results.length - passed;
log(`${passed} passed, ${failed} failed`);
cleanup();
process.exit(failed ? 1 : 0);
