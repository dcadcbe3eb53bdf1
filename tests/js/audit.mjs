// graphql-http's server audits (the GraphQL-over-HTTP spec's reference suite) against
// the server at the given origin: every audit must pass, warnings included.
import { serverAudits } from 'graphql-http';

const origin = process.argv[2];
const results = [];
for (const audit of serverAudits({ url: `${origin}/graphql` })) {
  const result = await audit.fn();
  results.push({ name: audit.name, ...result });
}
const count = (status) => results.filter((r) => r.status === status).length;
for (const r of results.filter((r) => r.status !== 'ok')) {
  console.log(`${r.status}: ${r.name}: ${r.reason}`);
}
console.log(`audit.mjs: ${count('ok')} ok, ${count('notice')} notice, ${count('warn')} warn, ${count('error')} error`);
process.exit(count('warn') + count('error') === 0 ? 0 : 1);
