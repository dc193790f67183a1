// Test fixtures for the VMX processor: a page-granular Map-backed physical memory, a 64-bit root state that
// satisfies VMXON's CR fixed bits, and VMCS contents that load cleanly as guest and host state.
// Must not: be imported by src/ (it is test support only).
import { findCpuModel, type CpuModel } from '../../../../src/cpu/cpu-model.js';
import { EntryCtl, ExitCtl } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { CpuState, Seg } from '../../../../src/cpu/state.js';
import type { Vmcs } from '../../../../src/cpu/vmcs.js';
import type { EntryChecker, EntryVerdict } from '../../../../src/cpu/vmx/entry-port.js';
import type { VmxPhysicalAccess } from '../../../../src/cpu/vmx/physical.js';
import { VmxProcessor, type VmxProcessorOptions } from '../../../../src/cpu/vmx/processor.js';

/** Physical memory backed page by page; reads of unmapped pages return undefined, writes to them are dropped. */
export class MapMemory implements VmxPhysicalAccess {
  readonly pages = new Map<bigint, Uint8Array>();

  map(addr: bigint, size = 0x1000): this {
    for (let p = addr >> 12n; p <= (addr + BigInt(size) - 1n) >> 12n; p++) if (!this.pages.has(p)) this.pages.set(p, new Uint8Array(4096));
    return this;
  }

  read(addr: bigint, size: 1 | 2 | 4 | 8): bigint | undefined {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) {
      const a = addr + BigInt(i);
      const page = this.pages.get(a >> 12n);
      if (!page) return undefined;
      v = (v << 8n) | BigInt(page[Number(a & 0xfffn)]!);
    }
    return v;
  }

  write(addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): boolean {
    for (let i = 0; i < size; i++) if (!this.pages.has((addr + BigInt(i)) >> 12n)) return false;
    for (let i = 0; i < size; i++) {
      const a = addr + BigInt(i);
      this.pages.get(a >> 12n)![Number(a & 0xfffn)] = Number((value >> BigInt(8 * i)) & 0xffn);
    }
    return true;
  }

  clone(): MapMemory {
    const m = new MapMemory();
    for (const [k, v] of this.pages) m.pages.set(k, v.slice());
    return m;
  }
}

export const SKYLAKE = findCpuModel('intel-core-i7-6700k')!;
export const CORE2 = findCpuModel('intel-core2-x6800')!;
export const KVM_L1 = findCpuModel('kvm-l1')!;

export const VMXON_PTR = 0x1000n;
export const VMCS_A = 0x2000n;
export const VMCS_B = 0x3000n;
export const VMCS_C = 0x4000n;
export const DATA = 0x8000n;
export const MSR_AREA = 0x9000n;

/** A CPL-0, 64-bit-mode root state with paging on and CR0/CR4 inside the VMX fixed bits. */
export function root64(): CpuState {
  const s = new CpuState();
  s.cr0 = 0x8000_0031n; // PG | NE | ET | PE
  s.cr4 = 0x2020n; // VMXE | PAE
  s.efer = 0xd01n; // NXE | LMA | LME | SCE
  s.cr3 = 0x7000n;
  const flat = (seg: number, sel: number, ar: number) => {
    s.segSel[seg] = sel;
    s.segBase[seg] = 0n;
    s.segLimit[seg] = 0xffff_ffff;
    s.segAr[seg] = ar;
  };
  flat(Seg.CS, 0x08, 0xa09b);
  for (const seg of [Seg.SS, Seg.DS, Seg.ES, Seg.FS, Seg.GS]) flat(seg, 0x10, 0xc093);
  s.segSel[Seg.TR] = 0x18;
  s.segLimit[Seg.TR] = 0x67;
  s.segAr[Seg.TR] = 0x8b;
  s.segAr[Seg.LDTR] = 0x10000;
  s.segSel[Seg.LDTR] = 0;
  s.rflags = 0x2n;
  return s;
}

/** A CPL-0 protected-mode root state with 32-bit paging (not IA-32e): VMX instructions use 32-bit operands. */
export function root32(): CpuState {
  const s = root64();
  s.cr4 = 0x2000n;
  s.efer = 0n;
  s.segAr[Seg.CS] = 0xc09b;
  return s;
}

/** Memory with the VMXON region and three VMCS regions carrying `cpu`'s revision, plus a data page. */
export function standardMemory(cpu: CpuModel): MapMemory {
  const mem = new MapMemory().map(0x1000n, 0x4000).map(DATA).map(MSR_AREA).map(0x7000n);
  for (const p of [VMXON_PTR, VMCS_A, VMCS_B, VMCS_C]) mem.write(p, 4, BigInt(cpu.vmcsRevision));
  return mem;
}

/** Identity translation for tests running with paging enabled. */
export const identity = (linear: bigint) => ({ ok: true as const, phys: linear });

export function checkerReturning(v: EntryVerdict): EntryChecker & { calls: number } {
  const f = (() => {
    f.calls++;
    return v;
  }) as unknown as EntryChecker & { calls: number };
  f.calls = 0;
  return f;
}

export const PASS: EntryVerdict = { kind: 'pass' };

export function processor(cpu: CpuModel = SKYLAKE, extra: Partial<VmxProcessorOptions> = {}): { p: VmxProcessor; mem: MapMemory } {
  const mem = standardMemory(cpu);
  const p = new VmxProcessor({ cpu, memory: mem, state: root64(), translate: identity, entryChecker: checkerReturning(PASS), ...extra });
  return { p, mem };
}

/** A processor after VMXON; optionally with VMCS_A cleared and loaded. */
export function inVmx(cpu: CpuModel = SKYLAKE, loadA = true, extra: Partial<VmxProcessorOptions> = {}): { p: VmxProcessor; mem: MapMemory } {
  const r = processor(cpu, extra);
  expectKind(r.p.vmxon(VMXON_PTR), 'vmsucceed');
  if (loadA) {
    expectKind(r.p.vmclear(VMCS_A), 'vmsucceed');
    expectKind(r.p.vmptrld(VMCS_A), 'vmsucceed');
  }
  return r;
}

export function expectKind<T extends { kind: string }>(o: T, kind: string): T {
  if (o.kind !== kind) throw new Error(`expected outcome ${kind}, got ${JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
  return o;
}

/**
 * Fill `vmcs` with a 64-bit guest and a 64-bit host whose values load without surprises (used with a stub entry
 * checker that passes; the architectural checks are the vmentry engine's business).
 */
export function fillGuestAndHost(vmcs: Vmcs): void {
  vmcs.set32(Field.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST | EntryCtl.LOAD_DEBUG_CONTROLS | 0x11fb);
  vmcs.set32(Field.VM_EXIT_CONTROLS, ExitCtl.HOST_ADDRESS_SPACE_SIZE | ExitCtl.SAVE_DEBUG_CONTROLS | 0x36dfb);
  vmcs.set(Field.GUEST_CR0, 0x8000_0031n);
  vmcs.set(Field.GUEST_CR3, 0x5000n);
  vmcs.set(Field.GUEST_CR4, 0x2020n);
  vmcs.set(Field.GUEST_DR7, 0x400n);
  vmcs.set(Field.GUEST_RIP, 0x40_1000n);
  vmcs.set(Field.GUEST_RSP, 0x40_8000n);
  vmcs.set(Field.GUEST_RFLAGS, 0x202n);
  const segs: [number, number, number, number][] = [
    [Field.GUEST_CS_SELECTOR, Field.GUEST_CS_AR_BYTES, 0x08, 0xa09b],
    [Field.GUEST_SS_SELECTOR, Field.GUEST_SS_AR_BYTES, 0x10, 0xc093],
    [Field.GUEST_DS_SELECTOR, Field.GUEST_DS_AR_BYTES, 0x10, 0xc093],
    [Field.GUEST_ES_SELECTOR, Field.GUEST_ES_AR_BYTES, 0x10, 0xc093],
    [Field.GUEST_FS_SELECTOR, Field.GUEST_FS_AR_BYTES, 0x10, 0xc093],
    [Field.GUEST_GS_SELECTOR, Field.GUEST_GS_AR_BYTES, 0x10, 0xc093],
    [Field.GUEST_TR_SELECTOR, Field.GUEST_TR_AR_BYTES, 0x18, 0x8b],
    [Field.GUEST_LDTR_SELECTOR, Field.GUEST_LDTR_AR_BYTES, 0, 0x10000],
  ];
  for (const [sel, ar, s, a] of segs) {
    vmcs.set32(sel, s);
    vmcs.set32(ar, a);
  }
  for (const lim of [Field.GUEST_CS_LIMIT, Field.GUEST_SS_LIMIT, Field.GUEST_DS_LIMIT, Field.GUEST_ES_LIMIT, Field.GUEST_FS_LIMIT, Field.GUEST_GS_LIMIT]) {
    vmcs.set32(lim, 0xffff_ffff);
  }
  vmcs.set32(Field.GUEST_TR_LIMIT, 0x67);
  vmcs.set(Field.VMCS_LINK_POINTER, 0xffff_ffff_ffff_ffffn);
  vmcs.set(Field.HOST_CR0, 0x8000_0031n);
  vmcs.set(Field.HOST_CR3, 0x7000n);
  vmcs.set(Field.HOST_CR4, 0x2020n);
  vmcs.set32(Field.HOST_CS_SELECTOR, 0x08);
  vmcs.set32(Field.HOST_SS_SELECTOR, 0x10);
  vmcs.set32(Field.HOST_DS_SELECTOR, 0x10);
  vmcs.set32(Field.HOST_ES_SELECTOR, 0x10);
  vmcs.set32(Field.HOST_FS_SELECTOR, 0x10);
  vmcs.set32(Field.HOST_GS_SELECTOR, 0x10);
  vmcs.set32(Field.HOST_TR_SELECTOR, 0x18);
  vmcs.set(Field.HOST_RIP, 0xffff_8000_0000_1000n);
  vmcs.set(Field.HOST_RSP, 0xffff_8000_0000_8000n);
}

export function hex(v: bigint | number): string {
  return '0x' + v.toString(16);
}

/** VMXON, VMCS_A current and filled by `fillGuestAndHost` (then `setup`), VMLAUNCH with a passing stub checker. */
export function entered(cpu: CpuModel = SKYLAKE, setup: (vmcs: Vmcs, mem: MapMemory) => void = () => {}, extra: Partial<VmxProcessorOptions> = {}) {
  const r = inVmx(cpu, true, extra);
  fillGuestAndHost(r.p.currentVmcs!);
  setup(r.p.currentVmcs!, r.mem);
  const entry = r.p.vmlaunch();
  if (entry.kind !== 'vm-entry') throw new Error(`VMLAUNCH did not enter: ${entry.kind}`);
  return { ...r, entry };
}

/** Write MSR-area entry `i` at `base`. */
export function msrEntry(mem: MapMemory, base: bigint, i: number, index: number, value: bigint, reserved = 0): void {
  mem.write(base + BigInt(16 * i), 4, BigInt(index));
  mem.write(base + BigInt(16 * i) + 4n, 4, BigInt(reserved));
  mem.write(base + BigInt(16 * i) + 8n, 8, value);
}
