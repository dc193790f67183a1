// Shared fast-check arbitraries for nesting: vmcs12 configurations (validVmcs(kvm-l1) with random controls, masks,
// bitmaps, TSC values, or perturbed one field at a time), vmcs01 policies of L0 (validVmcs(host) with L0 choices),
// L1 memory holding vmcs12's bitmaps, and L2 events — plus a deliberately simple "does this event exit under this
// VMCS" model (SDM 25.1–25.2) written independently of src/nested, for P-SUPERSET and P-REFLECT.
import fc from 'fast-check';
import { DEFAULT_CPU_MODEL, findCpuModel, type CpuModel } from '../../../src/cpu/cpu-model.js';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { Pin, Primary, Secondary } from '../../../src/cpu/generated/controls.js';
import { Vmcs } from '../../../src/cpu/vmcs.js';
import { validVmcs } from '../../../src/cpu/vmentry/valid-state.js';

/** L0's hardware (the default host preset) and what KVM advertises to L1 on it. */
export const HOST_MODEL: CpuModel = findCpuModel(DEFAULT_CPU_MODEL)!;
export const L1_MODEL: CpuModel = findCpuModel('kvm-l1')!;

/** L1-physical addresses of vmcs12's pages in the generated memory. */
export const L1_PAGES = { ioA: 0x10000n, ioB: 0x11000n, msr: 0x12000n, vmread: 0x14000n, vmwrite: 0x15000n } as const;
/** Host-physical address of L0's MSR bitmap for L1 and of the merged vmcs02 bitmap. */
export const HOST_PAGES = { msr01: 0x9000_0000n, msr02: 0x9000_1000n } as const;

/** A sparse physical memory of 4 KiB pages; reads outside mapped pages are unreadable (null). */
export class PageMemory {
  readonly pages = new Map<bigint, Uint8Array>();

  map(base: bigint, bytes: Uint8Array): void {
    this.pages.set(base, bytes);
  }

  read = (gpa: bigint, size: number): Uint8Array | null => {
    const out = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const a = gpa + BigInt(i);
      const page = this.pages.get(a & ~0xfffn);
      if (!page) return null;
      out[i] = page[Number(a & 0xfffn)]!;
    }
    return out;
  };
}

const u32 = (x: bigint): number => Number(x & 0xffff_ffffn) >>> 0;

/** A control word allowed by `model` for `group`: must-be-one bits plus a random subset of may-be-one bits. */
export function controlsArb(model: CpuModel, group: 'pin' | 'primary' | 'secondary' | 'exit' | 'entry'): fc.Arbitrary<number> {
  const a = model.allowed(group);
  return fc.nat({ max: 0xffff_ffff }).map((r) => (u32(a.mustBeOne) | (r & u32(a.mayBeOne))) >>> 0);
}

const page = fc.uint8Array({ minLength: 4096, maxLength: 4096 });
/** A bitmap page biased towards few set bits so both outcomes of a bitmap test are common. */
const sparsePage = fc.array(fc.nat({ max: 4095 * 8 + 7 }), { maxLength: 64 }).map((bits) => {
  const p = new Uint8Array(4096);
  for (const b of bits) p[b >> 3] = p[b >> 3]! | (1 << (b & 7));
  return p;
});
export const bitmapPageArb = fc.oneof(sparsePage, page, fc.constant(new Uint8Array(4096)), fc.constant(new Uint8Array(4096).fill(0xff)));

const cr0Bits = fc.bigInt({ min: 0n, max: 0xffff_ffffn });
const cr4Bits = fc.bigInt({ min: 0n, max: 0x3f_ffffn });
const u64Arb = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
/** Multipliers around 1.0 (1/16 … 16) in 48-bit fixed point, plus exactly 1.0. */
export const tscMultiplierArb = fc.oneof(fc.constant(1n << 48n), fc.bigInt({ min: 1n << 44n, max: 1n << 52n }));

export interface Vmcs12World {
  readonly vmcs12: Vmcs;
  readonly memory: PageMemory;
}

/** A vmcs12 on kvm-l1: validVmcs plus random controls, CR masks/shadows/values, exception bitmap, PFEC, bitmaps, TSC. */
export const vmcs12WorldArb: fc.Arbitrary<Vmcs12World> = fc
  .record({
    pin: controlsArb(L1_MODEL, 'pin'), primary: controlsArb(L1_MODEL, 'primary'), secondary: controlsArb(L1_MODEL, 'secondary'),
    exit: controlsArb(L1_MODEL, 'exit'), entry: controlsArb(L1_MODEL, 'entry'),
    cr0: cr0Bits, cr0Mask: cr0Bits, cr0Shadow: cr0Bits, cr4: cr4Bits, cr4Mask: cr4Bits, cr4Shadow: cr4Bits,
    eb: fc.nat({ max: 0xffff_ffff }), pfecMask: fc.oneof(fc.constant(0), fc.nat({ max: 0x1f }), fc.nat({ max: 0xffff_ffff })),
    pfecMatch: fc.oneof(fc.constant(0), fc.nat({ max: 0x1f }), fc.nat({ max: 0xffff_ffff })),
    ioA: bitmapPageArb, ioB: bitmapPageArb, msr: bitmapPageArb, vmread: bitmapPageArb, vmwrite: bitmapPageArb,
    tscOffset: u64Arb, tscMultiplier: tscMultiplierArb, encls: u64Arb, xss: fc.oneof(fc.constant(0n), u64Arb),
    entryIntr: fc.oneof(fc.constant(0), fc.constant(0x8000_0700), fc.nat({ max: 0xffff_ffff })),
  })
  .map((r) => {
    const v = validVmcs(L1_MODEL);
    v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, r.pin);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, r.primary);
    v.set32(Field.SECONDARY_VM_EXEC_CONTROL, r.secondary);
    v.set32(Field.VM_EXIT_CONTROLS, r.exit);
    v.set32(Field.VM_ENTRY_CONTROLS, r.entry);
    v.set(Field.GUEST_CR0, r.cr0);
    v.set(Field.CR0_GUEST_HOST_MASK, r.cr0Mask);
    v.set(Field.CR0_READ_SHADOW, r.cr0Shadow);
    v.set(Field.GUEST_CR4, r.cr4);
    v.set(Field.CR4_GUEST_HOST_MASK, r.cr4Mask);
    v.set(Field.CR4_READ_SHADOW, r.cr4Shadow);
    v.set32(Field.EXCEPTION_BITMAP, r.eb);
    v.set32(Field.PAGE_FAULT_ERROR_CODE_MASK, r.pfecMask);
    v.set32(Field.PAGE_FAULT_ERROR_CODE_MATCH, r.pfecMatch);
    v.set(Field.IO_BITMAP_A, L1_PAGES.ioA);
    v.set(Field.IO_BITMAP_B, L1_PAGES.ioB);
    v.set(Field.MSR_BITMAP, L1_PAGES.msr);
    v.set(Field.VMREAD_BITMAP, L1_PAGES.vmread);
    v.set(Field.VMWRITE_BITMAP, L1_PAGES.vmwrite);
    v.set(Field.TSC_OFFSET, r.tscOffset);
    v.set(Field.TSC_MULTIPLIER, r.tscMultiplier);
    v.set(Field.ENCLS_EXITING_BITMAP, r.encls);
    v.set(Field.XSS_EXIT_BITMAP, r.xss);
    v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, r.entryIntr);
    const memory = new PageMemory();
    memory.map(L1_PAGES.ioA, r.ioA);
    memory.map(L1_PAGES.ioB, r.ioB);
    memory.map(L1_PAGES.msr, r.msr);
    memory.map(L1_PAGES.vmread, r.vmread);
    memory.map(L1_PAGES.vmwrite, r.vmwrite);
    return { vmcs12: v, memory };
  });

/** validVmcs(kvm-l1) with exactly one field perturbed (a random value in a random full field). */
export const perturbedVmcs12Arb: fc.Arbitrary<{ vmcs12: Vmcs; field: number }> = fc
  .record({ index: fc.nat(), value: u64Arb })
  .map(({ index, value }) => {
    const v = validVmcs(L1_MODEL);
    const encodings = Object.values(Field).filter((e) => (e & 1) === 0);
    const field = encodings[index % encodings.length]!;
    v.set(field, value);
    return { vmcs12: v, field };
  });

export interface Vmcs01Policy {
  readonly vmcs01: Vmcs;
  readonly msrBitmap01: Uint8Array;
}

/** L0's vmcs01 for L1 on the host: validVmcs(host) with random L0 choices of controls, EB, CR masks and TSC. */
export const vmcs01PolicyArb: fc.Arbitrary<Vmcs01Policy> = fc
  .record({
    pin: controlsArb(HOST_MODEL, 'pin'), primary: controlsArb(HOST_MODEL, 'primary'), secondary: controlsArb(HOST_MODEL, 'secondary'),
    eb: fc.nat({ max: 0xffff_ffff }), cr0Mask: cr0Bits, cr4Mask: cr4Bits, tscOffset: u64Arb, tscMultiplier: tscMultiplierArb, msr: bitmapPageArb,
  })
  .map((r) => {
    const v = validVmcs(HOST_MODEL);
    v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, r.pin);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, r.primary);
    v.set32(Field.SECONDARY_VM_EXEC_CONTROL, r.secondary);
    v.set32(Field.EXCEPTION_BITMAP, r.eb);
    v.set(Field.CR0_GUEST_HOST_MASK, r.cr0Mask);
    v.set(Field.CR4_GUEST_HOST_MASK, r.cr4Mask);
    v.set(Field.TSC_OFFSET, r.tscOffset);
    v.set(Field.TSC_MULTIPLIER, r.tscMultiplier);
    v.set(Field.MSR_BITMAP, HOST_PAGES.msr01);
    return { vmcs01: v, msrBitmap01: r.msr };
  });

// ---------------------------------------------------------------------------------------------------------------
// L2 events and the simple exit model.

export type InstrName =
  | 'HLT' | 'INVLPG' | 'RDTSC' | 'RDTSCP' | 'RDPMC' | 'MWAIT' | 'MONITOR' | 'PAUSE' | 'WBINVD' | 'RDRAND' | 'RDSEED'
  | 'INVPCID' | 'MOV_DR' | 'SGDT' | 'SLDT' | 'CPUID' | 'INVD' | 'XSETBV' | 'VMCALL' | 'VMLAUNCH' | 'GETSEC' | 'UMWAIT';

export type L2Event =
  | { readonly kind: 'exception'; readonly vector: number; readonly errorCode: number }
  | { readonly kind: 'nmi' }
  | { readonly kind: 'external-interrupt' }
  | { readonly kind: 'window'; readonly which: 'interrupt' | 'nmi' }
  | { readonly kind: 'io'; readonly port: number; readonly size: 1 | 2 | 4; readonly input: boolean }
  | { readonly kind: 'msr'; readonly msr: number; readonly write: boolean }
  | { readonly kind: 'mov-to-cr'; readonly cr: 0 | 3 | 4 | 8; readonly value: bigint }
  | { readonly kind: 'mov-from-cr'; readonly cr: 3 | 8 }
  | { readonly kind: 'clts' }
  | { readonly kind: 'lmsw'; readonly src: number }
  | { readonly kind: 'instr'; readonly name: InstrName }
  | { readonly kind: 'vmread' | 'vmwrite'; readonly encoding: number }
  | { readonly kind: 'xsaves'; readonly xss: bigint }
  | { readonly kind: 'encls'; readonly leaf: number };

const INSTRS: InstrName[] = ['HLT', 'INVLPG', 'RDTSC', 'RDTSCP', 'RDPMC', 'MWAIT', 'MONITOR', 'PAUSE', 'WBINVD', 'RDRAND', 'RDSEED', 'INVPCID', 'MOV_DR', 'SGDT', 'SLDT', 'CPUID', 'INVD', 'XSETBV', 'VMCALL', 'VMLAUNCH', 'GETSEC', 'UMWAIT'];
const msrIndexArb = fc.oneof(fc.nat({ max: 0x1fff }), fc.integer({ min: 0xc000_0000, max: 0xc000_1fff }), fc.constantFrom(0xc000_0100, 0xc000_0101, 0xc000_0102, 0x48, 0x49, 0x10b, 0x808, 0x80b, 0x83f), fc.nat({ max: 0xffff_ffff }));

export const l2EventArb: fc.Arbitrary<L2Event> = fc.oneof(
  fc.record({ kind: fc.constant('exception' as const), vector: fc.integer({ min: 0, max: 31 }).filter((v) => v !== 2), errorCode: fc.oneof(fc.nat({ max: 0x1f }), fc.nat({ max: 0xffff_ffff })) }),
  fc.constant({ kind: 'nmi' as const }),
  fc.constant({ kind: 'external-interrupt' as const }),
  fc.record({ kind: fc.constant('window' as const), which: fc.constantFrom('interrupt' as const, 'nmi' as const) }),
  fc.record({ kind: fc.constant('io' as const), port: fc.oneof(fc.nat({ max: 0xffff }), fc.constantFrom(0x7fff, 0x8000, 0xfffe, 0xffff)), size: fc.constantFrom(1 as const, 2 as const, 4 as const), input: fc.boolean() }),
  fc.record({ kind: fc.constant('msr' as const), msr: msrIndexArb, write: fc.boolean() }),
  fc.record({ kind: fc.constant('mov-to-cr' as const), cr: fc.constantFrom(0 as const, 3 as const, 4 as const, 8 as const), value: fc.bigInt({ min: 0n, max: 0xffff_ffffn }) }),
  fc.record({ kind: fc.constant('mov-from-cr' as const), cr: fc.constantFrom(3 as const, 8 as const) }),
  fc.constant({ kind: 'clts' as const }),
  fc.record({ kind: fc.constant('lmsw' as const), src: fc.nat({ max: 0xffff }) }),
  fc.record({ kind: fc.constant('instr' as const), name: fc.constantFrom(...INSTRS) }),
  fc.record({ kind: fc.constantFrom('vmread' as const, 'vmwrite' as const), encoding: fc.oneof(fc.constantFrom(...Object.values(Field)), fc.nat({ max: 0xffff_ffff })) }),
  fc.record({ kind: fc.constant('xsaves' as const), xss: fc.oneof(fc.constant(0n), u64Arb) }),
  fc.record({ kind: fc.constant('encls' as const), leaf: fc.oneof(fc.nat({ max: 70 }), fc.nat({ max: 0xffff_ffff })) }),
);

const bitOf = (mem: (gpa: bigint, size: number) => Uint8Array | null, base: bigint, index: number): boolean => {
  const b = mem(base + BigInt(index >> 3), 1);
  return b === null ? true : ((b[0]! >> (index & 7)) & 1) === 1;
};

/**
 * Would `e` cause a VM exit on a CPU running `v` (SDM 25.1.2–25.1.3, 25.2)? Deliberately direct: one case per event,
 * reading the controls and bitmaps as the SDM words them. `mem` reads the physical memory the VMCS's pointers name.
 */
export function simpleExits(v: Vmcs, e: L2Event, mem: (gpa: bigint, size: number) => Uint8Array | null): boolean {
  const pin = v.lo(Field.PIN_BASED_VM_EXEC_CONTROL);
  const pri = v.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
  const sec = pri & Primary.ACTIVATE_SECONDARY_CONTROLS ? v.lo(Field.SECONDARY_VM_EXEC_CONTROL) : 0;
  const has = (word: number, bit: number): boolean => (word & bit) !== 0;
  switch (e.kind) {
    case 'exception': {
      const eb = v.lo(Field.EXCEPTION_BITMAP);
      const bitSet = ((eb >>> e.vector) & 1) === 1;
      if (e.vector !== 14) return bitSet;
      const matches = ((e.errorCode & v.lo(Field.PAGE_FAULT_ERROR_CODE_MASK)) >>> 0) === v.lo(Field.PAGE_FAULT_ERROR_CODE_MATCH);
      return bitSet ? matches : !matches;
    }
    case 'nmi':
      return has(pin, Pin.NMI_EXITING);
    case 'external-interrupt':
      return has(pin, Pin.EXTERNAL_INTERRUPT_EXITING);
    case 'window':
      return has(pri, e.which === 'interrupt' ? Primary.INTERRUPT_WINDOW_EXITING : Primary.NMI_WINDOW_EXITING);
    case 'io': {
      if (!has(pri, Primary.USE_IO_BITMAPS)) return has(pri, Primary.UNCONDITIONAL_IO_EXITING);
      for (let p = e.port; p < e.port + e.size; p++) {
        if (p > 0xffff) return true;
        if (bitOf(mem, p < 0x8000 ? v.get(Field.IO_BITMAP_A) : v.get(Field.IO_BITMAP_B), p & 0x7fff)) return true;
      }
      return false;
    }
    case 'msr': {
      if (!has(pri, Primary.USE_MSR_BITMAPS)) return true;
      const m = e.msr >>> 0;
      let base = v.get(Field.MSR_BITMAP) + (e.write ? 2048n : 0n);
      let idx: number;
      if (m <= 0x1fff) idx = m;
      else if (m >= 0xc000_0000 && m <= 0xc000_1fff) {
        idx = m - 0xc000_0000;
        base += 1024n;
      } else return true;
      return bitOf(mem, base, idx);
    }
    case 'mov-to-cr': {
      if (e.cr === 0) return (v.get(Field.CR0_GUEST_HOST_MASK) & (e.value ^ v.get(Field.CR0_READ_SHADOW))) !== 0n;
      if (e.cr === 4) return (v.get(Field.CR4_GUEST_HOST_MASK) & (e.value ^ v.get(Field.CR4_READ_SHADOW))) !== 0n;
      if (e.cr === 3) return has(pri, Primary.CR3_LOAD_EXITING);
      return has(pri, Primary.CR8_LOAD_EXITING);
    }
    case 'mov-from-cr':
      return has(pri, e.cr === 3 ? Primary.CR3_STORE_EXITING : Primary.CR8_STORE_EXITING);
    case 'clts':
      return (v.get(Field.CR0_GUEST_HOST_MASK) & 8n) !== 0n && (v.get(Field.CR0_READ_SHADOW) & 8n) !== 0n;
    case 'lmsw': {
      const mask = v.get(Field.CR0_GUEST_HOST_MASK);
      const shadow = v.get(Field.CR0_READ_SHADOW);
      const src = BigInt(e.src & 0xf);
      if ((mask & 0xen & (src ^ shadow)) !== 0n) return true;
      return (mask & 1n) !== 0n && (shadow & 1n) === 0n && (src & 1n) !== 0n;
    }
    case 'instr':
      switch (e.name) {
        case 'HLT': return has(pri, Primary.HLT_EXITING);
        case 'INVLPG': return has(pri, Primary.INVLPG_EXITING);
        case 'RDTSC': return has(pri, Primary.RDTSC_EXITING);
        case 'RDTSCP': return has(sec, Secondary.ENABLE_RDTSCP) && has(pri, Primary.RDTSC_EXITING);
        case 'RDPMC': return has(pri, Primary.RDPMC_EXITING);
        case 'MWAIT': return has(pri, Primary.MWAIT_EXITING);
        case 'MONITOR': return has(pri, Primary.MONITOR_EXITING);
        case 'PAUSE': return has(pri, Primary.PAUSE_EXITING);
        case 'WBINVD': return has(sec, Secondary.WBINVD_EXITING);
        case 'RDRAND': return has(sec, Secondary.RDRAND_EXITING);
        case 'RDSEED': return has(sec, Secondary.RDSEED_EXITING);
        case 'INVPCID': return has(sec, Secondary.ENABLE_INVPCID) && has(pri, Primary.INVLPG_EXITING);
        case 'MOV_DR': return has(pri, Primary.MOV_DR_EXITING);
        case 'SGDT': case 'SLDT': return has(sec, Secondary.DESCRIPTOR_TABLE_EXITING);
        case 'UMWAIT': return has(sec, Secondary.ENABLE_USER_WAIT_AND_PAUSE) && has(pri, Primary.RDTSC_EXITING);
        default: return true; // CPUID, INVD, XSETBV, VMCALL, VMLAUNCH, GETSEC: unconditional
      }
    case 'vmread':
    case 'vmwrite': {
      if (!has(sec, Secondary.VMCS_SHADOWING)) return true;
      if (e.encoding >>> 15 !== 0) return true;
      return bitOf(mem, v.get(e.kind === 'vmread' ? Field.VMREAD_BITMAP : Field.VMWRITE_BITMAP), e.encoding & 0x7fff);
    }
    case 'xsaves':
      return has(sec, Secondary.ENABLE_XSAVES_XRSTORS) && (e.xss & v.get(Field.XSS_EXIT_BITMAP)) !== 0n;
    case 'encls': {
      if (!has(sec, Secondary.ENABLE_ENCLS_EXITING)) return false;
      const bit = e.leaf > 63 ? 63 : e.leaf;
      return ((v.get(Field.ENCLS_EXITING_BITMAP) >> BigInt(bit)) & 1n) === 1n;
    }
  }
}
