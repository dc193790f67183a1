// Golden test: every bundled sample (traces/samples.json) still gives its accepted report and exit code.
// After an intended change, `npm run build && npm run accept` rewrites the expected reports; review the diff.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { loadSamples, runSamples } from '../../scripts/samples/run-samples.js';

const root = join(import.meta.dirname, '../..');

describe('bundled samples', async () => {
  const outcomes = await runSamples(root);
  it('lists at least one sample', () => {
    expect(loadSamples(root).length).toBeGreaterThan(0);
  });
  for (const o of outcomes) {
    it(`${o.sample.name}: report and exit code match the accepted ones`, () => {
      expect(o.expectedJson, `no expected report at ${o.sample.expected}; run npm run accept`).not.toBeNull();
      expect(o.json).toBe(o.expectedJson);
      expect(o.exitCode).toBe(o.sample.expectedExit);
    });
  }
});
