// `npm start` (and `npm run accept`): run turtles on the bundled samples, print each report, and say whether
// each matches its accepted expected report. Exit 0 when all match, 1 otherwise.
// Must not: hide a mismatch; --accept rewrites the expected reports and is only for intended changes.
import { join } from 'node:path';
import { runSamples } from './samples/run-samples.js';

const root = join(import.meta.dirname, '../..');
const accept = process.argv.includes('--accept');
const outcomes = await runSamples(root, { accept });
let ok = 0;
for (const o of outcomes) {
  process.stdout.write(`\n=== ${o.sample.name}\n$ turtles ${o.sample.args.join(' ')}\n${o.text}`);
  if (o.stderr) process.stdout.write(o.stderr);
  const verdict = o.matches ? 'as expected' : o.expectedJson === null ? 'NO EXPECTED REPORT (run npm run accept)' : 'DIFFERS from the accepted report';
  process.stdout.write(`--> exit ${o.exitCode} (expected ${o.sample.expectedExit}); report ${verdict}\n`);
  if (o.matches) ok++;
}
process.stdout.write(`\n${ok} of ${outcomes.length} samples as expected${accept ? ' (expected reports rewritten)' : ''}\n`);
process.exitCode = ok === outcomes.length ? 0 : 1;
