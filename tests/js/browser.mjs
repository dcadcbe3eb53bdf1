// What the browser scripts share: Debian's Chromium (or $CHROMIUM), headless, with nothing
// of its own going out; and a page kept to the server under test.
import puppeteer from 'puppeteer-core';

/** Starts the browser. */
export function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Aborts every request `page` makes to another origin than `origin` (data: URLs aside),
 * and returns the list it adds them to, for the test to check empty.
 */
export async function confine(page, origin) {
  const elsewhere = [];
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol === 'data:' || url.origin === origin) {
      request.continue();
    } else {
      elsewhere.push(request.url());
      request.abort();
    }
  });
  return elsewhere;
}
