// What the built-in L1 does before its first VM entry, kvm-unit-tests style: read the VMX capability MSRs, fit the
// controls to them, write L2's environment, EPT12 and the MSR lists into its memory, VMXON, VMCLEAR + VMPTRLD, VMWRITE
// the whole VMCS (controls, host state so L1 resumes where it is, guest state for the chosen L2 mode, PAE PDPTEs under
// EPT). Only L1Machine calls. Must not: handle exits (builtin.ts). SDM Vol. 3C 24, 26.2–26.4, App. A (capabilities).
import { L1_GPA, L2_GPA, type L2Gpa } from '../address.js';
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import { EptBit } from '../ept/entry.js';
import { buildL2Environment, isLongMode, L2Layout, needsUnrestrictedGuest, type L2Mode } from '../interp/l2-env.js';
import { PhysicalMemory, type MemorySnapshot } from '../memory.js';
import { CpuState, Cr0, Cr4, Efer, Msr, Seg } from '../state.js';
import { GUEST_SEGMENT_FIELDS } from '../vmx/guest-state.js';
import { L1Layout, L2_ENV_RANGES, type L1Config, type L1Action, type MsrListEntry } from './config.js';
import { Ept12Editor, buildEpt12, type Ept12Mapping4Build } from './ept12.js';
import type { L1Machine } from './machine.js';

const u32 = (x: bigint): number => Number(x & 0xffff_ffffn) >>> 0;
const INVALID = 0xffff_ffff_ffff_ffffn;

/** Capability MSR values as L1 reads them (SDM App. A); allowed settings use the TRUE_ MSRs when BASIC[55] = 1. */
export interface L1Caps {
  readonly revision: number;
  readonly pin: bigint;
  readonly primary: bigint;
  readonly secondary: bigint;
  readonly exit: bigint;
  readonly entry: bigint;
  readonly cr0Fixed0: bigint;
  readonly cr0Fixed1: bigint;
  readonly cr4Fixed0: bigint;
  readonly cr4Fixed1: bigint;
}

export function readCaps(m: L1Machine): L1Caps {
  const basic = m.rdmsr(0x480);
  const t = ((basic >> 55n) & 1n) === 1n;
  const primary = m.rdmsr(t ? 0x48e : 0x482);
  return {
    revision: u32(basic) & 0x7fff_ffff,
    pin: m.rdmsr(t ? 0x48d : 0x481),
    primary,
    secondary: (primary >> 63n) & 1n ? m.rdmsr(0x48b) : 0n,
    exit: m.rdmsr(t ? 0x48f : 0x483),
    entry: m.rdmsr(t ? 0x490 : 0x484),
    cr0Fixed0: m.rdmsr(0x486),
    cr0Fixed1: m.rdmsr(0x487),
    cr4Fixed0: m.rdmsr(0x488),
    cr4Fixed1: m.rdmsr(0x489),
  };
}

/** (wanted & allowed-1) | must-be-1 (kvm-unit-tests' `ctrl_*_rev` use). */
function fit(wanted: number, cap: bigint): number {
  return ((wanted & u32(cap >> 32n)) | u32(cap)) >>> 0;
}

export interface FinalControls {
  readonly pin: number;
  readonly primary: number;
  readonly secondary: number;
  readonly exit: number;
  readonly entry: number;
}

/** The page-modification log of the built-in L1 ("enable PML"): free L1 memory below L1Layout.EPT_TABLES. */
export const PML_LOG = 0x0104_0000n;

/** The control words the built-in L1 writes for `config` (see L1Config.controlsMode). */
export function finalControls(config: L1Config, caps: L1Caps): FinalControls {
  const c = config.controls ?? {};
  if (config.controlsMode === 'exact') {
    return { pin: (c.pin ?? 0) >>> 0, primary: (c.primary ?? 0) >>> 0, secondary: (c.secondary ?? 0) >>> 0, exit: (c.exit ?? 0) >>> 0, entry: (c.entry ?? 0) >>> 0 };
  }
  const long = isLongMode(config.l2.mode);
  let pin = c.pin ?? 0;
  let primary = c.primary ?? 0;
  let secondary = c.secondary ?? 0;
  let exit = c.exit ?? 0;
  let entry = c.entry ?? 0;
  if (config.preemptionTimer !== undefined) pin |= Pin.ACTIVATE_VMX_PREEMPTION_TIMER;
  if (config.tscOffset !== undefined || config.tscMultiplier !== undefined) primary |= Primary.USE_TSC_OFFSETTING;
  if (config.ioBitmap) primary |= Primary.USE_IO_BITMAPS;
  if (config.msrBitmap) primary |= Primary.USE_MSR_BITMAPS;
  if (usesEpt(config)) secondary |= Secondary.ENABLE_EPT;
  if (needsUnrestrictedGuest(config.l2.mode)) secondary |= Secondary.UNRESTRICTED_GUEST;
  if (config.vpid !== undefined) secondary |= Secondary.ENABLE_VPID;
  if (config.tscMultiplier !== undefined) secondary |= Secondary.USE_TSC_SCALING;
  if (secondary !== 0) primary |= Primary.ACTIVATE_SECONDARY_CONTROLS;
  exit |= ExitCtl.HOST_ADDRESS_SPACE_SIZE;
  entry = long ? entry | EntryCtl.IA32E_MODE_GUEST : entry & ~EntryCtl.IA32E_MODE_GUEST;
  const p = fit(primary, caps.primary);
  return {
    pin: fit(pin, caps.pin),
    primary: p,
    secondary: p & Primary.ACTIVATE_SECONDARY_CONTROLS ? fit(secondary, caps.secondary) : 0,
    exit: fit(exit, caps.exit),
    entry: fit(entry, caps.entry),
  };
}

/** EPT12 is built when the config asks for it, the L2 mode needs unrestricted guest (real, unpaged protected32), or
 * the controls name EPT or a control that requires it. Paged 32-bit and PAE L2s run with or without EPT. */
export function usesEpt(config: L1Config): boolean {
  const needEpt = Secondary.ENABLE_EPT | Secondary.UNRESTRICTED_GUEST | Secondary.ENABLE_PML | Secondary.MODE_BASED_EXECUTE_CONTROL;
  return config.ept !== undefined || needsUnrestrictedGuest(config.l2.mode) || ((config.controls?.secondary ?? 0) & needEpt) !== 0;
}

// ---------------------------------------------------------------------------------------------------------------
// L2 environment and EPT12.

const templates = new Map<string, { snapshot: MemorySnapshot; state: CpuState }>();

/** L2's environment for a mode (built once per mode and privilege, then copied). */
function environment(mode: L2Mode, user: boolean): { memory: PhysicalMemory<L2Gpa>; state: CpuState } {
  const key = `${mode}:${user}`;
  let t = templates.get(key);
  if (!t) {
    const memory = new PhysicalMemory<L2Gpa>({ space: 'L2Gpa' });
    const state = new CpuState();
    buildL2Environment(state, { mode, memory, space: L2_GPA, code: new Uint8Array(0), ...(user ? { user: true } : {}) });
    t = { snapshot: memory.snapshot(), state };
    templates.set(key, t);
  }
  const memory = new PhysicalMemory<L2Gpa>({ space: 'L2Gpa' });
  memory.restore(t.snapshot);
  return { memory, state: t.state.clone() };
}

/**
 * Software walk of the staged EPT12 (4 or 5 levels) for L1's own bookkeeping: L2Gpa → L1Gpa of the leaf, including a
 * leaf L1 mapped without rights (L1 still places the page's contents there).
 */
function walkStaged(tables: Map<bigint, DataView>, root: bigint, levels: number, gpa: bigint): bigint | undefined {
  let table = root;
  for (let l = levels; l >= 1; l--) {
    const view = tables.get(table);
    if (!view) return undefined;
    const e = view.getBigUint64(Number((gpa >> BigInt(12 + 9 * (l - 1))) & 0x1ffn) * 8, true);
    const frame = e & 0x000f_ffff_ffff_f000n;
    const leaf = l === 1 || ((l === 2 || l === 3) && (e & EptBit.PS) !== 0n);
    if ((e & 7n) === 0n && (e & EptBit.XU) === 0n && !(leaf && frame !== 0n)) return undefined;
    if (leaf) {
      const size = 1n << BigInt(12 + 9 * (l - 1));
      return (frame & ~(size - 1n)) | (gpa & (size - 1n));
    }
    table = frame;
  }
  return undefined;
}

export interface L2Placement {
  /** Where L2-physical `gpa` lives in L1 memory (undefined: not mapped). */
  readonly toL1: (gpa: bigint) => bigint | undefined;
  readonly eptp?: bigint;
  readonly editor?: Ept12Editor;
  /** PAE paging: the four PDPTEs at L2's CR3 as L2's memory holds them (the GUEST_PDPTRn values under EPT). */
  readonly pdptes?: readonly [bigint, bigint, bigint, bigint];
}

/** Write EPT12 (if used) and L2's environment, code and data into L1 memory. Returns where L2 memory lives. */
export function placeL2(m: L1Machine, config: L1Config, guest: CpuState): L2Placement {
  const l2 = config.l2;
  const env = environment(l2.mode, l2.user === true);
  guest.gpr.set(env.state.gpr);
  Object.assign(guest, { rip: env.state.rip, rflags: env.state.rflags, cr0: env.state.cr0, cr3: env.state.cr3, cr4: env.state.cr4, efer: env.state.efer });
  guest.segSel.set(env.state.segSel);
  guest.segBase.set(env.state.segBase);
  guest.segLimit.set(env.state.segLimit);
  guest.segAr.set(env.state.segAr);
  guest.gdtrBase = env.state.gdtrBase;
  guest.gdtrLimit = env.state.gdtrLimit;
  guest.idtrBase = env.state.idtrBase;
  guest.idtrLimit = env.state.idtrLimit;
  const put = (gpa: bigint, bytes: Uint8Array) => {
    const r = env.memory.write(L2_GPA.of(gpa), bytes);
    if (!r.ok) throw new Error(`turtles bug: L2 image does not fit: ${r.error.message}`);
  };
  put(L2Layout.CODE, l2.code);
  for (const d of l2.data ?? []) put(d.gpa, d.bytes);
  // Read after `data`, which may overwrite the PDPT (an entry-failure test); SDM 4.4.1: the table is 32-byte aligned.
  const pdpt = guest.cr3 & 0xffff_ffe0n;
  const pdptes = paePaging(guest) ? ([0, 1, 2, 3].map((i) => env.memory.readU64(L2_GPA.of(pdpt + BigInt(8 * i)))) as [bigint, bigint, bigint, bigint]) : undefined;

  let placement: L2Placement = { toL1: (gpa) => gpa, ...(pdptes ? { pdptes } : {}) };
  if (usesEpt(config)) {
    const spec = config.ept ?? {};
    const levels = spec.levels ?? 4;
    const user: Ept12Mapping4Build[] = (spec.mappings ?? []).map((x) => ({
      l2: x.l2, l1: x.l1, pageSize: x.pageSize ?? '4K',
      rights: { read: x.read ?? true, write: x.write ?? true, execute: x.execute ?? true, ...(x.memType !== undefined ? { memType: x.memType } : {}) },
    }));
    const covered = (page: bigint) => user.some((u) => {
      const size = u.pageSize === '4K' ? 0x1000n : u.pageSize === '2M' ? 0x20_0000n : 0x4000_0000n;
      return page >= (u.l2 & ~(size - 1n)) && page < (u.l2 & ~(size - 1n)) + size;
    });
    const defaults: Ept12Mapping4Build[] = [];
    if (!spec.noDefaultMap) {
      const pages = new Set<bigint>();
      for (const [s, e] of L2_ENV_RANGES) for (let p = s; p < e; p += 0x1000n) pages.add(p);
      for (const d of l2.data ?? []) {
        for (let p = d.gpa & ~0xfffn; p < d.gpa + BigInt(d.bytes.length); p += 0x1000n) pages.add(p);
      }
      for (const p of [...pages].sort((a, b) => (a < b ? -1 : 1))) {
        if (!covered(p)) defaults.push({ l2: p, l1: L1Layout.L2_BASE + p, pageSize: '4K', rights: {} });
      }
    }
    const built = buildEpt12(L1Layout.EPT_TABLES, L1Layout.EPT_TABLE_PAGES, levels, spec.accessedDirty === true, [...user, ...defaults]);
    m.writeBytes(L1_GPA.of(L1Layout.EPT_TABLES), built.bytes);
    const tables = new Map<bigint, DataView>();
    for (let i = 0; i < built.tablesUsed; i++) {
      tables.set(L1Layout.EPT_TABLES + BigInt(i) * 0x1000n, new DataView(built.bytes.buffer, built.bytes.byteOffset + i * 4096, 4096));
    }
    const editor = new Ept12Editor(
      m, L1Layout.EPT_TABLES, levels, L1Layout.EPT_TABLES + BigInt(built.tablesUsed) * 0x1000n,
      L1Layout.EPT_TABLES + BigInt(L1Layout.EPT_TABLE_PAGES) * 0x1000n,
    );
    placement = { toL1: (gpa) => walkStaged(tables, L1Layout.EPT_TABLES, levels, gpa), eptp: built.eptp, editor, ...(pdptes ? { pdptes } : {}) };
  }

  // Copy the image page by page, merging runs that are contiguous on both sides into one write.
  let runL2 = -1n;
  let runL1 = -1n;
  let chunks: Uint8Array[] = [];
  const flush = () => {
    if (chunks.length === 0) return;
    const bytes = new Uint8Array(chunks.length * 4096);
    chunks.forEach((c, i) => bytes.set(c, i * 4096));
    m.writeBytes(L1_GPA.of(runL1), bytes);
    chunks = [];
  };
  for (const page of env.memory.pageNumbers()) {
    const gpa = page << 12n;
    const l1 = placement.toL1(gpa);
    if (l1 === undefined) continue;
    const next = runL2 + BigInt(chunks.length) * 0x1000n;
    if (chunks.length === 0 || gpa !== next || l1 !== runL1 + BigInt(chunks.length) * 0x1000n) {
      flush();
      runL2 = gpa;
      runL1 = l1;
    }
    chunks.push(env.memory.read(L2_GPA.of(gpa), 4096));
  }
  flush();
  return placement;
}

/** PAE paging outside IA-32e mode: CR0.PG = 1, CR4.PAE = 1, EFER.LMA = 0 (SDM 4.1.1). */
function paePaging(s: CpuState): boolean {
  return (s.cr0 & Cr0.PG) !== 0n && (s.cr4 & Cr4.PAE) !== 0n && (s.efer & Efer.LMA) === 0n;
}

// ---------------------------------------------------------------------------------------------------------------
// The VMCS.

/** One VM-entry/VM-exit MSR-list entry (SDM 24.7.2, 24.8.2 Table 24-12): index, reserved dword, value. */
function msrListBytes(entries: readonly MsrListEntry[]): Uint8Array {
  const bytes = new Uint8Array(entries.length * 16);
  const dv = new DataView(bytes.buffer);
  entries.forEach(([index, value, reserved], i) => {
    dv.setUint32(i * 16, index >>> 0, true);
    dv.setUint32(i * 16 + 4, (reserved ?? 0) >>> 0, true);
    dv.setBigUint64(i * 16 + 8, BigInt.asUintN(64, value), true);
  });
  return bytes;
}

function bitmapPage(bits: Iterable<number>): Uint8Array {
  const p = new Uint8Array(4096);
  for (const b of bits) if (b >= 0 && b < 4096 * 8) p[b >> 3]! |= 1 << (b & 7);
  return p;
}

function msrBitmap(read: readonly number[], write: readonly number[]): Uint8Array {
  const p = new Uint8Array(4096);
  const set = (msr: number, offset: number) => {
    const x = msr >>> 0;
    let n: number;
    if (x <= 0x1fff) n = x;
    else if (x >= 0xc000_0000 && x <= 0xc000_1fff) { n = x - 0xc000_0000; offset += 1024; }
    else return;
    p[offset + (n >> 3)]! |= 1 << (n & 7);
  };
  for (const x of read) set(x, 0);
  for (const x of write) set(x, 2048);
  return p;
}

/** Whether any rule of the policy uses `kind`. */
export function policyUses(config: L1Config, kind: L1Action['kind']): boolean {
  return (config.policy?.rules ?? []).some((r) => r.actions.some((a) => a.kind === kind));
}

/** Memory the VMCS points at: bitmaps, VMX regions' revision identifiers. */
export function writeVmxMemory(m: L1Machine, config: L1Config, caps: L1Caps, c: FinalControls): void {
  const rev = BigInt(caps.revision);
  m.writeMemory(L1_GPA.of(L1Layout.VMXON), 4, rev);
  m.writeMemory(L1_GPA.of(L1Layout.VMCS), 4, rev);
  if (policyUses(config, 'switch-vmcs')) m.writeMemory(L1_GPA.of(L1Layout.VMCS_ALT), 4, rev);
  if (c.secondary & Secondary.VMCS_SHADOWING) {
    m.writeMemory(L1_GPA.of(L1Layout.SHADOW_VMCS), 4, rev | 0x8000_0000n);
    const through = new Set(config.shadowFields ?? []);
    const page = new Uint8Array(4096).fill(0xff);
    for (const e of through) if (e >= 0 && e < 0x8000) page[e >> 3]! &= ~(1 << (e & 7));
    m.writeBytes(L1_GPA.of(L1Layout.VMREAD_BITMAP), page);
    m.writeBytes(L1_GPA.of(L1Layout.VMWRITE_BITMAP), page);
  }
  if (config.ioBitmap) {
    const ports = config.ioBitmap;
    m.writeBytes(L1_GPA.of(L1Layout.IO_BITMAP_A), bitmapPage(ports.filter((p) => p < 0x8000)));
    m.writeBytes(L1_GPA.of(L1Layout.IO_BITMAP_B), bitmapPage(ports.filter((p) => p >= 0x8000).map((p) => p - 0x8000)));
  }
  if (config.msrBitmap) m.writeBytes(L1_GPA.of(L1Layout.MSR_BITMAP), msrBitmap(config.msrBitmap.read ?? [], config.msrBitmap.write ?? []));
  const lists = config.msrLists;
  if (lists?.entryLoad?.length) m.writeBytes(L1_GPA.of(L1Layout.MSR_ENTRY_LOAD), msrListBytes(lists.entryLoad));
  // Exit-store values start at 0: the processor fills them in at each exit (SDM 27.4).
  if (lists?.exitStore?.length) m.writeBytes(L1_GPA.of(L1Layout.MSR_EXIT_STORE), msrListBytes(lists.exitStore.map((i) => [i, 0n])));
  if (lists?.exitLoad?.length) m.writeBytes(L1_GPA.of(L1Layout.MSR_EXIT_LOAD), msrListBytes(lists.exitLoad));
  for (const d of config.l1Data ?? []) m.writeBytes(L1_GPA.of(d.gpa), d.bytes);
}

/** Every VMWRITE of the initial VMCS, in order: controls, host state, guest state, then the config's raw writes. */
export function vmcsWrites(config: L1Config, caps: L1Caps, c: FinalControls, host: CpuState, guest: CpuState, placement: L2Placement): [number, bigint][] {
  const w: [number, bigint][] = [];
  const put = (e: number, v: bigint | number) => w.push([e, BigInt.asUintN(64, BigInt(v))]);
  // ---- controls (SDM 24.6-24.8) ----
  put(Field.PIN_BASED_VM_EXEC_CONTROL, c.pin);
  put(Field.CPU_BASED_VM_EXEC_CONTROL, c.primary);
  if (c.primary & Primary.ACTIVATE_SECONDARY_CONTROLS || config.controlsMode === 'exact') put(Field.SECONDARY_VM_EXEC_CONTROL, c.secondary);
  put(Field.VM_EXIT_CONTROLS, c.exit);
  put(Field.VM_ENTRY_CONTROLS, c.entry);
  put(Field.EXCEPTION_BITMAP, config.exceptionBitmap ?? 0);
  put(Field.PAGE_FAULT_ERROR_CODE_MASK, config.pfecMask ?? 0);
  put(Field.PAGE_FAULT_ERROR_CODE_MATCH, config.pfecMatch ?? 0);
  const targets = config.cr3Targets ?? [];
  put(Field.CR3_TARGET_COUNT, targets.length);
  const targetFields = [Field.CR3_TARGET_VALUE0, Field.CR3_TARGET_VALUE1, Field.CR3_TARGET_VALUE2, Field.CR3_TARGET_VALUE3];
  targets.slice(0, 4).forEach((t, i) => put(targetFields[i]!, t));
  if (c.primary & Primary.USE_IO_BITMAPS) {
    put(Field.IO_BITMAP_A, L1Layout.IO_BITMAP_A);
    put(Field.IO_BITMAP_B, L1Layout.IO_BITMAP_B);
  }
  if (c.primary & Primary.USE_MSR_BITMAPS) put(Field.MSR_BITMAP, L1Layout.MSR_BITMAP);
  const lists = config.msrLists;
  if (lists?.entryLoad?.length) {
    put(Field.VM_ENTRY_MSR_LOAD_COUNT, lists.entryLoad.length);
    put(Field.VM_ENTRY_MSR_LOAD_ADDR, L1Layout.MSR_ENTRY_LOAD);
  }
  if (lists?.exitStore?.length) {
    put(Field.VM_EXIT_MSR_STORE_COUNT, lists.exitStore.length);
    put(Field.VM_EXIT_MSR_STORE_ADDR, L1Layout.MSR_EXIT_STORE);
  }
  if (lists?.exitLoad?.length) {
    put(Field.VM_EXIT_MSR_LOAD_COUNT, lists.exitLoad.length);
    put(Field.VM_EXIT_MSR_LOAD_ADDR, L1Layout.MSR_EXIT_LOAD);
  }
  put(Field.CR0_GUEST_HOST_MASK, config.cr0Mask ?? 0n);
  put(Field.CR0_READ_SHADOW, config.cr0Shadow ?? 0n);
  put(Field.CR4_GUEST_HOST_MASK, config.cr4Mask ?? 0n);
  put(Field.CR4_READ_SHADOW, config.cr4Shadow ?? 0n);
  if (config.tscOffset !== undefined) put(Field.TSC_OFFSET, config.tscOffset);
  if (config.tscMultiplier !== undefined) put(Field.TSC_MULTIPLIER, config.tscMultiplier);
  // kvm-unit-tests gives every VMCS a VPID; 1 unless the config names one.
  if (config.vpid !== undefined || c.secondary & Secondary.ENABLE_VPID) put(Field.VIRTUAL_PROCESSOR_ID, config.vpid ?? 1);
  if (placement.eptp !== undefined) put(Field.EPT_POINTER, placement.eptp);
  if (c.primary & Primary.USE_TPR_SHADOW) {
    put(Field.VIRTUAL_APIC_PAGE_ADDR, L1Layout.VIRTUAL_APIC);
    put(Field.TPR_THRESHOLD, config.tprThreshold ?? 0);
  }
  if (c.secondary & Secondary.ENABLE_PML) {
    // A 4-KiB log page between the MSR lists and EPT12, filled from entry 511 down (SDM 29.3.6).
    put(Field.PML_ADDRESS, PML_LOG);
    put(Field.GUEST_PML_INDEX, 511n);
  }
  if (c.secondary & Secondary.ENABLE_XSAVES_XRSTORS) put(Field.XSS_EXIT_BITMAP, config.xssExitBitmap ?? 0n);
  if (c.secondary & Secondary.ENABLE_ENCLS_EXITING) put(Field.ENCLS_EXITING_BITMAP, config.enclsExitingBitmap ?? 0n);
  if (c.secondary & Secondary.ENABLE_VM_FUNCTIONS) {
    put(Field.VM_FUNCTION_CONTROL, config.vmfuncControls ?? 0n);
    if ((config.vmfuncControls ?? 0n) & 1n) put(Field.EPTP_LIST_ADDRESS, L1Layout.EPTP_LIST);
  }
  if (c.secondary & Secondary.VMCS_SHADOWING) {
    put(Field.VMREAD_BITMAP, L1Layout.VMREAD_BITMAP);
    put(Field.VMWRITE_BITMAP, L1Layout.VMWRITE_BITMAP);
  }
  const inj = config.injection;
  if (inj) {
    const info = (0x8000_0000 | ((inj.type & 7) << 8) | (inj.vector & 0xff) | (inj.errorCode !== undefined ? 0x800 : 0)) >>> 0;
    put(Field.VM_ENTRY_INTR_INFO_FIELD, info);
    if (inj.errorCode !== undefined) put(Field.VM_ENTRY_EXCEPTION_ERROR_CODE, inj.errorCode);
    if (inj.instructionLength !== undefined) put(Field.VM_ENTRY_INSTRUCTION_LEN, inj.instructionLength);
  }

  // ---- host state: L1 resumes where it is now (SDM 27.5) ----
  put(Field.HOST_CR0, host.cr0);
  put(Field.HOST_CR3, host.cr3);
  put(Field.HOST_CR4, host.cr4);
  put(Field.HOST_ES_SELECTOR, host.segSel[Seg.ES]! & 0xf8);
  put(Field.HOST_CS_SELECTOR, host.segSel[Seg.CS]! & 0xf8);
  put(Field.HOST_SS_SELECTOR, host.segSel[Seg.SS]! & 0xf8);
  put(Field.HOST_DS_SELECTOR, host.segSel[Seg.DS]! & 0xf8);
  put(Field.HOST_FS_SELECTOR, host.segSel[Seg.FS]! & 0xf8);
  put(Field.HOST_GS_SELECTOR, host.segSel[Seg.GS]! & 0xf8);
  put(Field.HOST_TR_SELECTOR, host.segSel[Seg.TR]! & 0xf8);
  put(Field.HOST_FS_BASE, host.segBase[Seg.FS]!);
  put(Field.HOST_GS_BASE, host.segBase[Seg.GS]!);
  put(Field.HOST_TR_BASE, host.segBase[Seg.TR]!);
  put(Field.HOST_GDTR_BASE, host.gdtrBase);
  put(Field.HOST_IDTR_BASE, host.idtrBase);
  put(Field.HOST_IA32_SYSENTER_CS, host.msr(Msr.IA32_SYSENTER_CS) & 0xffff_ffffn);
  put(Field.HOST_IA32_SYSENTER_ESP, host.msr(Msr.IA32_SYSENTER_ESP));
  put(Field.HOST_IA32_SYSENTER_EIP, host.msr(Msr.IA32_SYSENTER_EIP));
  if (c.exit & ExitCtl.LOAD_IA32_EFER) put(Field.HOST_IA32_EFER, host.efer);
  if (c.exit & ExitCtl.LOAD_IA32_PAT) put(Field.HOST_IA32_PAT, host.msr(Msr.IA32_PAT));
  if (c.exit & ExitCtl.LOAD_IA32_PERF_GLOBAL_CTRL) put(Field.HOST_IA32_PERF_GLOBAL_CTRL, host.msr(Msr.IA32_PERF_GLOBAL_CTRL));
  put(Field.HOST_RSP, host.gpr[4]!);
  put(Field.HOST_RIP, host.rip);

  // ---- guest state: L2's environment, inside the CR fixed bits (SDM 26.3.1.1) ----
  const unrestricted = (c.secondary & Secondary.UNRESTRICTED_GUEST) !== 0;
  const cr0Must = unrestricted ? caps.cr0Fixed0 & ~0x8000_0001n : caps.cr0Fixed0;
  put(Field.GUEST_CR0, (guest.cr0 | cr0Must) & caps.cr0Fixed1);
  put(Field.GUEST_CR3, guest.cr3);
  // CR4.LA57 is kept even where IA32_VMX_CR4_FIXED1 forbids it: dropping it would run 5-level tables as 4-level
  // ones; kept, VM entry fails the CR4 fixed-bit check visibly.
  put(Field.GUEST_CR4, (guest.cr4 | caps.cr4Fixed0) & (caps.cr4Fixed1 | (guest.cr4 & Cr4.LA57)));
  // With EPT, VM entry takes the PAE PDPTEs from these fields rather than from memory (SDM 26.3.1.6, 26.3.2.4).
  if (placement.pdptes && c.secondary & Secondary.ENABLE_EPT && c.primary & Primary.ACTIVATE_SECONDARY_CONTROLS) {
    [Field.GUEST_PDPTR0, Field.GUEST_PDPTR1, Field.GUEST_PDPTR2, Field.GUEST_PDPTR3].forEach((f, i) => put(f, placement.pdptes![i]!));
  }
  put(Field.GUEST_DR7, 0x400n);
  GUEST_SEGMENT_FIELDS.forEach((f, seg) => {
    put(f.sel, guest.segSel[seg]!);
    put(f.base, guest.segBase[seg]!);
    put(f.limit, guest.segLimit[seg]!);
    put(f.ar, guest.segAr[seg]!);
  });
  put(Field.GUEST_GDTR_BASE, guest.gdtrBase);
  put(Field.GUEST_GDTR_LIMIT, guest.gdtrLimit);
  put(Field.GUEST_IDTR_BASE, guest.idtrBase);
  put(Field.GUEST_IDTR_LIMIT, guest.idtrLimit);
  put(Field.GUEST_RSP, guest.gpr[4]!);
  put(Field.GUEST_RIP, guest.rip);
  put(Field.GUEST_RFLAGS, 0x2n | (config.l2.rflags ?? 0n));
  put(Field.GUEST_SYSENTER_CS, 0);
  put(Field.GUEST_SYSENTER_ESP, 0);
  put(Field.GUEST_SYSENTER_EIP, 0);
  put(Field.GUEST_IA32_DEBUGCTL, 0);
  if (c.entry & EntryCtl.LOAD_IA32_EFER) put(Field.GUEST_IA32_EFER, guest.efer);
  if (c.entry & EntryCtl.LOAD_IA32_PAT) put(Field.GUEST_IA32_PAT, guest.msr(Msr.IA32_PAT));
  if (c.entry & EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL) put(Field.GUEST_IA32_PERF_GLOBAL_CTRL, 0);
  put(Field.GUEST_INTERRUPTIBILITY_INFO, 0);
  put(Field.GUEST_ACTIVITY_STATE, 0);
  put(Field.GUEST_PENDING_DBG_EXCEPTIONS, 0);
  put(Field.VMCS_LINK_POINTER, c.secondary & Secondary.VMCS_SHADOWING ? L1Layout.SHADOW_VMCS : INVALID);
  if (config.preemptionTimer !== undefined) put(Field.VMX_PREEMPTION_TIMER_VALUE, config.preemptionTimer);

  for (const [e, v] of config.vmcsWrites ?? []) put(e, v);
  return w;
}
