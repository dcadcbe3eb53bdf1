// GraphiQL as a person meets it, in Debian's Chromium with every request to another host
// blocked: the page renders, its Docs pane shows the schema, and a query run from the
// editor shows its result. With a TOKEN (a server that needs one), the page first says a
// token is needed, then the token is pasted into its field.
// Usage: node graphiql.mjs http://127.0.0.1:PORT SCREENSHOT.png [TOKEN]
import { confine, launch } from './browser.mjs';

const [origin, screenshot, token] = process.argv.slice(2);
const fail = (message) => {
  console.error(`graphiql.mjs: ${message}`);
  process.exit(1);
};

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 800 });
  const elsewhere = await confine(page, origin);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e).slice(0, 300)));
  page.on('console', (m) => {
    // The browser reports the 401 of the check made before the token is pasted.
    if (m.type() === 'error' && !(token && m.text().includes('401'))) pageErrors.push(m.text().slice(0, 300));
  });

  const seen = [];
  page.on('request', (request) => {
    if (request.url().startsWith(`${origin}/graphql`) && request.method() === 'POST') {
      seen.push(request.headers().authorization ?? '');
    }
  });

  await page.goto(`${origin}/graphql`, { waitUntil: 'networkidle0' });
  await page.waitForSelector('.graphiql-container', { timeout: 20000 });

  if (token) {
    // Without a token the page says what is wrong; with it, that the token works.
    await page.waitForFunction(
      () => document.getElementById('auth-status')?.textContent.includes('token'),
      { timeout: 20000 },
    );
    const before = await page.$eval('#auth-status', (e) => e.textContent);
    if (!before.includes('needs an API token')) fail(`without a token the page says: ${before}`);
    await page.type('#token', token);
    await page.click('#auth button[type="submit"]');
    await page.waitForFunction(
      () => document.getElementById('auth-status')?.textContent === 'token accepted',
      { timeout: 20000 },
    ).catch(async () => fail(`the token field says: ${await page.$eval('#auth-status', (e) => e.textContent)}`));
    await page.waitForSelector('.graphiql-container', { timeout: 20000 });
  }

  // The Docs pane fills from introspection.
  await page.click('button[aria-label="Show Documentation Explorer"]');
  await page.waitForFunction(
    () => document.querySelector('.graphiql-doc-explorer')?.textContent.includes('Query'),
    { timeout: 20000 },
  );
  const docs = await page.$eval('.graphiql-doc-explorer', (e) => e.textContent);
  if (docs.includes('Error fetching schema')) fail(`the Docs pane says: ${docs}`);
  await page.click('.graphiql-doc-explorer a.graphiql-doc-explorer-type-name');
  await page.waitForFunction(
    () => document.querySelector('.graphiql-doc-explorer')?.textContent.includes('triggerReport') ||
      document.querySelector('.graphiql-doc-explorer')?.textContent.includes('dataset'),
    { timeout: 20000 },
  );

  // The default query runs as a person runs it: the cursor in its first operation, then
  // Ctrl-Enter.
  await page.evaluate(() => {
    const editor = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror;
    const line = editor.getValue().split('\n').findIndex((l) => l.includes('dataset {'));
    editor.focus();
    editor.setCursor({ line, ch: 4 });
  });
  await page.keyboard.down('Control');
  await page.keyboard.press('Enter');
  await page.keyboard.up('Control');
  try {
    await page.waitForFunction(
      () => document.querySelector('.graphiql-response')?.textContent.includes('"dataVersion"'),
      { timeout: 20000 },
    );
  } catch (e) {
    await page.screenshot({ path: screenshot });
    const shown = await page.$eval('.graphiql-response', (r) => r.textContent).catch(() => '(none)');
    fail(`no result shown (${e.message}); the response pane: ${shown}; errors: ${pageErrors.join('; ')}`);
  }
  const result = await page.$eval('.graphiql-response', (e) => e.textContent);
  if (result.includes('"errors"')) fail(`the query failed: ${result}`);

  if (token && !seen.at(-1)?.endsWith(token)) fail(`the query went without the token: ${seen.at(-1)}`);
  await page.screenshot({ path: screenshot });
  if (elsewhere.length > 0) fail(`the page asked for other hosts: ${elsewhere.join(', ')}`);
  if (pageErrors.length > 0) fail(`the page threw: ${pageErrors.join('; ')}`);
  console.log('graphiql.mjs: rendered, Docs shown, query answered');
} finally {
  await browser.close();
}
