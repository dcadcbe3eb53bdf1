// The README's pictures of the dashboard, taken from a running server (the bundled data
// makes the best ones): the overview after a report, a store's week (the worst store's,
// or STORE_ID's), and that page on a phone. Not a test: tests/js/dashboard.mjs is.
// Usage: node tests/js/screenshots.mjs http://127.0.0.1:8000 docs [STORE_ID]
import { launch } from './browser.mjs';

const [origin, out, storeId] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(`${origin}/`, { waitUntil: 'networkidle0' });
  await page.click('#run-report');
  await page.waitForFunction(() => document.getElementById('run-status').dataset.status === 'COMPLETE', { timeout: 300000 });
  await page.waitForSelector('#rows tbody tr td a');
  await page.screenshot({ path: `${out}/dashboard.png`, fullPage: true });

  const store = storeId ?? await page.$eval('#rows tbody tr td a', (a) => a.textContent);
  await page.evaluate((id) => { window.location.hash = `#/store/${encodeURIComponent(id)}`; }, store);
  await page.waitForFunction((id) => document.querySelector('#chart svg.timeline')?.getAttribute('aria-label').includes(`store ${id},`), { timeout: 60000 }, store);
  await page.screenshot({ path: `${out}/dashboard-store.png`, fullPage: true });

  await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 1 });
  await page.waitForSelector('#chart svg.timeline', { timeout: 60000 });
  await page.screenshot({ path: `${out}/dashboard-phone.png` });
  console.log(`screenshots of ${origin} in ${out}/dashboard*.png (store ${store})`);
} finally {
  await browser.close();
}
