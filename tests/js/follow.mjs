// A report triggered over HTTP, then followed until COMPLETE by the subscription clients
// front ends use: graphql-ws (graphql-transport-ws) and subscriptions-transport-ws (the
// older graphql-ws protocol). Prints the statuses each saw.
import { createClient } from 'graphql-ws';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';

const origin = process.argv[2];
const wsUrl = `${origin.replace('http', 'ws')}/graphql/ws`;
const follow = `subscription($id: ID!) { report(id: $id) { status progress csvUrl } }`;

async function trigger() {
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
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
      error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
      complete: () => resolve(seen),
    });
  });
}

const id = await trigger();
const modern = createClient({ url: wsUrl, webSocketImpl: WebSocket });
const viaGraphqlWs = await statuses((sink) => modern.subscribe({ query: follow, variables: { id } }, sink));
await modern.dispose();

const legacy = new SubscriptionClient(wsUrl, { reconnect: false }, WebSocket);
const viaLegacy = await statuses((sink) => legacy.request({ query: follow, variables: { id } }).subscribe(sink));
legacy.close();

for (const [client, seen] of [['graphql-ws', viaGraphqlWs], ['subscriptions-transport-ws', viaLegacy]]) {
  if (seen.at(-1) !== 'COMPLETE') {
    console.error(`follow.mjs: ${client} saw ${seen.join(' → ')}`);
    process.exit(1);
  }
  console.log(`follow.mjs: ${client}: ${seen.join(' → ')}`);
}
