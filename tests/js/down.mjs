// The dashboard's "Down now" panel and a store's incidents, in Debian's Chromium: a store
// that two inactive polls take down appears in the panel (live, over the `incidents`
// subscription, no reload of the page), its page lists the open incident and marks it on
// its week; an active poll brings it back and the panel empties. The polls are pushed by
// this script (`POST /polls`), as a poller would. A screenshot lands in SHOT.
//
// Usage: node down.mjs http://127.0.0.1:PORT STORE SHOT
import { confine, launch } from './browser.mjs';

const [origin, store, shot] = process.argv.slice(2);
const fail = (message) => {
  console.error(`down.mjs: ${message}`);
  process.exit(1);
};

async function push(rows) {
  const body = ['store_id,status,timestamp_utc', ...rows.map(([at, status]) => `${store},${status},${at} UTC`)].join('\n');
  const response = await fetch(`${origin}/polls`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body });
  if (response.status !== 200) fail(`the push answered ${response.status}: ${await response.text()}`);
}

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const elsewhere = await confine(page, origin);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e).slice(0, 300)));
  page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text().slice(0, 300)));
  const text = (selector) => page.$eval(selector, (e) => e.textContent.trim());
  const waitFor = (what, fn, ...args) => page.waitForFunction(fn, { timeout: 20000 }, ...args)
    .catch(async (e) => fail(`${what}: ${e.message}; the panel says: ${await text('#down')}; alert: ${await text('#alert')}; errors: ${pageErrors.join('; ')}`));

  await page.goto(origin, { waitUntil: 'load' });
  await waitFor('the panel never said everything is up', () => document.getElementById('down-count').dataset.count === '0');

  await push([['2023-03-01 10:00:00', 'active'], ['2023-03-01 11:00:00', 'inactive'], ['2023-03-01 12:00:00', 'inactive']]);
  await waitFor('the store never showed as down', (id) => document.querySelector(`#down-list li[data-store="${id}"]`), store);
  const said = await text('#down-count');
  if (!said.startsWith('1 store is down')) fail(`the panel says ${said}`);
  await page.screenshot({ path: shot, fullPage: true });

  await page.click(`#down-list li[data-store="${store}"] a`);
  await waitFor('the store page lists no open incident', () => document.querySelector('#incidents tr.open-incident'));
  await waitFor('the week marks no incident', () => document.querySelector('#chart svg.timeline')?.dataset.incidents === '1');
  const row = await text('#incidents tbody tr');
  if (!row.includes('still down') || !row.includes('1 Mar 2023, 11:00')) fail(`the incident reads: ${row}`);

  await page.evaluate(() => { window.location.hash = '#/'; });
  await push([['2023-03-01 13:00:00', 'active']]);
  await waitFor('the store never came back', () => document.getElementById('down-count').dataset.count === '0');
  if ((await page.$$('#down-list li')).length !== 0) fail('the list still shows a store');

  if (!(await page.$eval('#alert', (a) => a.hidden))) fail(`the page says: ${await text('#alert')}`);
  if (elsewhere.length > 0) fail(`the page asked for other hosts: ${elsewhere.join(', ')}`);
  if (pageErrors.length > 0) fail(`the page had errors: ${pageErrors.join('; ')}`);
  console.log('down.mjs: passed');
} finally {
  await browser.close();
}
