// The committed protobuf code under src/replay/format/generated/ must equal what pbjs/pbts make from
// schemas/trace.proto today. Fix a failure with `npm run gen:proto` (after changing the schema on purpose).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENERATED_DIR, RUNTIME_FILE, TYPES_FILE, generateProtoCode } from '../../../../src/replay/io/proto-codegen.js';

const root = join(import.meta.dirname, '../../../..');
const out = mkdtempSync(join(tmpdir(), 'turtles-proto-drift-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('generated protobuf code', () => {
  it('matches schemas/trace.proto (run `npm run gen:proto` if this fails)', () => {
    generateProtoCode(root, out);
    for (const f of [RUNTIME_FILE, TYPES_FILE]) {
      expect(readFileSync(join(out, f), 'utf8'), f).toBe(readFileSync(join(root, GENERATED_DIR, f), 'utf8'));
    }
  }, 60_000);
});
