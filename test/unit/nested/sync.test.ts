// Exit to L1 as pure functions: vmcs12 guest-state sync (§7.2), exit information (§7.3, §7.6) and the L1 host-state
// load (§7.4, SDM 27.5) with the kvm profile's N14 and N1 deviations.
import { describe, expect, it } from 'vitest';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { EntryCtl, ExitCtl, Pin, Secondary } from '../../../src/cpu/generated/controls.js';
import { Ar, Cr0, Cr4, CpuState, Efer, Msr, Seg } from '../../../src/cpu/state.js';
import { validVmcs } from '../../../src/cpu/vmentry/valid-state.js';
import { syncVmcs02ToVmcs12, threeWayCr } from '../../../src/nested/sync/vmcs12-sync.js';
import { writeExitInfo12, type NestedExitInfo } from '../../../src/nested/sync/exit-info.js';
import { l1HostStateFromVmcs12 } from '../../../src/nested/sync/host-state.js';
import { Deviation, kvmProfile, sdmProfile } from '../../../src/nested/profile.js';
import { HOST_MODEL, L1_MODEL, PageMemory } from '../../support/arbitraries/vmcs12.js';

const F = Field;
const syncCtx = { profile: sdmProfile(), model: L1_MODEL, nestedRunPending: false, preemptionDeadline: null, l1Tsc: 0n };

describe('syncVmcs02ToVmcs12 (§7.2)', () => {
  it('three-way CR rule: L2-owned bits from vmcs02, L1-trapped bits kept, L0-only bits from the read shadow', () => {
    // owned by L2 in vmcs02: bit 3; trapped by L1: bit 0; trapped by L0 only: bit 5
    const mask02 = 0xffff_ffff_ffff_fff7n;
    expect(threeWayCr(0x8n, mask02, 0x20n, 0x1n, 0x1n)).toBe(0x29n);
    expect(threeWayCr(0x0n, mask02, 0x0n, 0x0n, 0x1n)).toBe(0x0n);
  });

  it('copies L2 registers from vmcs02, CR3 by paging mode, IA-32e entry control, activity, saved MSRs by exit controls', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(F.VM_EXIT_CONTROLS, v12.lo(F.VM_EXIT_CONTROLS) | ExitCtl.SAVE_DEBUG_CONTROLS);
    const v02 = validVmcs(HOST_MODEL);
    v02.set(F.GUEST_RIP, 0x4444n);
    v02.set(F.GUEST_CR3, 0x9000n);
    v02.set32(F.VM_ENTRY_CONTROLS, v02.lo(F.VM_ENTRY_CONTROLS) & ~EntryCtl.IA32E_MODE_GUEST);
    const l2 = new CpuState();
    l2.cr3 = 0x7000n;
    l2.activity = 1;
    l2.dr[7] = 0x455n;
    l2.setMsr(Msr.IA32_PAT, 0x0101_0101_0101_0101n);
    l2.efer = Efer.SCE;
    const r = syncVmcs02ToVmcs12(v02, v12, l2, syncCtx);
    expect(r.vmcs12.get(F.GUEST_RIP)).toBe(0x4444n);
    expect(r.vmcs12.get(F.GUEST_CR3)).toBe(0x9000n);
    expect(r.vmcs12.lo(F.VM_ENTRY_CONTROLS) & EntryCtl.IA32E_MODE_GUEST).toBe(0);
    expect(r.vmcs12.lo(F.GUEST_ACTIVITY_STATE)).toBe(1);
    expect(r.vmcs12.get(F.GUEST_DR7)).toBe(0x455n);
    expect(r.vmcs12.get(F.GUEST_IA32_PAT)).toBe(0x0101_0101_0101_0101n);
    expect(r.vmcs12.get(F.GUEST_IA32_EFER)).toBe(Efer.SCE);
    expect(v12.get(F.GUEST_RIP)).not.toBe(0x4444n); // input untouched
    v02.set32(F.SECONDARY_VM_EXEC_CONTROL, v02.lo(F.SECONDARY_VM_EXEC_CONTROL) & ~Secondary.ENABLE_EPT);
    expect(syncVmcs02ToVmcs12(v02, v12, l2, syncCtx).vmcs12.get(F.GUEST_CR3)).toBe(0x7000n);
  });

  it('saves PDPTEs only with EPT in both and PAE paging; saves the preemption timer (kvm: not while the entry is pending)', () => {
    const v12 = validVmcs(L1_MODEL);
    const v02 = validVmcs(HOST_MODEL);
    v02.set(F.GUEST_PDPTR1, 0x3001n);
    v02.set(F.GUEST_CR0, Cr0.PG | Cr0.PE | Cr0.NE);
    v02.set(F.CR0_GUEST_HOST_MASK, 0n);
    v02.set(F.GUEST_CR4, Cr4.PAE | Cr4.VMXE);
    v02.set(F.CR4_GUEST_HOST_MASK, 0n);
    v12.set(F.CR0_GUEST_HOST_MASK, 0n);
    v12.set(F.CR4_GUEST_HOST_MASK, 0n);
    v02.set32(F.VM_ENTRY_CONTROLS, v02.lo(F.VM_ENTRY_CONTROLS) & ~EntryCtl.IA32E_MODE_GUEST);
    expect(syncVmcs02ToVmcs12(v02, v12, new CpuState(), syncCtx).vmcs12.get(F.GUEST_PDPTR1)).toBe(0x3001n);
    v12.set32(F.PIN_BASED_VM_EXEC_CONTROL, v12.lo(F.PIN_BASED_VM_EXEC_CONTROL) | Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
    v12.set32(F.VM_EXIT_CONTROLS, v12.lo(F.VM_EXIT_CONTROLS) | ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE);
    v12.set32(F.VMX_PREEMPTION_TIMER_VALUE, 77);
    const timed = { ...syncCtx, preemptionDeadline: 100n, l1Tsc: 90n << 5n };
    expect(syncVmcs02ToVmcs12(v02, v12, new CpuState(), timed).vmcs12.lo(F.VMX_PREEMPTION_TIMER_VALUE)).toBe(10);
    expect(syncVmcs02ToVmcs12(v02, v12, new CpuState(), { ...timed, nestedRunPending: true, profile: kvmProfile() }).vmcs12.lo(F.VMX_PREEMPTION_TIMER_VALUE)).toBe(77);
    expect(syncVmcs02ToVmcs12(v02, v12, new CpuState(), { ...timed, nestedRunPending: true }).vmcs12.lo(F.VMX_PREEMPTION_TIMER_VALUE)).toBe(10);
  });
});

const exit = (more: Partial<NestedExitInfo>): NestedExitInfo => ({
  reason: 0, qualification: 0n, intrInfo: 0, intrErrorCode: 0, instructionLength: 0, instructionInfo: 0, guestLinearAddress: 0n,
  guestPhysicalAddress: 0n, idtVectoringInfo: 0, idtVectoringErrorCode: 0, synthesized: false, ...more,
});

describe('writeExitInfo12 (§7.3)', () => {
  it('entry failures write only reason and qualification and do not launch', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0b0e);
    const r = writeExitInfo12(v12, exit({ reason: 0x8000_0021, qualification: 2n, instructionLength: 3 }), null, sdmProfile());
    expect(r.written).toEqual(['VM_EXIT_REASON', 'EXIT_QUALIFICATION']);
    expect(r.launched).toBe(false);
    expect(r.vmcs12.lo(F.VM_ENTRY_INTR_INFO_FIELD)).toBe(0x8000_0b0e);
  });
  it('clears the entry valid bit, records an uncompleted injection as IDT vectoring (soft events with their length)', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0603);
    const r = writeExitInfo12(v12, exit({ reason: 48, instructionLength: 0, guestPhysicalAddress: 0x1234_5000n }), { type: 6, vector: 3, errorCode: null, instructionLength: 1 }, sdmProfile());
    expect(r.vmcs12.lo(F.VM_ENTRY_INTR_INFO_FIELD)).toBe(0x603);
    expect(r.vmcs12.lo(F.IDT_VECTORING_INFO_FIELD)).toBe(0x8000_0603);
    expect(r.vmcs12.lo(F.VM_EXIT_INSTRUCTION_LEN)).toBe(1);
    expect(r.vmcs12.get(F.GUEST_PHYSICAL_ADDRESS)).toBe(0x1234_5000n);
    expect(r.launched).toBe(true);
    const h = writeExitInfo12(v12, exit({ reason: 30, idtVectoringInfo: 0x8000_0b0e, idtVectoringErrorCode: 4, guestPhysicalAddress: 0x1n }), null, sdmProfile());
    expect([h.vmcs12.lo(F.IDT_VECTORING_INFO_FIELD), h.vmcs12.lo(F.IDT_VECTORING_ERROR_CODE)]).toEqual([0x8000_0b0e, 4]);
    expect(h.vmcs12.get(F.GUEST_PHYSICAL_ADDRESS)).toBe(v12.get(F.GUEST_PHYSICAL_ADDRESS));
  });
  it('triple fault and #DF exits report no vectoring; error codes only when valid (kvm synthesized: 16 bits)', () => {
    const v12 = validVmcs(L1_MODEL);
    const inj = { type: 3 as const, vector: 14, errorCode: 2, instructionLength: 0 };
    expect(writeExitInfo12(v12, exit({ reason: 2 }), inj, sdmProfile()).vmcs12.lo(F.IDT_VECTORING_INFO_FIELD)).toBe(0);
    expect(writeExitInfo12(v12, exit({ reason: 0, intrInfo: 0x8000_0b08 }), inj, sdmProfile()).vmcs12.lo(F.IDT_VECTORING_INFO_FIELD)).toBe(0);
    const pf = exit({ reason: 0, intrInfo: 0x8000_0b0e, intrErrorCode: 0x1_0005, synthesized: true });
    expect(writeExitInfo12(v12, pf, null, sdmProfile()).vmcs12.lo(F.VM_EXIT_INTR_ERROR_CODE)).toBe(0x1_0005);
    expect(writeExitInfo12(v12, pf, null, kvmProfile()).vmcs12.lo(F.VM_EXIT_INTR_ERROR_CODE)).toBe(0x5);
    expect(writeExitInfo12(v12, exit({ reason: 0, intrInfo: 0x8000_0306, intrErrorCode: 9 }), null, sdmProfile()).written).not.toContain('VM_EXIT_INTR_ERROR_CODE');
  });
});

describe('l1HostStateFromVmcs12 (§7.4, SDM 27.5)', () => {
  const atExit = (): CpuState => {
    const s = new CpuState();
    s.cr0 = Cr0.PG | Cr0.PE | Cr0.NE | Cr0.CD | Cr0.NW | Cr0.ET;
    s.cr4 = Cr4.PAE | Cr4.VMXE | Cr4.OSFXSR;
    s.efer = Efer.LMA | Efer.LME;
    s.segAr[Seg.CS] = 0xa09b;
    s.gpr[3] = 0x33n;
    s.interruptibility = 3;
    return s;
  };
  const ctx = { profile: sdmProfile(), model: L1_MODEL };

  it('loads the host state by the SDM rules', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(F.HOST_DS_SELECTOR, 0);
    const r = l1HostStateFromVmcs12(v12, atExit(), ctx);
    if (r.kind !== 'ok') throw new Error(r.kind);
    const s = r.state;
    expect([s.rip, s.gpr[4], s.rflags, s.gpr[3]]).toEqual([v12.get(F.HOST_RIP), v12.get(F.HOST_RSP), 2n, 0x33n]);
    // CD/NW/ET are not modified by the exit; the loadable bits (MP, WP, AM) come from HOST_CR0.
    expect(s.cr0).toBe(Cr0.PG | Cr0.PE | Cr0.NE | Cr0.CD | Cr0.NW | Cr0.ET | Cr0.MP | Cr0.WP | Cr0.AM);
    expect(s.cr4 & Cr4.PAE).toBe(Cr4.PAE);
    expect([s.dr[7], s.msr(Msr.IA32_DEBUGCTL)]).toEqual([0x400n, 0n]);
    expect(s.segAr[Seg.CS]).toBe(0xa09b);
    expect(s.segAr[Seg.DS]).toBe(Ar.UNUSABLE);
    expect(r.undefinedParts).toContain('DS.attributes');
    expect(s.segAr[Seg.SS]).toBe(0xc093);
    expect([s.segSel[Seg.TR], s.segLimit[Seg.TR], s.segAr[Seg.TR]]).toEqual([0x40, 0x67, 0x8b]);
    expect(s.segAr[Seg.LDTR]).toBe(Ar.UNUSABLE);
    expect([s.gdtrLimit, s.idtrLimit]).toEqual([0xffff, 0xffff]);
    expect(s.interruptibility).toBe(0);
    expect(s.efer).toBe(v12.get(F.HOST_IA32_EFER));
  });

  it('kvm N14: null selectors load usable flat segments and HOST_CR0 is loaded whole', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(F.HOST_DS_SELECTOR, 0);
    const r = l1HostStateFromVmcs12(v12, atExit(), { ...ctx, profile: kvmProfile() });
    if (r.kind !== 'ok') throw new Error(r.kind);
    expect(r.state.segAr[Seg.DS]).toBe(0xc093);
    expect(r.state.cr0).toBe(v12.get(F.HOST_CR0));
    const onlyCr0 = l1HostStateFromVmcs12(v12, atExit(), { ...ctx, profile: kvmProfile({ only: [Deviation.HOST_CR0_FULL_LOAD] }) });
    expect(onlyCr0.kind === 'ok' && onlyCr0.state.segAr[Seg.DS]).toBe(Ar.UNUSABLE);
  });

  it('VMX abort 6 for an IA-32e exit to a 32-bit host, abort 2 for bad host PDPTEs; kvm raises a triple fault (N1)', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(F.VM_EXIT_CONTROLS, v12.lo(F.VM_EXIT_CONTROLS) & ~(ExitCtl.HOST_ADDRESS_SPACE_SIZE | ExitCtl.LOAD_IA32_EFER));
    expect(l1HostStateFromVmcs12(v12, atExit(), ctx)).toEqual({ kind: 'vmx-abort', indicator: 6 });
    expect(l1HostStateFromVmcs12(v12, atExit(), { ...ctx, profile: kvmProfile() })).toEqual({ kind: 'triple-fault', abortIndicator: 6 });
    const s = atExit();
    s.efer = 0n;
    const mem = new PageMemory();
    const page = new Uint8Array(4096);
    page[0] = 0x7; // present with reserved bits 2:1
    mem.map(v12.get(F.HOST_CR3) & ~0xfffn, page);
    expect(l1HostStateFromVmcs12(v12, s, { ...ctx, readL1Memory: mem.read })).toEqual({ kind: 'vmx-abort', indicator: 2 });
    page[0] = 0x1;
    expect(l1HostStateFromVmcs12(v12, s, { ...ctx, readL1Memory: mem.read }).kind).toBe('ok');
  });
});
