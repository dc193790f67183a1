// Shared helpers for the VMCS-dump importer tests: fixture paths, parse-or-fail, field lookup by name.
// Must not: hide parse errors (parseOk throws with the file:line message so a failing test says why).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parseVmcsDump, type ParsedVmcsDump } from '../../../../../src/replay/import/vmcs-dump/index.js';
import { fieldByName } from '../../../../../src/cpu/vmcs.js';

export const FIXTURES = join(import.meta.dirname, '../../../../../traces/vmcs');
export const REAL = {
  dosemu2: 'dumpvmcs-dosemu2-core2duo-ds-accessed-bit.txt',
  linuxNext: 'dumpvmcs-linux-next-2020-entry-failed-0x0-reset-vector.txt',
  syzbot: 'dumpvmcs-syzbot-gce-4.13-next-cr4smxe.txt',
  xen: 'dumpvmcs-xen-4.11-debugkey-v-solo5-hlt-known-good.txt',
} as const;

export function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

export function parseOk(text: string, file = 'test.txt'): ParsedVmcsDump {
  const r = parseVmcsDump(text, file);
  if (!r.ok) throw new Error(`expected a parse, got ${r.error.file}:${r.error.line}: ${r.error.expected}`);
  return r.value;
}

export function parseErr(text: string, file = 'test.txt') {
  const r = parseVmcsDump(text, file);
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error('unreachable');
  return r.error;
}

export function enc(name: string): number {
  const d = fieldByName(name);
  if (!d) throw new Error(`no field ${name}`);
  return d.encoding;
}

/** Field values as { NAME: '0x…' } for readable comparisons. */
export function fields(p: ParsedVmcsDump, names: string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const n of names) {
    const v = p.vmcs.read(enc(n));
    out[n] = v === undefined ? undefined : '0x' + v.toString(16);
  }
  return out;
}

/** Every field of a parse as NAME → hex, for whole-state equality. */
export function allFields(p: ParsedVmcsDump): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [e, v] of [...p.vmcs.values].sort((a, b) => a[0] - b[0])) out['0x' + e.toString(16)] = '0x' + v.toString(16);
  return out;
}
