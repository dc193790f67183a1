// turtles.vmcs.v1 JSON: values as hex strings or safe integers, unknown names and members rejected with their
// line, widths enforced, memory read little-endian; the schema's field list matches the field table.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseVmcsDump, readQwordMemory } from '../../../../../src/replay/import/vmcs-dump/index.js';
import { VMCS_FIELDS } from '../../../../../src/cpu/generated/vmcs-fields.js';
import { enc, parseErr, parseOk } from './helpers.js';

const root = join(import.meta.dirname, '../../../../..');
const doc = (fields: string, extra = '') => `{\n  "format": "turtles.vmcs.v1",${extra}\n  "fields": {\n${fields}\n  }\n}\n`;

describe('JSON VMCS state', () => {
  it('reads hex strings and safe integers into the fields, with their lines', () => {
    const p = parseOk(doc(`    "GUEST_CR0": "0x80000031",\n    "GUEST_DS_LIMIT": 4294967295,\n    "VMCS_LINK_POINTER": "0xffffffffffffffff"`, '\n  "cpu": "kvm-l1",\n  "hostIa32e": true,'), 's.json');
    expect(p.format).toBe('turtles-json');
    expect(p.vmcs.read(enc('GUEST_CR0'))).toBe(0x80000031n);
    expect(p.vmcs.read(enc('GUEST_DS_LIMIT'))).toBe(0xffffffffn);
    expect(p.vmcs.read(enc('VMCS_LINK_POINTER'))).toBe(0xffffffffffffffffn);
    expect(p.fieldLines.get(enc('GUEST_DS_LIMIT'))).toBe(7);
    expect(p.cpu).toBe('kvm-l1');
    expect(p.hostIa32e).toBe(true);
    expect(p.unmapped).toEqual([]);
  });

  it('an unknown field name is bad input naming the name and its line', () => {
    const e = parseErr(doc(`    "GUEST_CR0": "0x31",\n    "GUEST_CR9": "0x0"`), 'bad.json');
    expect(e).toEqual({ kind: 'vmcs-dump', file: 'bad.json', line: 5, expected: 'a VMCS field name (see `turtles fields`); unknown field "GUEST_CR9"' });
  });

  it('a number above 2^53 - 1 is rejected (it has already lost bits)', () => {
    expect(parseErr(doc(`    "TSC_OFFSET": 18446744073709551615`)).expected).toMatch(/up to 2\^53 - 1/);
    expect(parseErr(doc(`    "TSC_OFFSET": 9007199254740992`)).expected).toMatch(/up to 2\^53 - 1/);
    expect(parseOk(doc(`    "TSC_OFFSET": 9007199254740991`)).vmcs.read(enc('TSC_OFFSET'))).toBe(9007199254740991n);
    expect(parseErr(doc(`    "TSC_OFFSET": -1`)).expected).toMatch(/non-negative/);
    expect(parseErr(doc(`    "TSC_OFFSET": 1.5`)).expected).toMatch(/integer/);
  });

  it('a value wider than the field, a _HIGH name, a malformed hex string are rejected', () => {
    expect(parseErr(doc(`    "GUEST_CS_SELECTOR": "0x10000"`)).expected).toMatch(/fits the 16-bit field/);
    expect(parseErr(doc(`    "EPT_POINTER_HIGH": "0x1"`)).expected).toMatch(/full field name EPT_POINTER/);
    expect(parseErr(doc(`    "GUEST_CR0": "80000031"`)).expected).toMatch(/hex string "0x…"/);
    expect(parseErr(doc(`    "GUEST_CR0": "0x11112222333344445"`)).expected).toMatch(/1–16 digits/);
  });

  it('unknown members, a wrong format tag, a syntax error are rejected with a line', () => {
    expect(parseErr(doc('', '\n  "cpus": "x",')).expected).toMatch(/unknown member "cpus"/);
    expect(parseErr(doc('', '\n  "cpus": "x",')).line).toBe(3);
    expect(parseErr('{"format": "turtles.vmcs.v2", "fields": {}}').expected).toMatch(/turtles\.vmcs\.v1/);
    const e = parseErr('{\n  "format": "turtles.vmcs.v1",\n  "fields": {\n    "GUEST_CR0": "0x1",\n  }\n}\n');
    expect(e.line).toBeGreaterThanOrEqual(4);
    expect(e.line).toBeLessThanOrEqual(5);
    expect(e.expected).toMatch(/^valid JSON/);
    expect(parseErr('{\n  "format": "turtles.vmcs.v1"\n}\n').expected).toMatch(/"fields"/);
  });

  it('reads memory as little-endian qwords at 8-byte aligned addresses', () => {
    const p = parseOk(doc(`    "GUEST_CR0": "0x1"`, '\n  "memory": { "0x1000": "0x1122334455667788", "0x1008": "0x99" },'));
    const m = p.memory!;
    expect(readQwordMemory(m, 0x1000n, 8)).toBe(0x1122334455667788n);
    expect(readQwordMemory(m, 0x1000n, 4)).toBe(0x55667788n);
    expect(readQwordMemory(m, 0x1004n, 4)).toBe(0x11223344n);
    expect(readQwordMemory(m, 0x1006n, 4)).toBe(0x00991122n);
    expect(readQwordMemory(m, 0x1010n, 4)).toBeUndefined();
    expect(parseErr(doc('', '\n  "memory": { "0x1004": "0x1" },')).expected).toMatch(/8-byte aligned/);
  });

  it('schemas/vmcs-state.schema.json lists exactly the full-access fields with their widths', () => {
    const schema = JSON.parse(readFileSync(join(root, 'schemas/vmcs-state.schema.json'), 'utf8')) as { properties: { fields: { properties: Record<string, { $ref: string }> } } };
    const want: Record<string, { $ref: string }> = {};
    for (const f of VMCS_FIELDS) if (f.access === 'full') want[f.name] = { $ref: `#/$defs/${f.width === 'natural' ? 'u64' : 'u' + f.width}` };
    expect(schema.properties.fields.properties).toEqual(want);
  });

  it('the example in docs/vmcs-json.md parses', () => {
    const md = readFileSync(join(root, 'docs/vmcs-json.md'), 'utf8');
    const ex = /```json\n([\s\S]*?)```/.exec(md)![1]!;
    const r = parseVmcsDump(ex, 'docs/vmcs-json.md');
    expect(r.ok).toBe(true);
  });
});
