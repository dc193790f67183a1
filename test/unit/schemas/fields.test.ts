// schemas/vmx/fields.json against the shared reference table and the SDM encoding rules (reference §1.1-1.3).
import { describe, expect, it } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { VMCS_FIELDS } from '../../../src/cpu/generated/vmcs-fields.js';
import { decodeEncoding } from '../../../src/cpu/vmcs.js';

const root = join(import.meta.dirname, '../../..');
const refPath = join(root, '../shared/reference/vmcs-fields.json');
const fixturePath = join(root, 'test/fixtures/reference/vmcs-fields.json');

interface RefRow { name: string; encoding: string; width: string; type: string }

function referenceRows(): RefRow[] {
  // Prefer the shared reference; the fixture copy keeps a clean clone testable without ../shared.
  const path = existsSync(refPath) ? refPath : fixturePath;
  return JSON.parse(readFileSync(path, 'utf8')) as RefRow[];
}

describe('VMCS field table', () => {
  it('contains every one of the 200 reference encodings exactly, with the same name, width and type', () => {
    const ref = referenceRows();
    expect(ref).toHaveLength(200);
    const ours = new Map(VMCS_FIELDS.map((f) => ['0x' + f.encoding.toString(16).padStart(8, '0'), f]));
    for (const r of ref) {
      const f = ours.get(r.encoding);
      expect(f, r.encoding).toBeDefined();
      expect({ name: f!.name, width: f!.width, type: f!.type }).toEqual({ name: r.name, width: r.width, type: r.type });
      expect(f!.source).toBe('linux');
    }
    expect(VMCS_FIELDS.filter((f) => f.source === 'linux')).toHaveLength(200);
  });

  it('adds the SDM fields Linux does not list (reference §1.3), each with its high half when 64-bit', () => {
    const sdm = VMCS_FIELDS.filter((f) => f.source === 'sdm');
    const encs = new Set(sdm.map((f) => f.encoding));
    for (const e of [0x4, 0x6, 0xa, 0x814, 0x200c, 0x2030, 0x2036, 0x2038, 0x203a, 0x203c, 0x203e, 0x2040, 0x2044, 0x204a, 0x204c, 0x204e, 0x2052, 0x2402, 0x2404, 0x2816, 0x2818, 0x281a, 0x2828, 0x282e, 0x2830, 0x2c06, 0x2c08, 0x2c16, 0x2c1a, 0x4026, 0x4828, 0x6402, 0x6404, 0x6406, 0x6408]) {
      expect(encs.has(e), e.toString(16)).toBe(true);
    }
    for (const f of sdm) if (f.width === '64' && f.access === 'full') expect(encs.has(f.encoding | 1)).toBe(true);
  });

  it('derives width, type, index and access from every encoding (SDM App. B)', () => {
    for (const f of VMCS_FIELDS) {
      const d = decodeEncoding(f.encoding);
      expect(d.reservedBitsSet).toBe(false);
      expect([d.width, d.index, d.access]).toEqual([f.width, f.index, f.access]);
      expect(['control', 'read-only data', 'guest state', 'host state'][d.type]).toBe(f.type);
      if (f.access === 'high') expect(f.name.endsWith('_HIGH')).toBe(true);
    }
  });
});
