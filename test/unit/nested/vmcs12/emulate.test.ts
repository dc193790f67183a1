// Unit tests of L0's VMX-instruction emulation against vmcs12 (reference §2.3): the error numbers and their order, the
// faults, KVM's single-vmcs12 cache versus a CPU's active-VMCS cache (what reaches L1 memory when), AR-byte masking
// (N10), INVEPT/INVVPID operand checks and their effects, and the hardware VMCS-shadowing field sets and copies.
import { describe, expect, it } from 'vitest';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { Cr4 } from '../../../../src/cpu/state.js';
import { Vmcs } from '../../../../src/cpu/vmcs.js';
import { regionLayout } from '../../../../src/cpu/vmx/vmcs-region.js';
import { NestedVmxState, Vmcs12Emulator, copyShadowToVmcs12, copyVmcs12ToShadow, isShadowed, shadowBitmaps, shadowFieldSets } from '../../../../src/nested/vmcs12/index.js';
import { kvmProfile, sdmProfile, type L0Profile } from '../../../../src/nested/profile.js';
import { MapMemory, root64 } from '../../cpu/vmx/helpers.js';

const KVM_L1 = findCpuModel('kvm-l1')!;
const HOST = findCpuModel('intel-core-i7-6700k')!;
const VMXON = 0x1000n;
const A = 0x2000n;
const B = 0x3000n;
const SHADOW = 0x4000n;

function setup(profile: L0Profile = sdmProfile()) {
  const mem = new MapMemory().map(0x1000n, 0x8000);
  const rev = BigInt(KVM_L1.vmcsRevision);
  for (const p of [VMXON, A, B]) mem.write(p, 4, rev);
  mem.write(SHADOW, 4, rev | 0x8000_0000n);
  const state = new NestedVmxState();
  const emu = new Vmcs12Emulator(state, KVM_L1, profile, mem);
  const l1 = root64();
  l1.setMsr(0x3a, 5n);
  return { mem, state, emu, l1 };
}

function inVmx(profile?: L0Profile) {
  const s = setup(profile);
  expect(s.emu.vmxon(VMXON, s.l1).outcome.kind).toBe('vmsucceed');
  expect(s.emu.vmclear(A, s.l1).outcome.kind).toBe('vmsucceed');
  expect(s.emu.vmptrld(A, s.l1).outcome.kind).toBe('vmsucceed');
  return s;
}

describe('Vmcs12Emulator: VMXON / VMXOFF', () => {
  it('#UD without CR4.VMXE, #GP(0) at CPL 3, VMfailInvalid for bad pointers and revisions, VMfail(15) when already on', () => {
    const s = setup();
    s.l1.cr4 &= ~Cr4.VMXE;
    expect(s.emu.vmxon(VMXON, s.l1).outcome).toEqual({ kind: 'fault', vector: 6 });
    s.l1.cr4 |= Cr4.VMXE;
    s.l1.segAr[2] = 0xc0f3;
    expect(s.emu.vmxon(VMXON, s.l1).outcome).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
    s.l1.segAr[2] = 0xc093;
    expect(s.emu.vmxon(VMXON + 8n, s.l1).outcome.kind).toBe('vmfail-invalid');
    expect(s.emu.vmxon(SHADOW, s.l1).outcome.kind).toBe('vmfail-invalid');
    const on = s.emu.vmxon(VMXON, s.l1);
    expect(on.outcome.kind).toBe('vmsucceed');
    expect(on.effects).toEqual([{ kind: 'vmxon' }]);
    expect(s.emu.vmxon(VMXON, s.l1).outcome.kind).toBe('vmfail-invalid'); // no current VMCS: VMfail(15) is VMfailInvalid
    s.emu.vmptrld(A, s.l1);
    expect(s.emu.vmxon(VMXON, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 15 });
    expect(s.state.vmcs12.lo(Field.VM_INSTRUCTION_ERROR)).toBe(15);
  });

  it('VMXOFF writes every active VMCS back (sdm) or drops the cached vmcs12 (kvm, N9)', () => {
    for (const [profile, written] of [[sdmProfile(), true], [kvmProfile(), false]] as const) {
      const s = inVmx(profile);
      s.emu.vmwrite(BigInt(Field.GUEST_RIP), 0x1234n, s.l1);
      const r = s.emu.vmxoff(s.l1);
      expect(r.effects.map((e) => e.kind)).toEqual(['vmcs12-released', 'vmxoff']);
      const back = new Vmcs();
      regionLayout(KVM_L1).load(s.mem, A, back);
      expect(back.get(Field.GUEST_RIP) === 0x1234n).toBe(written);
      expect(s.emu.vmptrst(s.l1).outcome.kind).toBe('fault');
    }
  });
});

describe('Vmcs12Emulator: VMCLEAR / VMPTRLD / VMPTRST', () => {
  it('errors 2, 3, 9, 10, 11 in the SDM order', () => {
    const s = inVmx();
    expect(s.emu.vmclear(A + 1n, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 2 });
    expect(s.emu.vmclear(1n << 45n, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 2 });
    expect(s.emu.vmclear(VMXON, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 3 });
    expect(s.emu.vmptrld(B + 0x800n, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 9 });
    expect(s.emu.vmptrld(VMXON, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 10 });
    expect(s.emu.vmptrld(0x5000n, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 11 });
    // kvm-l1 offers VMCS shadowing, so a shadow VMCS can be made current.
    expect(s.emu.vmptrld(SHADOW, s.l1).outcome.kind).toBe('vmsucceed');
    expect(s.state.current!.shadow).toBe(true);
    expect(s.emu.vmptrst(s.l1).outcome).toEqual({ kind: 'vmsucceed', value: SHADOW });
  });

  it('switching vmcs12: KVM writes the old one back at VMPTRLD; a CPU keeps it active until VMCLEAR', () => {
    for (const [profile, atSwitch] of [[kvmProfile(), 0x77n], [sdmProfile(), 0n]] as const) {
      const s = inVmx(profile);
      s.emu.vmwrite(BigInt(Field.GUEST_RSP), 0x77n, s.l1);
      const r = s.emu.vmptrld(B, s.l1);
      expect(r.effects).toEqual([{ kind: 'vmcs12-released', ptr: A, reason: 'vmptrld' }, { kind: 'vmcs12-loaded', ptr: B }]);
      const back = new Vmcs();
      regionLayout(KVM_L1).load(s.mem, A, back);
      expect(back.get(Field.GUEST_RSP)).toBe(atSwitch);
      // Either way VMPTRLD A again sees what L1 wrote.
      s.emu.vmptrld(A, s.l1);
      expect(s.emu.vmread(BigInt(Field.GUEST_RSP), s.l1).outcome).toEqual({ kind: 'vmsucceed', value: 0x77n });
    }
  });

  it('VMCLEAR of the current VMCS releases it and makes VMREAD fail invalid', () => {
    const s = inVmx();
    expect(s.emu.vmclear(A, s.l1).effects).toEqual([{ kind: 'vmcs12-released', ptr: A, reason: 'vmclear' }]);
    expect(s.emu.vmread(BigInt(Field.GUEST_RIP), s.l1).outcome.kind).toBe('vmfail-invalid');
  });
});

describe('Vmcs12Emulator: VMREAD / VMWRITE', () => {
  it('error 12 for fields vmcs12 lacks, read-only fields writable (MISC[29]), high halves, 32-bit operands', () => {
    const s = inVmx();
    expect(s.emu.vmread(BigInt(Field.PLE_GAP), s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 12 });
    expect(s.emu.vmread(0x1_0000_0000n | BigInt(Field.GUEST_RIP), s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 12 });
    expect(s.emu.vmwrite(BigInt(Field.VM_EXIT_REASON), 30n, s.l1).outcome.kind).toBe('vmsucceed');
    s.emu.vmwrite(BigInt(Field.TSC_OFFSET), 0x1122_3344_5566_7788n, s.l1);
    expect(s.emu.vmread(BigInt(Field.TSC_OFFSET_HIGH), s.l1).outcome).toEqual({ kind: 'vmsucceed', value: 0x1122_3344n });
    const l1_32 = root64();
    l1_32.efer = 0n;
    l1_32.segAr[1] = 0xc09b;
    l1_32.cr4 = 0x2000n;
    expect(s.emu.vmread(BigInt(Field.TSC_OFFSET), l1_32).outcome).toEqual({ kind: 'vmsucceed', value: 0x5566_7788n });
  });

  it('AR bytes: stored as written (sdm), reserved bits dropped (kvm, N10)', () => {
    for (const [profile, want] of [[sdmProfile(), 0xfffe_0f00n | 0x1f0ffn], [kvmProfile(), 0x1f0ffn]] as const) {
      const s = inVmx(profile);
      s.emu.vmwrite(BigInt(Field.GUEST_ES_AR_BYTES), 0xffff_ffffn, s.l1);
      expect(s.emu.vmread(BigInt(Field.GUEST_ES_AR_BYTES), s.l1).outcome).toEqual({ kind: 'vmsucceed', value: want });
    }
  });
});

describe('Vmcs12Emulator: INVEPT / INVVPID', () => {
  it('unsupported types and invalid operands are VMfail(28); valid ones report the invalidation', () => {
    const s = inVmx();
    expect(s.emu.invept(0n, 0x5000_001en, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 28 });
    expect(s.emu.invept(1n, 0x5000_0000n, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 28 }); // UC EPTP not offered
    expect(s.emu.invept(1n, 0x5000_001en, s.l1).effects).toEqual([{ kind: 'invalidate', invalidation: { kind: 'ept-single-context', eptp: 0x5000_001en } }]);
    expect(s.emu.invvpid(1n, 0n, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 28 });
    expect(s.emu.invvpid(0n, (0x8000_0000_0000n << 64n) | 1n, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 28 });
    expect(s.emu.invvpid(0n, 1n << 16n | 1n, s.l1).outcome).toEqual({ kind: 'vmfail-valid', error: 28 });
    expect(s.emu.invvpid(2n, 0n, s.l1).effects).toEqual([{ kind: 'invalidate', invalidation: { kind: 'vpid-all-context' } }]);
  });
});

describe('VMCS shadowing for L1', () => {
  it('shadows the KVM set the hardware and L1\'s model both support; bitmaps let exactly those through', () => {
    const sets = shadowFieldSets(HOST, KVM_L1);
    expect(sets.rw).toContain(Field.GUEST_RIP);
    expect(sets.ro).toContain(Field.VM_EXIT_REASON);
    expect(sets.rw).not.toContain(Field.VM_INSTRUCTION_ERROR);
    const b = shadowBitmaps(sets);
    const bit = (m: Uint8Array, e: number) => (m[(e & 0x7fff) >> 3]! >> (e & 7)) & 1;
    expect([bit(b.vmread, Field.GUEST_RIP), bit(b.vmwrite, Field.GUEST_RIP)]).toEqual([0, 0]);
    expect([bit(b.vmread, Field.VM_EXIT_REASON), bit(b.vmwrite, Field.VM_EXIT_REASON)]).toEqual([0, 1]);
    expect([bit(b.vmread, Field.EPT_POINTER), bit(b.vmwrite, Field.EPT_POINTER)]).toEqual([1, 1]);
    expect(isShadowed(Field.GUEST_PHYSICAL_ADDRESS_HIGH, sets)).toBe(true);
  });

  it('vmcs12 → shadow copies RW and RO fields; shadow → vmcs12 copies only RW ones', () => {
    const sets = shadowFieldSets(HOST, KVM_L1);
    const v12 = new Vmcs();
    const sh = new Vmcs();
    v12.set(Field.GUEST_RIP, 1n);
    v12.set32(Field.VM_EXIT_REASON, 10);
    copyVmcs12ToShadow(v12, sh, sets);
    expect([sh.get(Field.GUEST_RIP), sh.lo(Field.VM_EXIT_REASON)]).toEqual([1n, 10]);
    sh.set(Field.GUEST_RIP, 2n);
    sh.set32(Field.VM_EXIT_REASON, 99);
    copyShadowToVmcs12(sh, v12, sets);
    expect([v12.get(Field.GUEST_RIP), v12.lo(Field.VM_EXIT_REASON)]).toEqual([2n, 10]);
  });
});
