// A report triggered over HTTP, then followed until COMPLETE by the subscription clients
// front ends use: graphql-ws (graphql-transport-ws) and subscriptions-transport-ws (the
// older graphql-ws protocol). Prints the statuses each saw. With a TOKEN (a server that
// needs one), it goes in the trigger's Authorization header and in each client's
// connectionParams, and a graphql-ws client without it is refused first.
// Usage: node follow.mjs http://127.0.0.1:PORT [TOKEN]
import { createClient } from 'graphql-ws';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';

const [origin, token] = process.argv.slice(2);
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const wsUrl = `${origin.replace('http', 'ws')}/graphql/ws`;
const follow = `subscription($id: ID!) { report(id: $id) { status progress csvUrl } }`;

async function trigger() {
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify({ query: 'mutation { triggerReport(input: { interpolation: FORWARD_FILL }) { id } }' }),
  });
  return (await response.json()).data.triggerReport.id;
}

function statuses(subscribe) {
  return new Promise((resolve, reject) => {
    const seen = [];
    subscribe({
      next: (result) => {
        if (result.errors) reject(new Error(JSON.stringify(result.errors)));
        const status = result.data.report.status;
        if (seen.at(-1) !== status) seen.push(status);
      },
      // graphql-ws reports a closed socket as its CloseEvent: keep its code.
      error: (e) => reject(e instanceof Error ? e : Object.assign(new Error(`${JSON.stringify(e)} ${e?.reason ?? ''}`), { code: e?.code })),
      complete: () => resolve(seen),
    });
  });
}

const id = await trigger();
if (token) {
  const anonymous = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  const refusal = await statuses((sink) => anonymous.subscribe({ query: follow, variables: { id } }, sink))
    .then(() => 'not refused', (e) => `closed ${e.code}`);
  await anonymous.dispose();
  console.log(`follow.mjs: graphql-ws without a token: ${refusal}`);
}
const modern = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: auth });
const viaGraphqlWs = await statuses((sink) => modern.subscribe({ query: follow, variables: { id } }, sink));
await modern.dispose();

const legacy = new SubscriptionClient(wsUrl, { reconnect: false, connectionParams: auth }, WebSocket);
const viaLegacy = await statuses((sink) => legacy.request({ query: follow, variables: { id } }).subscribe(sink));
legacy.close();

for (const [client, seen] of [['graphql-ws', viaGraphqlWs], ['subscriptions-transport-ws', viaLegacy]]) {
  if (seen.at(-1) !== 'COMPLETE') {
    console.error(`follow.mjs: ${client} saw ${seen.join(' → ')}`);
    process.exit(1);
  }
  console.log(`follow.mjs: ${client}: ${seen.join(' → ')}`);
}
