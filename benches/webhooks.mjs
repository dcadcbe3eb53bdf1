// Webhook delivery figures against a running server (open on loopback, started with
// --webhook-allow-private, no polls yet): a receiver of this script's own on a free port,
// one webhook to it, then
//   1. latency: N times, a push whose second inactive poll opens an incident, and the time
//      from the push's answer to the receiver's request (p50, p99, max);
//   2. a burst: one push that takes STORES stores down at once, and the time from its
//      answer until the receiver has every event (each id once).
// Node's own modules only:
//   node benches/webhooks.mjs http://127.0.0.1:8000 [N=300] [STORES=10000]
import { createServer } from 'node:http';

const [origin, n = '300', burst = '10000'] = process.argv.slice(2);
const rounds = Number(n);
const stores = Number(burst);

const waiting = new Map(); // store id -> resolve
const seen = new Set();
let received = 0;
let burstDone = null;
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const at = performance.now();
    res.writeHead(204).end();
    const event = JSON.parse(body);
    if (event.type !== 'incident.opened') return;
    const id = req.headers['webhook-id'];
    if (seen.has(id)) return;
    seen.add(id);
    received += 1;
    waiting.get(event.data.incident.storeId)?.(at);
    if (burstDone && received >= burstDone.target) burstDone.resolve(at);
  });
});
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${receiver.address().port}/hook`;

async function graphql(query, variables = {}) {
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

async function push(rows) {
  const body = ['store_id,status,timestamp_utc', ...rows].join('\n');
  const response = await fetch(`${origin}/polls`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body });
  if (response.status !== 200) throw new Error(`push: ${response.status} ${await response.text()}`);
}

const { createWebhook: { webhook } } = await graphql(
  'mutation($url: String!) { createWebhook(input: { url: $url, events: [INCIDENT_OPENED] }) { webhook { id } } }', { url });
const run = Date.now().toString(36);

// 1. Latency, one incident at a time.
const latencies = [];
for (let i = 0; i < rounds; i += 1) {
  const store = `bench-${run}-${i}`;
  await push([`${store},inactive,2023-03-01 10:00:00 UTC`]);
  const arrived = new Promise((resolve) => waiting.set(store, resolve));
  await push([`${store},inactive,2023-03-01 11:00:00 UTC`]);
  const answered = performance.now();
  latencies.push((await arrived) - answered);
  waiting.delete(store);
}
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
console.log(`latency over ${rounds} incidents: p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, max ${latencies.at(-1).toFixed(1)} ms`);

// 2. A burst: STORES stores down in one push.
const rows = [];
for (let i = 0; i < stores; i += 1) {
  rows.push(`burst-${run}-${i},inactive,2023-03-01 10:00:00 UTC`);
  rows.push(`burst-${run}-${i},inactive,2023-03-01 11:00:00 UTC`);
}
const target = received + stores;
const done = new Promise((resolve) => { burstDone = { target, resolve }; });
const started = performance.now();
await push(rows);
const answered = performance.now();
const finished = await done;
console.log(`burst: ${stores} stores down in one push of ${rows.length} polls answered in ${((answered - started) / 1000).toFixed(2)} s; ` +
  `every event received ${((finished - answered) / 1000).toFixed(2)} s after the answer (${((finished - started) / 1000).toFixed(2)} s after the push began)`);
// Gone with this receiver: a webhook left behind would retry into the next run.
await graphql('mutation($id: ID!) { deleteWebhook(id: $id) }', { id: webhook.id });
receiver.close();
process.exit(0);
