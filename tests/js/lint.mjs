// graphql-schema-linter on schema.graphql with every rule but its alphabetical-order ones
// (the schema keeps the order of the code, which reads better): nothing may be found.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const linter = dirname(require.resolve('graphql-schema-linter/package.json'));
const rules = readdirSync(join(linter, 'lib/rules'))
  .map((file) => file.replace(/\.js$/, '').replaceAll('_', '-'))
  .filter((rule) => rule !== 'index' && !rule.endsWith('-sorted-alphabetically'));
const schema = process.argv[2];
const run = spawnSync(process.execPath, [join(linter, 'lib/cli.js'), '--format', 'compact', '--rules', rules.join(','), schema], {
  encoding: 'utf8',
});
process.stdout.write(run.stdout);
process.stderr.write(run.stderr);
if (run.status !== 0) process.exit(1);
console.log(`lint.mjs: ${rules.length} rules, nothing found`);
