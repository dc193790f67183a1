// The engine's contract: validVmcs passes everywhere, 'first' vs 'all', not-evaluated checks (never guessed),
// catalogue order, evaluatedCount, verdicts, failure records, determinism and re-entrancy.
import { describe, expect, it } from 'vitest';
import { ENTRY_CHECKS, type EntryCheckId } from '../../../../src/cpu/generated/entry-checks.js';
import { EntryCtl, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { PartialVmcs, slotFields, Vmcs, type VmcsReader } from '../../../../src/cpu/vmcs.js';
import {
  ENTRY_STAGES, runEntryChecks, validVmcs, verdictOf, type EntryCheckFailure, type EntryCheckReport,
} from '../../../../src/cpu/vmentry/index.js';
import { PhysMemory, presets, syntheticModel } from './support.js';

const ids = ENTRY_CHECKS.map((c) => c.id as EntryCheckId);
const indexOf = (id: string): number => ids.indexOf(id as EntryCheckId);

/** A PartialVmcs showing every field of `v` except `omit`. */
function partialOf(v: Vmcs, omit: readonly number[] = []): PartialVmcs {
  const p = new PartialVmcs();
  for (const f of slotFields()) if (!omit.includes(f.encoding)) p.set(f.encoding, v.get(f.encoding));
  return p;
}

describe('validVmcs', () => {
  for (const cpu of presets()) {
    it(`passes every check on ${cpu.id} in both modes`, () => {
      for (const mode of ['first', 'all'] as const) {
        const r = runEntryChecks(validVmcs(cpu), { cpu, hostIa32e: true }, mode);
        expect(r.failures).toEqual([]);
        expect(r.notEvaluated).toEqual([]);
        expect(r.evaluatedCount).toBe(ENTRY_CHECKS.length);
        expect(verdictOf(r)).toEqual({ kind: 'pass' });
      }
    });
    it(`needs no memory, WRMSR oracle or SMM state on ${cpu.id}; only the host-mode checks wait for hostIa32e`, () => {
      const r = runEntryChecks(validVmcs(cpu), { cpu }, 'all');
      expect(r.failures).toEqual([]);
      // "host address-space size" is 1, so the in-IA-32e-mode rule holds whatever the host mode is.
      expect(r.notEvaluated).toEqual(['host.addr-size.outside-ia32e-guest', 'host.addr-size.outside-ia32e-hass']);
    });
  }
});

describe('not-evaluated checks', () => {
  const cpu = presets()[0]!;
  it('an empty dump decides nothing but what the CPU model alone decides, and lists the rest in catalogue order', () => {
    const r = runEntryChecks(new PartialVmcs(), { cpu }, 'all');
    expect(r.failures).toEqual([]);
    // On an Intel 64 processor "no Intel 64" needs no field; every other check needs at least one.
    const decidable = cpu.controlOffered('exit.host-address-space-size') ? ['host.addr-size.no-intel64'] : [];
    expect(r.notEvaluated).toEqual(ids.filter((id) => !decidable.includes(id)));
    expect(r.evaluatedCount).toBe(decidable.length);
  });
  it('every check is evaluated at most once per run, in catalogue order (a model without Intel 64)', () => {
    const no64 = syntheticModel((d) => { for (const n of ['IA32_VMX_EXIT_CTLS', 'IA32_VMX_TRUE_EXIT_CTLS'] as const) d.vmxMsrs[n] = '0x' + (BigInt(d.vmxMsrs[n]!) & ~(0x200n << 32n)).toString(16); });
    expect(runEntryChecks(new PartialVmcs(), { cpu: no64 }, 'all').notEvaluated).toEqual(ids);
  });
  it('a dump showing every field behaves like the full state', () => {
    const full = validVmcs(cpu);
    const r = runEntryChecks(partialOf(full), { cpu, hostIa32e: true }, 'all');
    expect(r).toEqual(runEntryChecks(full, { cpu, hostIa32e: true }, 'all'));
  });
  it('without VM_ENTRY_CONTROLS the IA-32e-mode-dependent checks are not evaluated, never guessed', () => {
    const v = validVmcs(cpu);
    v.set(Field.GUEST_CR4, 0x26e0n | (1n << 17n)); // PCIDE: legal only in IA-32e mode
    const r = runEntryChecks(partialOf(v, [Field.VM_ENTRY_CONTROLS]), { cpu, hostIa32e: true }, 'all');
    expect(r.failures).toEqual([]);
    for (const id of ['ctrl.entry.allowed-settings', 'guest.ia32e.paging',
      'guest.ia32e.pae', 'guest.cr4.pcide-outside-ia32e', 'guest.efer.lma', 'guest.rip.high-bits', 'guest.rip.canonical',
      'guest.debugctl.reserved', 'guest.dr7.high-bits', 'guest.pat.memory-types']) expect(r.notEvaluated).toContain(id);
    // Checks that do not depend on the entry controls are still decided.
    // Checks that do not depend on the entry controls, or whose outcome is the same either way, are still decided
    // (TR type 11 is legal in both modes; CS has L without D/B).
    for (const id of ['guest.cr0.fixed-bits', 'guest.seg.cs.type', 'host.cr4.fixed-bits', 'guest.seg.tr.type', 'guest.seg.cs.db-long']) expect(r.notEvaluated).not.toContain(id);
  });
  it('without the secondary controls, their checks are decided only when "activate secondary controls" is 0', () => {
    const v = validVmcs(cpu);
    const withSec = runEntryChecks(partialOf(v, [Field.SECONDARY_VM_EXEC_CONTROL]), { cpu, hostIa32e: true }, 'all');
    expect(withSec.notEvaluated).toEqual(expect.arrayContaining(['ctrl.secondary.allowed-settings', 'ctrl.eptp.memory-type', 'ctrl.vpid.nonzero', 'guest.seg.ss.sel-rpl']));
    expect(withSec.failures).toEqual([]);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~Primary.ACTIVATE_SECONDARY_CONTROLS);
    const without = runEntryChecks(partialOf(v, [Field.SECONDARY_VM_EXEC_CONTROL]), { cpu, hostIa32e: true }, 'all');
    expect(without.notEvaluated).toEqual([]);
    expect(without.failures).toEqual([]);
  });
  it('a missing field needed only when a control is 1 does not matter while the control is 0', () => {
    const v = validVmcs(cpu);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~Primary.USE_IO_BITMAPS);
    const r = runEntryChecks(partialOf(v, [Field.IO_BITMAP_A, Field.IO_BITMAP_B]), { cpu, hostIa32e: true }, 'all');
    expect(r.notEvaluated).toEqual([]);
  });
  it('a failure is still found when unrelated fields are missing', () => {
    const v = validVmcs(cpu);
    v.set(Field.GUEST_RIP, 0x0000_8000_0000_0000n);
    const r = runEntryChecks(partialOf(v, [Field.HOST_CR0, Field.GUEST_IA32_PAT]), { cpu, hostIa32e: true }, 'first');
    expect(r.failures.map((f) => f.id)).toEqual(['guest.rip.canonical']);
    // HOST_CR4.CET is 0, so the CET/WP rule is decided without HOST_CR0.
    expect(r.notEvaluated).toEqual(['host.cr0.fixed-bits', 'guest.pat.memory-types']);
  });
});

describe('first and all modes', () => {
  const cpu = presets()[0]!;
  const broken = (): Vmcs => {
    const v = validVmcs(cpu);
    v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, v.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & ~0x2); // controls
    v.set32(Field.HOST_TR_SELECTOR, 0); // host state
    v.set(Field.GUEST_GDTR_BASE, 0x0000_8000_0000_0000n); // guest state
    v.set(Field.GUEST_CR0, 0x8005_0013n); // guest state, earlier in the catalogue
    return v;
  };
  it("'all' lists every failure in stage order and catalogue order; 'first' stops at the first", () => {
    const all = runEntryChecks(broken(), { cpu, hostIa32e: true }, 'all');
    expect(all.failures.map((f) => f.id)).toEqual(['ctrl.pin.allowed-settings', 'host.sel.tr.null', 'guest.cr0.fixed-bits', 'guest.gdtr.base-canonical']);
    const first = runEntryChecks(broken(), { cpu, hostIa32e: true }, 'first');
    expect(first.failures).toEqual([all.failures[0]]);
    expect(first.evaluatedCount).toBe(indexOf('ctrl.pin.allowed-settings') + 1);
    expect(all.evaluatedCount).toBe(ENTRY_CHECKS.length);
  });
  it('the verdict follows the class of the first failure', () => {
    const v = broken();
    expect(verdictOf(runEntryChecks(v, { cpu, hostIa32e: true }, 'first'))).toMatchObject({ kind: 'vmfail', error: 7 });
    v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, v.lo(Field.PIN_BASED_VM_EXEC_CONTROL) | 0x2);
    expect(verdictOf(runEntryChecks(v, { cpu, hostIa32e: true }, 'first'))).toMatchObject({ kind: 'vmfail', error: 8, failure: { id: 'host.sel.tr.null' } });
    v.set32(Field.HOST_TR_SELECTOR, 0x40);
    expect(verdictOf(runEntryChecks(v, { cpu, hostIa32e: true }, 'first'))).toMatchObject({ kind: 'entry-failure', exitReason: 33, qualification: 0n, failure: { id: 'guest.cr0.fixed-bits' } });
  });
  it('evaluatedCount in first mode counts decided checks up to the failing one', () => {
    const v = validVmcs(cpu);
    v.set(Field.GUEST_RIP, 0x0000_8000_0000_0000n);
    const r = runEntryChecks(partialOf(v, [Field.HOST_CR0]), { cpu, hostIa32e: true }, 'first');
    expect(r.evaluatedCount).toBe(indexOf('guest.rip.canonical') + 1 - r.notEvaluated.length);
  });
});

describe('failure records', () => {
  const cpu = presets()[0]!;
  it('name the catalogue check with its SDM section, stage, class and every field the check reads', () => {
    const v = validVmcs(cpu);
    v.set32(Field.GUEST_SS_SELECTOR, 0x1b);
    const f: EntryCheckFailure = runEntryChecks(v, { cpu, hostIa32e: true }, 'first').failures[0]!;
    const def = ENTRY_CHECKS[indexOf('guest.seg.ss.sel-rpl')]!;
    expect(f).toMatchObject({ id: def.id, sdm: '26.3.1.2', stage: 'guest-state', class: 'exit-33', qualification: 0n });
    expect(f.fields.map((x) => x.name)).toEqual(def.fields);
    expect(f.fields.find((x) => x.name === 'GUEST_SS_SELECTOR')).toEqual({ name: 'GUEST_SS_SELECTOR', encoding: '0x00000804', value: 0x1bn });
    for (const x of f.fields) expect(x.encoding).toMatch(/^0x[0-9a-f]{8}$/);
    expect(f.detail).not.toMatch(/\n/);
  });
  it('list only the fields a dump shows', () => {
    const v = validVmcs(cpu);
    v.set(Field.GUEST_CR3, 1n << 60n);
    const p = partialOf(v, [Field.GUEST_CR0]);
    const f = runEntryChecks(p, { cpu, hostIa32e: true }, 'all').failures.find((x) => x.id === 'guest.cr3.width')!;
    expect(f.fields.map((x) => x.name)).toEqual(['GUEST_CR3']);
  });
});

describe('engine properties', () => {
  const cpu = presets()[0]!;
  it('runs the thirteen SDM procedures in the SDM order', () => {
    expect(ENTRY_STAGES.map((s) => s.name)).toEqual([
      'checkVmExecutionControlFields', 'checkVmExitControlFields', 'checkVmEntryControlFields',
      'checkHostControlRegistersAndMsrs', 'checkHostSegmentAndDescriptorTableRegisters', 'checkHostAddressSpaceSize',
      'checkGuestControlRegistersDebugRegistersAndMsrs', 'checkGuestSegmentRegisters', 'checkGuestDescriptorTableRegisters',
      'checkGuestRipAndRflags', 'checkGuestNonRegisterState', 'loadGuestPdptes', 'loadGuestMsrs',
    ]);
  });
  it('is deterministic and leaves no state between runs', () => {
    const bad = validVmcs(cpu);
    bad.set32(Field.HOST_CS_SELECTOR, 0);
    const good = validVmcs(cpu);
    const a = runEntryChecks(bad, { cpu, hostIa32e: true }, 'all');
    runEntryChecks(new PartialVmcs(), { cpu }, 'all');
    expect(runEntryChecks(good, { cpu, hostIa32e: true }, 'all').failures).toEqual([]);
    expect(runEntryChecks(bad, { cpu, hostIa32e: true }, 'all')).toEqual(a);
  });
  it('may be re-entered from a readPhys callback', () => {
    const inner = validVmcs(cpu);
    inner.set32(Field.HOST_CS_SELECTOR, 0);
    const v = validVmcs(cpu);
    v.set(Field.VMCS_LINK_POINTER, 0x5000n);
    const mem = new PhysMemory().write(0x5000n, BigInt(cpu.vmcsRevision), 4);
    let innerReport: EntryCheckReport | undefined;
    const r = runEntryChecks(v, {
      cpu, hostIa32e: true, currentVmptr: 0x7000n, inSmm: false,
      readPhys: (a, s) => { innerReport = runEntryChecks(inner, { cpu, hostIa32e: true }, 'first'); return mem.read(a, s); },
    }, 'all');
    expect(r.failures).toEqual([]);
    expect(innerReport!.failures.map((f) => f.id)).toEqual(['host.sel.cs.null']);
  });
  it('reads any VmcsReader, not only the Vmcs class', () => {
    const v = validVmcs(cpu);
    const reader: VmcsReader = { read: (e) => v.read(e) };
    expect(runEntryChecks(reader, { cpu, hostIa32e: true }, 'all')).toEqual(runEntryChecks(v, { cpu, hostIa32e: true }, 'all'));
  });
  it('uses the effective secondary controls (0 when not activated) for every dependent check', () => {
    const v = validVmcs(cpu);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~Primary.ACTIVATE_SECONDARY_CONTROLS);
    v.set32(Field.SECONDARY_VM_EXEC_CONTROL, Secondary.UNRESTRICTED_GUEST | Secondary.ENABLE_EPT);
    v.set(Field.GUEST_CR0, 0x8005_0032n); // PE clear: exempt only with an effective "unrestricted guest"
    expect(runEntryChecks(v, { cpu, hostIa32e: true }, 'first').failures.map((f) => f.id)).toEqual(['guest.cr0.fixed-bits']);
  });
  it('IA-32e mode guest without the IA32E control is a 32-bit guest', () => {
    const v = validVmcs(cpu);
    v.set32(Field.VM_ENTRY_CONTROLS, v.lo(Field.VM_ENTRY_CONTROLS) & ~EntryCtl.IA32E_MODE_GUEST);
    const r = runEntryChecks(v, { cpu, hostIa32e: true }, 'all');
    // EFER.LMA still says IA-32e; CS.L = 1 alone does not make RIP bits 63:32 legal, but RIP is below 4 GiB.
    expect(r.failures.map((f) => f.id)).toEqual(['guest.efer.lma']);
  });
});
