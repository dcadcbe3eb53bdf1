// graphql-js's full introspection query, as GraphiQL, Apollo and codegen send it, over
// HTTP: the answer builds a client schema that knows the API's types and description.
import { buildClientSchema, getIntrospectionQuery, printSchema } from 'graphql';

const origin = process.argv[2];
const query = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
});
const response = await fetch(`${origin}/graphql`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
  body: JSON.stringify({ query }),
});
const body = await response.json();
if (response.status !== 200 || body.errors) {
  console.error(`introspection.mjs: ${response.status} ${JSON.stringify(body.errors)}`);
  process.exit(1);
}
const schema = buildClientSchema(body.data);
for (const name of ['Report', 'Dataset', 'TriggerReportInput', 'Subscription']) {
  if (!schema.getType(name)) {
    console.error(`introspection.mjs: no type ${name}`);
    process.exit(1);
  }
}
if (!schema.description?.startsWith('store-monitor')) {
  console.error(`introspection.mjs: the schema's description is ${JSON.stringify(schema.description)}`);
  process.exit(1);
}
console.log(`introspection.mjs: ${printSchema(schema).split('\n').length} lines of SDL`);
