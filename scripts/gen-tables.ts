// `npm run gen`: regenerates src/cpu/generated/ from schemas/ (run from the repository root).
// Must not: be needed at run time; the generated files are committed.
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generateAll } from './gen/tables.js';
import { fsSchemaSource } from './gen/fs-source.js';

const root = process.cwd();
for (const [rel, content] of generateAll(fsSchemaSource(root))) {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  writeFileSync(join(root, rel), content);
  process.stdout.write(`wrote ${rel}\n`);
}
