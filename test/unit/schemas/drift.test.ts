// The generated tables under src/cpu/generated/ must equal what the generator makes from schemas/ today.
// Fix a failure with `npm run gen` (after changing the schema on purpose), never by editing generated files.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateAll } from '../../../scripts/gen/tables.js';
import { fsSchemaSource } from '../../../scripts/gen/fs-source.js';

const root = join(import.meta.dirname, '../../..');

describe('generated tables', () => {
  for (const [rel, content] of generateAll(fsSchemaSource(root))) {
    it(`${rel} matches its schema (run \`npm run gen\` if this fails)`, () => {
      expect(readFileSync(join(root, rel), 'utf8')).toBe(content);
    });
  }
});
