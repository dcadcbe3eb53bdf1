// The dashboard as an owner meets it, in Debian's Chromium with every request to another
// host blocked.
//
// `run`: the page loads without errors and shows the data; "Run report" drives the
// progress bar from the subscription to COMPLETE; the report lists the worst store of
// EXPECTED.csv first, and every row in that order; sorting by a column and filtering by a
// store id work; Download CSV saves the expected CSV; the worst store's page shows its six figures (equal to its CSV row) and
// draws its week; on a phone's screen nothing is wider than the screen; every control has
// an accessible name. Screenshots land in SHOTS/dashboard*.png.
//
// `cancel` (a server whose reports stall while RUNNING): "Run report", then "Cancel":
// the report is CANCELLED.
//
// `token` (a server that needs a token; TOKEN an operator's): the page says a token is
// needed; once it is pasted, the data shows and a report runs to COMPLETE, its progress
// heard over the WebSocket with the token.
//
// Usage: node dashboard.mjs run http://127.0.0.1:PORT EXPECTED.csv SHOTS
//        node dashboard.mjs cancel http://127.0.0.1:PORT
//        node dashboard.mjs token http://127.0.0.1:PORT TOKEN
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { confine, launch } from './browser.mjs';

const [mode, origin, expectedCsv, shots] = process.argv.slice(2);
const fail = (message) => {
  console.error(`dashboard.mjs: ${message}`);
  process.exit(1);
};

/** The rows of a report CSV: `{ storeId, figures: [six numbers] }`. */
function readCsv(path) {
  const [, ...lines] = readFileSync(path, 'utf8').trim().split('\n');
  return lines.map((line) => {
    const [storeId, ...figures] = line.split(',');
    return { storeId, figures: figures.map(Number) };
  });
}

/** Store ids compared as the API does: byte by byte (UTF-8). */
const byBytes = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const elsewhere = await confine(page, origin);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e).slice(0, 300)));
  page.on('console', (m) => {
    // The browser reports the 401s of the page's first requests, made before the token.
    if (m.type() === 'error' && !(mode === 'token' && m.text().includes('401'))) pageErrors.push(m.text().slice(0, 300));
  });
  page.on('requestfailed', (r) => {
    if (new URL(r.url()).origin === origin) pageErrors.push(`${r.url()}: ${r.failure()?.errorText}`);
  });
  const text = (selector) => page.$eval(selector, (e) => e.textContent.trim());
  const waitFor = (what, fn, ...args) => page.waitForFunction(fn, { timeout: 20000 }, ...args)
    .catch(async (e) => fail(`${what}: ${e.message}; the page says: ${await text('main')}; alert: ${await text('#alert')}; errors: ${pageErrors.join('; ')}`));

  await page.goto(`${origin}/`, { waitUntil: 'networkidle0' });
  if (mode === 'token') {
    await waitFor('no word of the token', () => !document.getElementById('alert').hidden);
    const alert = await text('#alert');
    if (!alert.includes('API token')) fail(`without a token the page says: ${alert}`);
    if (!(await page.$eval('#auth', (d) => d.open))) fail('the token field is not shown');
    await page.type('#token', expectedCsv);
    await page.click('#token-form button[type="submit"]');
    await waitFor('the token was not taken', () => document.getElementById('token-status').textContent === 'token accepted');
  }
  await waitFor('the data never showed', () => !document.getElementById('data-figures').hasAttribute('aria-busy'));
  const data = await text('#data-figures');
  if (!/Stores\s*\d/.test(data) || !data.includes('Newest poll')) fail(`the data shows: ${data}`);
  await waitFor('no load is listed', () => document.querySelector('#loads table tbody tr'));

  // Every change of the bar and the status line, as the page makes them.
  await page.evaluate(() => {
    window.seen = [];
    const bar = document.getElementById('progress');
    const status = document.getElementById('run-status');
    const record = () => window.seen.push({ value: bar.value, status: status.dataset.status ?? '' });
    new MutationObserver(record).observe(bar, { attributes: true, attributeFilter: ['value'] });
    new MutationObserver(record).observe(status, { attributes: true, attributeFilter: ['data-status'] });
  });
  await page.click('#run-report');

  if (mode === 'token') {
    await waitFor('the report never completed', () => document.getElementById('run-status').dataset.status === 'COMPLETE');
    if (!(await page.$eval('#alert', (a) => a.hidden))) fail(`the page still says: ${await text('#alert')}`);
    await waitFor('no rows', () => document.querySelector('#rows tbody tr td a'));
  } else if (mode === 'cancel') {
    await waitFor('the report never ran', () => document.getElementById('run-status').dataset.status === 'RUNNING');
    if (await page.$eval('#cancel-report', (b) => b.disabled)) fail('Cancel is disabled while the report runs');
    await page.click('#cancel-report');
    await waitFor('the report was not cancelled', () => document.getElementById('run-status').dataset.status === 'CANCELLED');
    if (!(await page.$eval('#cancel-report', (b) => b.disabled))) fail('Cancel is still enabled after the report was cancelled');
    if (await page.$eval('#run-report', (b) => b.disabled)) fail('Run report stays disabled after a cancel');
  } else {
    await waitFor('the report never completed', () => document.getElementById('run-status').dataset.status === 'COMPLETE');
    const seen = await page.evaluate(() => window.seen);
    const values = seen.map((s) => s.value);
    const statuses = [...new Set(seen.map((s) => s.status))];
    if (values.at(-1) !== 1) fail(`the bar ended at ${values.at(-1)}: ${JSON.stringify(seen)}`);
    if (!values.some((v) => v < 1)) fail(`the bar never showed the report unfinished: ${JSON.stringify(seen)}`);
    if (values.some((v, i) => i > 0 && v < values[i - 1])) fail(`the bar went back: ${JSON.stringify(values)}`);
    if (!statuses.some((s) => s === 'PENDING' || s === 'RUNNING')) fail(`no state before COMPLETE: ${statuses}`);
    console.log(`dashboard.mjs: the bar went ${values.join(' → ')} through ${statuses.join(', ')}`);

    // The worst stores first: by downtime in the last week, largest first, ties by store id
    // largest first (the API's order for DESC).
    const expected = readCsv(expectedCsv);
    const worstFirst = [...expected].sort((a, b) => b.figures[5] - a.figures[5] || byBytes(b.storeId, a.storeId));
    await waitFor('no rows', () => document.querySelector('#rows tbody tr td a'));
    const listed = await page.$$eval('#rows tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
    if (listed[0][0] !== worstFirst[0].storeId) fail(`the first row is ${listed[0][0]}, the worst store is ${worstFirst[0].storeId}`);
    const want = worstFirst.slice(0, 25).map((r) => [r.storeId, ...r.figures.map((f) => f.toFixed(2))]);
    if (JSON.stringify(listed) !== JSON.stringify(want)) fail(`rows ${JSON.stringify(listed)}, expected ${JSON.stringify(want)}`);
    if (!(await text('#page-info')).includes(`of ${expected.length}`)) fail(`the pager says ${await text('#page-info')}`);

    // Sorting by store id, then filtering to the worst store.
    await page.click('#rows-head button[data-field="STORE_ID"]');
    const byId = [...expected].sort((a, b) => byBytes(a.storeId, b.storeId)).map((r) => r.storeId).slice(0, 25);
    await waitFor('sorting by store id', (ids) => JSON.stringify([...document.querySelectorAll('#rows tbody tr td:first-child')].map((c) => c.textContent)) === ids, JSON.stringify(byId));
    const sort = await page.$eval('#rows-head button[data-field="STORE_ID"]', (b) => b.parentElement.getAttribute('aria-sort'));
    if (sort !== 'ascending') fail(`the store column's aria-sort is ${sort}`);
    await page.type('#filter', worstFirst.at(-1).storeId);
    await page.click('#filter-form button[type="submit"]');
    await waitFor('filtering by a store id', (id) => document.querySelectorAll('#rows tbody tr').length === 1 &&
      document.querySelector('#rows tbody tr td').textContent === id, worstFirst.at(-1).storeId);
    await page.$eval('#filter', (input) => { input.value = ''; });
    await page.click('#filter-form button[type="submit"]');
    await page.click('#rows-head button[data-field="DOWNTIME_LAST_WEEK"]');
    await waitFor('sorting by downtime', (id) => document.querySelector('#rows tbody tr td').textContent === id, worstFirst[0].storeId);
    // Download CSV saves the report's file: the expected CSV.
    const downloads = mkdtempSync(join(tmpdir(), 'dashboard-'));
    const cdp = await browser.target().createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads, eventsEnabled: true });
    const saved = new Promise((resolve) => cdp.on('Browser.downloadProgress', (e) => {
      if (e.state === 'completed' || e.state === 'canceled') resolve(e.state);
    }));
    await page.click('#download');
    let timer;
    const state = await Promise.race([saved, new Promise((resolve) => { timer = setTimeout(() => resolve('timed out'), 20000); })]);
    clearTimeout(timer);
    if (state !== 'completed') fail(`Download CSV: ${state}`);
    const files = readdirSync(downloads);
    const got = files.length === 1 ? readFileSync(join(downloads, files[0]), 'utf8') : '';
    if (got.trim() !== readFileSync(expectedCsv, 'utf8').trim()) fail(`Download CSV saved ${JSON.stringify(files)}: ${got.slice(0, 300)}`);
    rmSync(downloads, { recursive: true });
    await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

    // Every control has a name a screen reader can say.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select, a, progress')]
      .filter((e) => !e.closest('[hidden]'))
      .filter((e) => !(e.getAttribute('aria-label') || e.labels?.[0]?.textContent.trim() || e.textContent.trim()))
      .map((e) => e.outerHTML.slice(0, 80)));
    if (unnamed.length > 0) fail(`controls without a name: ${unnamed.join(', ')}`);

    // The worst store's page: its six figures and its week drawn.
    const worst = worstFirst[0];
    await page.click(`#rows tbody tr a[href="#/store/${encodeURIComponent(worst.storeId)}"]`);
    await waitFor('the timeline was not drawn', () => document.querySelector('#chart svg.timeline'));
    const figures = await page.$$eval('#store-figures dd', (dds) => dds.map((d) => parseFloat(d.textContent)));
    if (JSON.stringify(figures) !== JSON.stringify(worst.figures)) fail(`the store shows ${figures}, its CSV row ${worst.figures}`);
    const chart = await page.$eval('#chart svg.timeline', (svg) => ({
      segments: Number(svg.dataset.segments),
      drawn: svg.querySelectorAll('rect.segment').length,
      polls: svg.querySelectorAll('line.poll').length,
      days: svg.querySelectorAll('text.day-label').length,
      label: svg.getAttribute('aria-label'),
    }));
    if (chart.segments === 0 || chart.drawn !== chart.segments) fail(`the timeline: ${JSON.stringify(chart)}`);
    if (chart.days < 6) fail(`the axis has ${chart.days} day labels: ${JSON.stringify(chart)}`);
    if (!chart.label.includes(worst.storeId)) fail(`the chart's name: ${chart.label}`);
    console.log(`dashboard.mjs: store ${worst.storeId}: ${chart.segments} segments, ${chart.polls} polls, ${chart.days} days`);
    // The picture of a store page is of the next store, when there is one: a store down all
    // week draws one red band, where an owner would rather see hours and polls.
    const shown = worstFirst[1] ?? worst;
    await page.evaluate((h) => { window.location.hash = h; }, `#/store/${encodeURIComponent(shown.storeId)}`);
    await waitFor('the second store', (id) => document.querySelector('#chart svg.timeline')?.getAttribute('aria-label').includes(`store ${id},`), shown.storeId);
    await page.screenshot({ path: `${shots}/dashboard-store.png`, fullPage: true });

    // A phone: nothing but the chart (which scrolls inside its box) is wider than the screen.
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    for (const hash of [`#/store/${encodeURIComponent(worst.storeId)}`, '#/']) {
      await page.evaluate((h) => { window.location.hash = h; }, hash);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      if (wide > 390) fail(`on a phone the page ${hash} is ${wide} px wide`);
    }
    await page.screenshot({ path: `${shots}/dashboard-phone.png` });
  }

  if (!(await page.$eval('#alert', (a) => a.hidden))) fail(`the page says: ${await text('#alert')}`);
  if (elsewhere.length > 0) fail(`the page asked for other hosts: ${elsewhere.join(', ')}`);
  if (pageErrors.length > 0) fail(`the page had errors: ${pageErrors.join('; ')}`);
  console.log(`dashboard.mjs: ${mode} passed`);
} finally {
  await browser.close();
}
