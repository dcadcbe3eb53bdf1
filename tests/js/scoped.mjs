// The dashboard for a token scoped to store groups, in Debian's Chromium. Once the token
// (an operator's) is pasted, the header names its groups; the data counts its stores; "Down
// now" lists its down stores alone; a report runs to COMPLETE and lists its rows alone, and
// Download CSV saves them alone; its store's page shows; another group's store page reads
// as a store that does not exist; GraphiQL names the groups beside the token. Every byte the server sends the page (HTTP bodies and
// WebSocket frames) and every byte of the page is scanned for the other group's store ids.
//
// Usage: node scoped.mjs http://127.0.0.1:PORT TOKEN GROUPS MINE THEIRS SHOT
//   GROUPS, MINE, THEIRS: comma-separated (the token's groups, its stores, the others')
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { confine, launch } from './browser.mjs';

const [origin, secret, groupList, mineList, theirsList, shot] = process.argv.slice(2);
const [groups, mine, theirs] = [groupList, mineList, theirsList].map((l) => l.split(','));
const fail = (message) => {
  console.error(`scoped.mjs: ${message}`);
  process.exit(1);
};

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const elsewhere = await confine(page, origin);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e).slice(0, 300)));
  page.on('console', (m) => {
    // The 401s of the page's first requests, made before the token is pasted.
    if (m.type() === 'error' && !m.text().includes('401')) pageErrors.push(m.text().slice(0, 300));
  });
  // Everything the server sends: response bodies and WebSocket frames.
  const received = [];
  page.on('response', async (response) => {
    if (new URL(response.url()).origin !== origin) return;
    try {
      received.push({ from: response.url(), body: await response.text() });
    } catch {
      // A redirect or a body the browser did not keep: nothing to scan.
    }
  });
  const cdp = await page.target().createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketFrameReceived', (e) => received.push({ from: 'WebSocket', body: e.response.payloadData }));

  const text = (selector) => page.$eval(selector, (e) => e.textContent.trim()).catch(() => '');
  const waitFor = (what, fn, ...args) => page.waitForFunction(fn, { timeout: 20000 }, ...args)
    .catch(async (e) => fail(`${what}: ${e.message}; the page says: ${await text('main')}; alert: ${await text('#alert')}; errors: ${pageErrors.join('; ')}`));

  await page.goto(`${origin}/`, { waitUntil: 'networkidle0' });
  await page.$eval('#auth', (d) => { d.open = true; });
  await page.type('#token', secret);
  await page.click('#token-form button[type="submit"]');
  await waitFor('the token was not taken', () => document.getElementById('token-status').textContent === 'token accepted');
  const scope = await text('#scope');
  if (!groups.every((g) => scope.includes(g))) fail(`the header says ${scope}, not the groups ${groups}`);

  await waitFor('the data never showed', () => !document.getElementById('data-figures').hasAttribute('aria-busy'));
  await waitFor('the data counts other stores', (n) => /^Stores\s*(\d+)/.exec(document.getElementById('data-figures').textContent)?.[1] === n, String(mine.length));
  await waitFor('Down now never listed the token\'s stores', (n) => document.getElementById('down-count').dataset.count === n, String(mine.length));
  const down = await page.$$eval('#down-list li', (items) => items.map((li) => li.dataset.store).sort());
  if (JSON.stringify(down) !== JSON.stringify([...mine].sort())) fail(`Down now lists ${down}`);

  await page.click('#run-report');
  await waitFor('the report never completed', () => document.getElementById('run-status').dataset.status === 'COMPLETE');
  await waitFor('no rows', () => document.querySelector('#rows tbody tr td a'));
  const rows = await page.$$eval('#rows tbody tr td:first-child', (cells) => cells.map((c) => c.textContent).sort());
  if (JSON.stringify(rows) !== JSON.stringify([...mine].sort())) fail(`the report lists ${rows}`);
  if (!(await text('#page-info')).includes(`of ${mine.length}`)) fail(`the pager says ${await text('#page-info')}`);

  const downloads = mkdtempSync(join(tmpdir(), 'scoped-'));
  const browserCdp = await browser.target().createCDPSession();
  await browserCdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads, eventsEnabled: true });
  const saved = new Promise((resolve) => browserCdp.on('Browser.downloadProgress', (e) => {
    if (e.state === 'completed' || e.state === 'canceled') resolve(e.state);
  }));
  await page.click('#download');
  if (await saved !== 'completed') fail('the download did not complete');
  const [file] = readdirSync(downloads);
  const csv = readFileSync(join(downloads, file), 'utf8');
  rmSync(downloads, { recursive: true });
  received.push({ from: 'the downloaded CSV', body: csv });
  const csvStores = csv.trim().split('\n').slice(1).map((l) => l.split(',')[0]).sort();
  if (JSON.stringify(csvStores) !== JSON.stringify([...mine].sort())) fail(`the CSV holds ${csvStores}`);

  await page.evaluate((id) => { window.location.hash = `#/store/${encodeURIComponent(id)}`; }, mine[0]);
  await waitFor('the token\'s store page never showed', () => document.querySelector('#store-figures div'));
  const pageHtml = [await page.content()];
  await page.screenshot({ path: shot, fullPage: true });

  // Another group's store reads as one that does not exist.
  for (const id of [theirs[0], 'no-such-store']) {
    await page.evaluate((i) => { window.location.hash = `#/store/${encodeURIComponent(i)}`; }, id);
    await waitFor(`${id}'s page`, () => document.getElementById('store-meta').textContent !== '');
    pageHtml.push(await text('#store-meta'));
  }
  if (pageHtml[1] !== pageHtml[2]) fail(`another group's store reads "${pageHtml[1]}", a missing one "${pageHtml[2]}"`);

  if (!(await page.$eval('#alert', (a) => a.hidden))) fail(`the page says: ${await text('#alert')}`);

  // GraphiQL, which keeps the same token, names the groups beside it.
  await page.goto(`${origin}/graphql`, { waitUntil: 'networkidle0' });
  await waitFor('GraphiQL never named the groups', (g) => document.getElementById('auth-status')?.textContent
    === `token accepted: it sees the stores of ${g} alone`, groups.join(', '));

  for (const { from, body } of [...received, { from: 'the page', body: pageHtml[0] }]) {
    for (const id of theirs) {
      if (body.includes(id)) fail(`${from} holds ${id}: ${body.slice(0, 300)}`);
    }
  }
  const frames = received.filter((r) => r.from === 'WebSocket').length;
  if (frames === 0) fail('no WebSocket frame was heard');
  if (elsewhere.length > 0) fail(`the page asked for other hosts: ${elsewhere.join(', ')}`);
  if (pageErrors.length > 0) fail(`the page had errors: ${pageErrors.join('; ')}`);
  console.log(`scoped.mjs: passed (${received.length} answers scanned, ${frames} WebSocket frames)`);
} finally {
  await browser.close();
}
