// L0 on the model hardware: host memory and its physical port, the VMX processor with the host CPU model, L0's page
// layout (VMXON region, vmcs01, vmcs02, the shadow VMCS, bitmaps, EPT01 tables, the EPT02 page pool), vmcs01 for L1,
// and the two transitions L0 makes itself: entering a guest (guest-state area + the state the VMCS does not switch).
// Must not: make nested decisions (l0.ts and friends do). SDM 23.7 (VMXON), 24 (VMCS), 26 (entry), 27.5 (host state).
import { HPA, type Hpa, type L1Gpa } from '../../cpu/address.js';
import type { CpuModel } from '../../cpu/cpu-model.js';
import { eptCapabilities } from '../../cpu/ept/eptp.js';
import type { Ept, EptCapabilities } from '../../cpu/ept/types.js';
import { EntryCtl, ExitCtl, Primary, Secondary } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { defaultL1State } from '../../cpu/machine/l1-memory.js';
import { PhysicalMemory } from '../../cpu/memory.js';
import { Cr0, Msr, Seg, type CpuState } from '../../cpu/state.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import { saveGuestState } from '../../cpu/vmx/guest-state.js';
import type { VmxInstrOutcome } from '../../cpu/vmx/outcome.js';
import type { VmxPhysicalAccess } from '../../cpu/vmx/physical.js';
import { VmxProcessor } from '../../cpu/vmx/processor.js';
import { defaultEntryChecker } from '../../cpu/vmx/entry-port.js';
import { setMsrBitmapBit } from '../msr-bitmap.js';
import { buildEpt01, defaultEpt01Policy, HostPagePool, type Ept01Policy } from '../ept02/ept01.js';

/** Where L0 keeps its own pages in host memory (all below L1 RAM, which the default EPT01 puts at 256 GiB). */
export const L0Layout = {
  VMXON: 0x1000n,
  VMCS01: 0x2000n,
  VMCS02: 0x3000n,
  /** The hardware shadow VMCS vmcs01's link pointer names while L1 has a current vmcs12. */
  SHADOW_VMCS: 0x4000n,
  VMREAD_BITMAP: 0x5000n,
  VMWRITE_BITMAP: 0x6000n,
  MSR_BITMAP01: 0x7000n,
  MSR_BITMAP02: 0x8000n,
  /** Backs vmcs12 pointers to L1 memory L0 has no page for (sdm profile). */
  UNBACKED_PAGE: 0x9000n,
  EPT01_TABLES: 0x10_0000n,
  EPT01_TABLE_PAGES: 1024,
  POOL: 0x100_0000n,
  POOL_PAGES: 0x3_0000,
} as const;

/** Host physical memory as the processor's port: every address below 2^MAXPHYADDR is RAM. */
export class HostPort implements VmxPhysicalAccess {
  private readonly limit: bigint;

  constructor(readonly memory: PhysicalMemory<Hpa>, maxPhysAddr: number) {
    this.limit = 1n << BigInt(maxPhysAddr);
  }

  read(addr: bigint, size: 1 | 2 | 4 | 8): bigint | undefined {
    if (addr < 0n || addr + BigInt(size) > this.limit) return undefined;
    const a = HPA.of(addr);
    switch (size) {
      case 1: return BigInt(this.memory.readU8(a));
      case 2: return BigInt(this.memory.readU16(a));
      case 4: return BigInt(this.memory.readU32(a));
      case 8: return this.memory.readU64(a);
    }
  }

  write(addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): boolean {
    if (addr < 0n || addr + BigInt(size) > this.limit) return false;
    const a = HPA.of(addr);
    const v = BigInt.asUintN(size * 8, value);
    const r = size === 8 ? this.memory.writeU64(a, v) : size === 4 ? this.memory.writeU32(a, Number(v))
      : size === 2 ? this.memory.writeU16(a, Number(v)) : this.memory.writeU8(a, Number(v));
    if (!r.ok) throw new Error(`turtles bug: host memory exceeded its page budget: ${r.error.message}`);
    return true;
  }

  /** Bulk write of L0's own data (bitmaps). */
  writeBytesTo(addr: bigint, bytes: Uint8Array): void {
    const r = this.memory.write(HPA.of(addr), bytes);
    if (!r.ok) throw new Error(`turtles bug: host memory exceeded its page budget: ${r.error.message}`);
  }
}

/** CR0 bits L0 owns for L1 (vmcs01's CR0 guest/host mask): L1's values live in vmcs01's CR0 read shadow. */
export const L1_CR0_OWNED_BY_L0 = Cr0.CD | Cr0.NW;

/** The VMX capability MSRs (0x480–0x493): L0 intercepts L1's reads and answers with what it advertises. */
export const VMX_MSR_FIRST = 0x480;
export const VMX_MSR_LAST = 0x493;

export interface Hardware {
  readonly host: CpuModel;
  readonly memory: PhysicalMemory<Hpa>;
  readonly port: HostPort;
  readonly cpu: VmxProcessor;
  readonly hostCaps: EptCapabilities;
  readonly ept01: Ept<L1Gpa, Hpa>;
  readonly eptp01: bigint;
  readonly pages: HostPagePool;
  readonly policy: Ept01Policy;
}

export interface HardwareOptions {
  readonly host: CpuModel;
  readonly policy?: Ept01Policy;
  readonly wrmsrFaults?: (index: number, value: bigint) => boolean;
  readonly rdmsrFaults?: (index: number) => boolean;
  readonly maxHostPages?: number;
}

/** Host memory, processor in VMX root operation (VMXON done), EPT01 built. vmcs01 comes next (setUpVmcs01). */
export function bootHardware(o: HardwareOptions): Hardware {
  const memory = new PhysicalMemory<Hpa>({ space: 'Hpa', maxPages: o.maxHostPages ?? 262_144 });
  const port = new HostPort(memory, o.host.maxPhysAddr);
  const l0State = defaultL1State(o.host);
  l0State.rip = 0xffff_8000_0800_0000n;
  const cpu = new VmxProcessor({
    cpu: o.host, memory: port, state: l0State, entryChecker: defaultEntryChecker,
    ...(o.wrmsrFaults ? { wrmsrFaults: o.wrmsrFaults } : {}), ...(o.rdmsrFaults ? { rdmsrFaults: o.rdmsrFaults } : {}),
  });
  const rev = BigInt(o.host.vmcsRevision);
  for (const p of [L0Layout.VMXON, L0Layout.VMCS01, L0Layout.VMCS02]) port.write(p, 4, rev);
  port.write(L0Layout.SHADOW_VMCS, 4, rev | 0x8000_0000n);
  expectSucceed(cpu.vmxon(L0Layout.VMXON), 'VMXON');
  const hostCaps = eptCapabilities(o.host);
  const policy = o.policy ?? defaultEpt01Policy();
  const e01 = buildEpt01({ host: memory, caps: hostCaps, policy, tableArea: { base: L0Layout.EPT01_TABLES, pages: L0Layout.EPT01_TABLE_PAGES } });
  if (!e01.ok) throw new Error(`turtles bug: L0 could not build EPT01: ${e01.message}`);
  const pages = new HostPagePool(memory, { base: L0Layout.POOL, pages: L0Layout.POOL_PAGES });
  return { host: o.host, memory, port, cpu, hostCaps, ept01: e01.ept, eptp01: e01.eptp, pages, policy };
}

export function expectSucceed(o: VmxInstrOutcome, what: string): void {
  if (o.kind !== 'vmsucceed') throw new Error(`turtles bug: L0's ${what} failed: ${JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
}

/** A control value with the host's must-be-one bits and `want`, checked against the allowed settings. */
function control(host: CpuModel, group: 'pin' | 'primary' | 'secondary' | 'exit' | 'entry', want: number): number {
  const a = host.allowed(group);
  const v = BigInt(want >>> 0) | a.mustBeOne;
  if (!host.controlsValid(group, v)) throw new Error(`turtles bug: the host does not allow ${group} controls 0x${v.toString(16)}`);
  return Number(v) >>> 0;
}

/**
 * Make vmcs01 current and fill it: L1 as the guest (its initial state), L0 as the host, and L0's policy for L1 —
 * EPT01, VPID 1, MSR bitmap intercepting only reads of the VMX capability MSRs, no exception or CR interception, and
 * none of the event exits (external interrupts, NMIs, windows, HLT, timer), so that vmcs02's event controls are
 * vmcs12's (the platform's events are the guest's).
 */
export function setUpVmcs01(hw: Hardware, l1: CpuState): Vmcs {
  const { cpu, host, port } = hw;
  expectSucceed(cpu.vmclear(L0Layout.VMCS01), 'VMCLEAR vmcs01');
  expectSucceed(cpu.vmptrld(L0Layout.VMCS01), 'VMPTRLD vmcs01');
  const v = cpu.currentVmcs!;
  // MSR bitmap: 1 = exit. Reads of the VMX capability MSRs exit; everything else passes through.
  const bitmap = new Uint8Array(4096);
  for (let m = VMX_MSR_FIRST; m <= VMX_MSR_LAST; m++) setMsrBitmapBit(bitmap, m, false, true);
  port.writeBytesTo(L0Layout.MSR_BITMAP01, bitmap);
  v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, control(host, 'pin', 0));
  v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, control(host, 'primary', Primary.USE_MSR_BITMAPS | Primary.ACTIVATE_SECONDARY_CONTROLS));
  v.set32(Field.SECONDARY_VM_EXEC_CONTROL, control(host, 'secondary', Secondary.ENABLE_EPT | Secondary.ENABLE_VPID));
  v.set32(Field.VM_EXIT_CONTROLS, control(host, 'exit',
    ExitCtl.HOST_ADDRESS_SPACE_SIZE | ExitCtl.SAVE_DEBUG_CONTROLS | ExitCtl.SAVE_IA32_PAT | ExitCtl.LOAD_IA32_PAT | ExitCtl.SAVE_IA32_EFER | ExitCtl.LOAD_IA32_EFER));
  v.set32(Field.VM_ENTRY_CONTROLS, control(host, 'entry', EntryCtl.LOAD_DEBUG_CONTROLS | EntryCtl.LOAD_IA32_PAT | EntryCtl.LOAD_IA32_EFER));
  v.set(Field.MSR_BITMAP, L0Layout.MSR_BITMAP01);
  v.set(Field.EPT_POINTER, hw.eptp01);
  v.set32(Field.VIRTUAL_PROCESSOR_ID, 1);
  v.set(Field.VMREAD_BITMAP, L0Layout.VMREAD_BITMAP);
  v.set(Field.VMWRITE_BITMAP, L0Layout.VMWRITE_BITMAP);
  v.set(Field.VMCS_LINK_POINTER, 0xffff_ffff_ffff_ffffn);
  // CR0.CD/NW are never switched by VM entries or exits (SDM 26.3.2.1, 27.5.1): L0 keeps L1's values in the read shadow.
  v.set(Field.CR0_GUEST_HOST_MASK, L1_CR0_OWNED_BY_L0);
  v.set(Field.CR0_READ_SHADOW, l1.cr0);
  // Host state: L0 as the processor holds it now.
  const s = cpu.state;
  v.set(Field.HOST_CR0, s.cr0);
  v.set(Field.HOST_CR3, s.cr3);
  v.set(Field.HOST_CR4, s.cr4);
  v.set32(Field.HOST_CS_SELECTOR, s.segSel[Seg.CS]!);
  for (const [f, seg] of [[Field.HOST_SS_SELECTOR, Seg.SS], [Field.HOST_DS_SELECTOR, Seg.DS], [Field.HOST_ES_SELECTOR, Seg.ES],
    [Field.HOST_FS_SELECTOR, Seg.FS], [Field.HOST_GS_SELECTOR, Seg.GS], [Field.HOST_TR_SELECTOR, Seg.TR]] as const) v.set32(f, s.segSel[seg]!);
  v.set(Field.HOST_FS_BASE, s.segBase[Seg.FS]!);
  v.set(Field.HOST_GS_BASE, s.segBase[Seg.GS]!);
  v.set(Field.HOST_TR_BASE, s.segBase[Seg.TR]!);
  v.set(Field.HOST_GDTR_BASE, s.gdtrBase);
  v.set(Field.HOST_IDTR_BASE, s.idtrBase);
  v.set(Field.HOST_IA32_EFER, s.efer);
  v.set(Field.HOST_IA32_PAT, s.msr(Msr.IA32_PAT));
  v.set(Field.HOST_RIP, s.rip);
  v.set(Field.HOST_RSP, s.gpr[4]!);
  writeGuest(v, host, l1);
  return v;
}

/** The guest-state area of `vmcs` from `state` (the processor's own save routine, so nothing is forgotten). */
export function writeGuest(vmcs: Vmcs, host: CpuModel, state: CpuState, pdptes?: readonly bigint[]): void {
  saveGuestState(vmcs, host, state, { timerExpired: false, ...(pdptes ? { pdptes } : {}) });
  // saveGuestState keeps DR7/DEBUGCTL only with "save debug controls"; vmcs01/vmcs02 exits save them, so they are current.
  vmcs.set(Field.GUEST_DR7, state.dr[7]!);
  vmcs.set(Field.GUEST_IA32_DEBUGCTL, state.msr(Msr.IA32_DEBUGCTL));
  vmcs.set(Field.GUEST_IA32_PAT, state.msr(Msr.IA32_PAT));
  vmcs.set(Field.GUEST_IA32_EFER, state.efer);
}

/**
 * Put the state the VMCS does not switch into the processor before a VM entry (what L0 software keeps per guest and
 * restores: GPRs, CR2, CR8, DR0–DR3/DR6, MSRs without a VMCS field); the entry loads the rest from the guest area.
 */
export function copyUnswitched(root: CpuState, guest: CpuState): void {
  root.gpr.set(guest.gpr);
  root.cr2 = guest.cr2;
  root.cr8 = guest.cr8;
  for (const i of [0, 1, 2, 3, 6]) root.dr[i] = guest.dr[i]!;
  root.msrs.clear();
  for (const [k, v] of guest.msrs) root.msrs.set(k, v);
  root.tsc = guest.tsc;
}
