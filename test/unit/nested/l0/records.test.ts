// The nested machine's records for the checker (DESIGN.md §3 invariants): every hardware entry of vmcs02 with its
// provenance, every L2 exit with the reflection decision and what L0 did, EPT02 fills; the inspection API (EPT02 leaves,
// the EPT12 ∘ EPT01 walk against EPT02); and VMX abort vs KVM's triple fault (N1) on a failing MSR-store list.
import { describe, expect, it } from 'vitest';
import { assemble } from '../../../../src/asm/index.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { Secondary } from '../../../../src/cpu/generated/controls.js';
import { L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { L1Layout, type L1Config } from '../../../../src/cpu/l1/config.js';
import { FIELD_RULES, EXIT_INFO_RULE } from '../../../../src/nested/merge/merge.js';
import { kvmProfile } from '../../../../src/nested/profile.js';
import { firstDifference, runConfigPair } from '../machine/harness.js';

const code = (src: string) => {
  const c = assemble(src, { bitness: 64, ip: L2Layout.CODE });
  if (!c.ok) throw new Error(c.error.message);
  return c.bytes;
};

describe('nested records', () => {
  const config: L1Config = { l2: { mode: 'long64', code: code('mov qword [0x90000], 3\n l: cpuid\n jmp l') }, ept: {}, maxExits: 3, vmxoffAtEnd: false };
  const p = runConfigPair(config);
  const rec = p.nested.records;

  it('every vmcs02 entry carries the merge provenance of every field the merge writes', () => {
    const entries = rec.ofKind('l2-entry');
    expect(entries[0]!.realEntry).toBe(true);
    expect(entries.some((e) => !e.realEntry)).toBe(true); // L0 resumed L2 after EPT02 fills
    const written = [...FIELD_RULES.values()].filter((r) => r !== EXIT_INFO_RULE).length;
    for (const e of entries) {
      expect(e.provenance).toHaveLength(written);
      expect(e.vmcs02.get(Field.EPT_POINTER)).toBe(e.eptp02);
      expect(e.provenance.find((x) => x.field === 'EPT_POINTER')!.rule).toBe('merge.ept-pointer');
    }
  });

  it('every L2 exit has its hardware information, the decision and the handler', () => {
    const exits = rec.ofKind('l2-exit');
    const fills = exits.filter((x) => x.handler === 'ept02-fill');
    expect(fills.length).toBeGreaterThan(0);
    expect(fills.every((x) => (x.hardware.reason & 0xffff) === 48 && x.decision.rule === 'l0.ept-violation' && !x.decision.reflect)).toBe(true);
    const cpuid = exits.filter((x) => (x.hardware.reason & 0xffff) === 10);
    expect(cpuid.every((x) => x.handling === 'reflected' && x.decision.rule === 'l1.cpuid')).toBe(true);
    expect(rec.ofKind('exit-to-l1').map((x) => x.exit.reason)).toEqual([10, 10, 10]);
    expect(rec.ofKind('ept02').filter((x) => x.event.kind === 'fill').length).toBe(fills.length);
  });

  it('exposes EPT02 and the nested walk for one L2 GPA', () => {
    const m = p.nested.machine;
    const leaves = m.ept02Entries();
    expect(leaves.length).toBeGreaterThan(0);
    expect(leaves.every((l) => l.role.kind === 'ept12')).toBe(true);
    const w = m.walkNested(0x90000n);
    expect(w.consistent).toBe(true);
    expect(w.ept12?.ok && w.ept01?.ok && w.ept02?.ok).toBe(true);
    expect(w.expected).toEqual({ kind: 'hpa', hpa: w.ept02?.ok ? w.ept02.out : -1n });
    expect(m.auditEpt02()).toEqual([]);
  });
});

describe('VMX abort on a failing VM-exit MSR-store entry', () => {
  // One store-list entry for an x2APIC MSR: storing it fails, so the exit aborts with indicator 1 (SDM 27.4, 27.7).
  const entry = new Uint8Array(16);
  new DataView(entry.buffer).setUint32(0, 0x808, true);
  const config: L1Config = {
    l2: { mode: 'long64', code: code('cpuid\n hlt') }, maxExits: 2,
    l1Data: [{ gpa: 0x0100_e000n, bytes: entry }],
    vmcsWrites: [[Field.VM_EXIT_MSR_STORE_ADDR, 0x0100_e000n], [Field.VM_EXIT_MSR_STORE_COUNT, 1n]],
  };

  it('sdm: the same abort, indicator in the vmcs12 region, as the reference', () => {
    const p = runConfigPair(config);
    expect(firstDifference(p.reference.log, p.nested.log)).toBeUndefined();
    expect(p.nested.result.status).toBe('shutdown');
    const shut = p.nested.log.find((o) => o.kind === 'shutdown');
    expect(shut).toMatchObject({ why: 'vmx-abort', abortIndicator: 1 });
    expect(p.nested.machine.l0.l1Port.read(L1Layout.VMCS + 4n, 4)).toBe(1n);
  });

  it('kvm (N1): a triple fault of L1 instead', () => {
    const p = runConfigPair(config, { profile: kvmProfile() });
    expect(p.nested.log.find((o) => o.kind === 'shutdown')).toMatchObject({ why: 'triple-fault', abortIndicator: 1 });
  });
});

describe('VMFUNC (L0 always takes exit 59, §2.3)', () => {
  it('a valid EPTP switch is emulated invisibly; an invalid index goes to L1 as exit 59', () => {
    const config: L1Config = {
      l2: { mode: 'long64', code: code('xor eax, eax\n xor ecx, ecx\n vmfunc\n mov ecx, 1\n vmfunc\n hlt') },
      ept: {}, vmfuncControls: 1n, controls: { secondary: Secondary.ENABLE_VM_FUNCTIONS }, maxExits: 1,
    };
    const p = runConfigPair(config);
    expect(firstDifference(p.reference.log, p.nested.log)).toBeUndefined();
    const handlers = p.nested.records.ofKind('l2-exit').filter((x) => (x.hardware.reason & 0xffff) === 59).map((x) => x.handler);
    expect(handlers).toEqual(['emulate-59', 'emulate-59-vmcs12-exit']);
    expect(p.nested.records.ofKind('exit-to-l1').map((x) => x.exit.reason)).toEqual([59]);
  });
});
