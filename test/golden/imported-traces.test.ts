// Golden test: every bundled imported trace (traces/imported/manifest.json) is exactly what importing its source gives
// today, so an importer change that alters a trace cannot go unnoticed (then: `npm run build && npm run reimport`,
// review, `npm run accept`). Also the import determinism contract: the same source gives byte-identical traces.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { loadImportedTraces, reimport } from '../../scripts/samples/reimport.js';

const root = join(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'turtles-reimport-'));

describe('bundled imported traces', () => {
  const traces = loadImportedTraces(root);
  it('lists the shared real logs and dumps', () => {
    expect(traces.length).toBeGreaterThanOrEqual(10);
  });
  for (const t of traces) {
    it(`${t.trace} is the import of ${t.source}`, async () => {
      const out = join(tmp, basename(t.trace));
      const r = await reimport(root, t.source, out);
      expect(r.code, r.text).toBe(0);
      const fresh = readFileSync(out);
      const bundled = readFileSync(join(root, t.trace));
      expect(fresh.equals(bundled), `${t.trace} differs from a fresh import; run npm run build && npm run reimport, review, then npm run accept`).toBe(true);
    });
  }
});
