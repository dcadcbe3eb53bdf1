// What a page of a report's rows costs a token scoped to store groups against a token of
// the whole fleet: the same queries, interleaved (so that drift hits both alike), timed
// from the request to the last byte of the answer. Prints the median and p90 of each and
// the scoped / fleet ratio of the medians.
//
// Usage: node benches/scoped-rows.mjs http://127.0.0.1:PORT FLEET_TOKEN SCOPED_TOKEN REPORT_ID [RUNS]
const [origin, fleet, scoped, report, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 200);
if (!report) {
  console.error('usage: node benches/scoped-rows.mjs URL FLEET_TOKEN SCOPED_TOKEN REPORT_ID [RUNS]');
  process.exit(2);
}

const FIGURES = 'storeId uptimeLastHour uptimeLastDay uptimeLastWeek downtimeLastHour downtimeLastDay downtimeLastWeek';
const shapes = {
  'first page, store-id order': `rows(first: 100) { pageInfo { endCursor } nodes { ${FIGURES} } }`,
  'first page, worst first (DOWNTIME_LAST_WEEK DESC)':
    `rows(first: 100, orderBy: { field: DOWNTIME_LAST_WEEK, direction: DESC }) { pageInfo { endCursor } nodes { ${FIGURES} } }`,
  'first page with totalCount, store-id order': `rows(first: 100) { totalCount nodes { ${FIGURES} } }`,
  'a filtered page (downtimeLastWeek ≥ 10 h), worst first':
    `rows(first: 100, orderBy: { field: DOWNTIME_LAST_WEEK, direction: DESC }, filter: { downtimeLastWeek: { min: 10 } }) { nodes { ${FIGURES} } }`,
};

async function ask(token, rows, after) {
  const started = performance.now();
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: `query($id: ID!, $after: String) { report(id: $id) { ${rows.replace('rows(', 'rows(after: $after, ')} } }`,
      variables: { id: report, after },
    }),
  });
  const body = await response.json();
  const took = performance.now() - started;
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return { took, rows: body.data.report.rows };
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const ms = (v) => `${v.toFixed(2)} ms`;

for (const [name, rows] of Object.entries(shapes)) {
  const times = { fleet: [], scoped: [] };
  // A few rounds to warm both up (plans, caches), then the measured ones.
  for (let i = 0; i < runs + 10; i += 1) {
    for (const [who, token] of i % 2 === 0 ? [['fleet', fleet], ['scoped', scoped]] : [['scoped', scoped], ['fleet', fleet]]) {
      const { took, rows: page } = await ask(token, rows, null);
      if (page.nodes.length === 0) throw new Error(`${who}: ${name}: an empty page`);
      if (i >= 10) times[who].push(took);
    }
  }
  const [f, s] = [times.fleet.sort((a, b) => a - b), times.scoped.sort((a, b) => a - b)];
  const ratio = quantile(s, 0.5) / quantile(f, 0.5);
  console.log(`${name}: fleet median ${ms(quantile(f, 0.5))} p90 ${ms(quantile(f, 0.9))}; scoped median ${ms(quantile(s, 0.5))} p90 ${ms(quantile(s, 0.9))}; scoped/fleet ${ratio.toFixed(2)}×`);
}
