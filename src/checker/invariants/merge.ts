// Merge invariant at an L2 entry: every vmcs02 field has provenance naming its merge rule, whose recorded inputs are the
// actual vmcs01/vmcs12/L0 values and reproduce the value; the fields that decide exits and what L2 sees are re-derived
// here from reference §5.2–5.4 without src/nested/merge. Must not: trust provenance for those fields.
// Reference: DESIGN.md §3 (merge); nested-vmx.md §5.2–5.4; SDM 24.6, 25.2, 26.3.
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../../cpu/generated/controls.js';
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { Efer } from '../../cpu/state.js';
import { fieldDef, slotFields, slotOf, VMCS_SLOT_COUNT, widthMask, type Vmcs } from '../../cpu/vmcs.js';
import { EXIT_INFO_RULE, FIELD_RULES, MERGE_RULES } from '../../nested/merge/merge.js';
import { InputLookup } from '../../nested/merge/rule-kit.js';
import type { FieldProvenance, L0MergeInputs, ProvenanceInput } from '../../nested/merge/types.js';
import { Deviation, type L0Profile } from '../../nested/profile.js';
import { hexValue, type Divergence } from '../divergence.js';
import { holdsValue, misquoted, RecordFactsCache } from './merge-quotes.js';

export interface MergeCheckInput {
  /** Event (L1 step) of the L2 entry. */
  readonly event: number;
  readonly vmcs01: Vmcs;
  readonly vmcs12: Vmcs;
  readonly l0: L0MergeInputs;
  readonly profile: L0Profile;
  readonly vmcs02: Vmcs;
  readonly provenance: readonly FieldProvenance[];
  /** The MSR-bitmap pages (L0's for L1, L1's for L2, the merged one), when the caller can read them. */
  readonly msrBitmaps?: { readonly bitmap01: Uint8Array | null; readonly bitmap12: Uint8Array | null; readonly bitmap02: Uint8Array | null };
}

const M64 = (1n << 64n) - 1n;
const ONE = 1n << 48n;
const PF = 1 << 14;

const SEGS = ['ES', 'CS', 'SS', 'DS', 'FS', 'GS', 'LDTR', 'TR'];
/** Guest register state L2 gets from vmcs12 on the emulated VMLAUNCH/VMRESUME (reference §5.2; SDM 26.3.2). */
const GUEST_FROM_VMCS12: readonly string[] = [
  ...SEGS.flatMap((s) => [`GUEST_${s}_SELECTOR`, `GUEST_${s}_BASE`, `GUEST_${s}_LIMIT`, `GUEST_${s}_AR_BYTES`]),
  'GUEST_GDTR_BASE', 'GUEST_GDTR_LIMIT', 'GUEST_IDTR_BASE', 'GUEST_IDTR_LIMIT', 'GUEST_RSP', 'GUEST_RIP', 'GUEST_RFLAGS',
  'GUEST_SYSENTER_CS', 'GUEST_SYSENTER_ESP', 'GUEST_SYSENTER_EIP', 'GUEST_PENDING_DBG_EXCEPTIONS', 'GUEST_INTERRUPTIBILITY_INFO',
];

const GUEST_FROM_VMCS12_ENCODINGS: readonly number[] = GUEST_FROM_VMCS12.map((name) => (Field as Record<string, number>)[name]!);
const HOST_STATE_ENCODINGS: readonly number[] = slotFields().filter((f) => f.type === 'host state').map((f) => f.encoding);

const SDM: Record<string, string> = {
  'merge.pin-controls': 'SDM 24.6.1; reference §5.2', 'merge.primary-controls': 'SDM 24.6.2; reference §5.2',
  'merge.secondary-controls': 'SDM 24.6.2; reference §5.2', 'merge.entry-controls': 'SDM 24.8.1; reference §5.2',
  'merge.exit-controls': 'SDM 24.7.1; reference §5.2', 'merge.exception-bitmap': 'SDM 24.6.3, 25.2; reference §5.2',
  'merge.pfec-mask': 'SDM 24.6.3, 25.2', 'merge.pfec-match': 'SDM 24.6.3, 25.2', 'merge.cr0-mask': 'SDM 24.6.6, 25.3',
  'merge.cr4-mask': 'SDM 24.6.6, 25.3', 'merge.cr0-read-shadow': 'SDM 24.6.6, 25.3; reference §5.2',
  'merge.cr4-read-shadow': 'SDM 24.6.6, 25.3; reference §5.2', 'merge.guest-cr0': 'SDM 26.3.2.1', 'merge.guest-cr4': 'SDM 26.3.2.1',
  'merge.tsc-offset': 'SDM 25.3; reference §5.3', 'merge.tsc-multiplier': 'SDM 25.3; reference §5.3', 'merge.guest-state': 'SDM 26.3.2',
  'merge.host-state': 'SDM 24.5; reference §5.2', 'merge.ept-pointer': 'SDM 24.6.11; reference §8.6', 'merge.vpid': 'SDM 24.6.12; reference §5.6',
  'merge.msr-bitmap': 'SDM 24.6.9; reference §5.4', 'merge.entry-event-injection': 'SDM 24.8.3, 26.6; reference §5.7',
  'merge.provenance': 'DESIGN.md §3 (merge)',
};

/**
 * What a VMCS reads back for `encoding` after `value` is stored there (Vmcs.set then Vmcs.get): truncated to the
 * field width, or to bits 31:0 for a high-half encoding. Same result as storing into a scratch copy of vmcs02.
 */
function stored(encoding: number, value: bigint): bigint {
  if (encoding & 1) return value & 0xffff_ffffn;
  const def = fieldDef(encoding);
  if (!def) throw new Error(`turtles bug: VMCS encoding 0x${encoding.toString(16)} is not in the field table`);
  return value & widthMask(def.width);
}

/** CR0 bits VM entry never loads from GUEST_CR0: ET, reserved 15:6, 17, 28:19, NW, CD (SDM 26.3.2.1). */
const CR0_NOT_LOADED_BY_ENTRY = 0x10n | 0xffc0n | (1n << 17n) | 0x1ff8_0000n | (3n << 29n);

function sdmOf(rule: string): string {
  return SDM[rule] ?? 'SDM 26.2–26.3; reference §5.2';
}

function effSecondary(v: Vmcs): number {
  return v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.ACTIVATE_SECONDARY_CONTROLS ? v.lo(Field.SECONDARY_VM_EXEC_CONTROL) : 0;
}

/** (a · b) >> 48 on the 128-bit product, as the CPU scales TSC values (SDM 25.3). */
function fixedMul(a: bigint, b: bigint): bigint {
  return ((a & M64) * (b & M64)) >> 48n & M64;
}

/** Effective (offset, multiplier) a VMCS applies to RDTSC: scaling only together with offsetting (SDM 25.3). */
function tscOf(v: Vmcs): { off: bigint; mul: bigint } {
  const offsetting = (v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.USE_TSC_OFFSETTING) !== 0;
  const scaling = offsetting && (effSecondary(v) & Secondary.USE_TSC_SCALING) !== 0;
  return { off: offsetting ? v.get(Field.TSC_OFFSET) : 0n, mul: scaling ? v.get(Field.TSC_MULTIPLIER) : ONE };
}

/**
 * The values §5.2–5.4 require for the fields L2 or exit decisions depend on, written from the reference text (not from
 * src/nested/merge). Entries are (field, rule, expected); a field left out is checked through its provenance only.
 */
function derive(i: MergeCheckInput, put: (field: number, rule: string, expected: bigint) => void): void {
  const { vmcs01: v01, vmcs12: v12, l0, vmcs02: v02 } = i;
  const real = l0.realEntry;
  const unbackedDev = i.profile.deviations.has(Deviation.UNBACKED_VMCS12_PAGES);

  // Pin-based: L0's plus L1's, except L1's preemption timer (emulated, §5.5); posted interrupts only when L1 asks.
  const pin12 = v12.lo(Field.PIN_BASED_VM_EXEC_CONTROL);
  let pin = (v01.lo(Field.PIN_BASED_VM_EXEC_CONTROL) | (pin12 & ~Pin.ACTIVATE_VMX_PREEMPTION_TIMER)) & ~Pin.PROCESS_POSTED_INTERRUPTS;
  if (pin12 & Pin.PROCESS_POSTED_INTERRUPTS && !(l0.postedIntrDesc === null && unbackedDev)) pin |= Pin.PROCESS_POSTED_INTERRUPTS;
  put(Field.PIN_BASED_VM_EXEC_CONTROL, 'merge.pin-controls', BigInt(pin >>> 0));

  // Primary: every exiting control of L1 is kept; windows and TPR shadow follow L1 (and L0's own window needs);
  // I/O always exits to L0 (L1's I/O bitmaps are consulted by L0); MSR bitmaps only if the merged page exists.
  const p12 = v12.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
  const windows = Primary.INTERRUPT_WINDOW_EXITING | Primary.NMI_WINDOW_EXITING | Primary.USE_TPR_SHADOW;
  let p = (v01.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~windows) | p12;
  if (l0.requestInterruptWindow) p |= Primary.INTERRUPT_WINDOW_EXITING;
  if (l0.requestNmiWindow) p |= Primary.NMI_WINDOW_EXITING;
  p &= ~(Primary.ACTIVATE_TERTIARY_CONTROLS | Primary.USE_IO_BITMAPS | Primary.USE_MSR_BITMAPS);
  p |= Primary.UNCONDITIONAL_IO_EXITING;
  if (!(p & Primary.USE_TPR_SHADOW)) p |= Primary.CR8_LOAD_EXITING | Primary.CR8_STORE_EXITING;
  if (p12 & Primary.USE_MSR_BITMAPS && l0.msrBitmap02 !== null) p |= Primary.USE_MSR_BITMAPS;
  const p02 = v02.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
  // kvm N2 may drop the TPR shadow for an unbacked virtual-APIC page: accept exactly that difference.
  const tprDropped = unbackedDev && l0.virtualApicPage === null && (p & Primary.USE_TPR_SHADOW) !== 0 && (p02 & Primary.USE_TPR_SHADOW) === 0;
  put(Field.CPU_BASED_VM_EXEC_CONTROL, 'merge.primary-controls', BigInt((tprDropped ? p & ~Primary.USE_TPR_SHADOW : p) >>> 0));

  // Secondary: EPT/VPID are L0's; the APIC-virtualization family and descriptor-table exiting come from L1 only;
  // PML and VMCS shadowing are emulated; unrestricted guest only if L1 asks.
  const fromL1Only = Secondary.VIRTUALIZE_APIC_ACCESSES | Secondary.VIRTUALIZE_X2APIC_MODE | Secondary.ENABLE_INVPCID | Secondary.ENABLE_RDTSCP
    | Secondary.ENABLE_XSAVES_XRSTORS | Secondary.ENABLE_USER_WAIT_AND_PAUSE | Secondary.VIRTUAL_INTERRUPT_DELIVERY
    | Secondary.APIC_REGISTER_VIRTUALIZATION | Secondary.ENABLE_VM_FUNCTIONS | Secondary.DESCRIPTOR_TABLE_EXITING;
  const s12 = effSecondary(v12);
  let s = (effSecondary(v01) & ~fromL1Only) | (s12 & ~(Secondary.ENABLE_EPT | Secondary.ENABLE_VPID));
  s &= ~(Secondary.ENABLE_PML | Secondary.VMCS_SHADOWING | Secondary.EPT_VIOLATION_VE);
  if (!(s12 & Secondary.UNRESTRICTED_GUEST)) s &= ~Secondary.UNRESTRICTED_GUEST;
  if (l0.emulatesUmip && (v12.get(Field.GUEST_CR4) & (1n << 11n)) !== 0n) s |= Secondary.DESCRIPTOR_TABLE_EXITING;
  put(Field.SECONDARY_VM_EXEC_CONTROL, 'merge.secondary-controls', BigInt(s >>> 0));

  // Exception bitmap: L1's vectors plus L0's, #PF from L0 only as "every #PF" (PFEC 0/0), else L1's #PF filter as is.
  let eb = (l0.exceptionBitmap & ~PF) | v12.lo(Field.EXCEPTION_BITMAP);
  if (l0.needsPfIntercept) eb |= PF;
  put(Field.EXCEPTION_BITMAP, 'merge.exception-bitmap', BigInt(eb >>> 0));
  put(Field.PAGE_FAULT_ERROR_CODE_MASK, 'merge.pfec-mask', l0.needsPfIntercept ? 0n : v12.get(Field.PAGE_FAULT_ERROR_CODE_MASK));
  put(Field.PAGE_FAULT_ERROR_CODE_MATCH, 'merge.pfec-match', l0.needsPfIntercept ? 0n : v12.get(Field.PAGE_FAULT_ERROR_CODE_MATCH));

  // CR masks: a bit is L2's only if L0 and L1 both leave it to the guest and L0 does not force it.
  for (const cr of [0, 4] as const) {
    const owned = (cr === 0 ? l0.cr0GuestOwned : l0.cr4GuestOwned) & ~((cr === 0 ? l0.cr0AlwaysOn | l0.cr0AlwaysOff : l0.cr4AlwaysOn | l0.cr4AlwaysOff));
    const mask12 = v12.get(cr === 0 ? Field.CR0_GUEST_HOST_MASK : Field.CR4_GUEST_HOST_MASK);
    put(cr === 0 ? Field.CR0_GUEST_HOST_MASK : Field.CR4_GUEST_HOST_MASK, `merge.cr${cr}-mask`, ~(owned & ~mask12) & M64);
    if (!real) continue;
    // What L2 reads under vmcs12 (L1-owned bits from L1's shadow), and the hardware CR with L0's forced bits.
    const g12 = v12.get(cr === 0 ? Field.GUEST_CR0 : Field.GUEST_CR4);
    const sh12 = v12.get(cr === 0 ? Field.CR0_READ_SHADOW : Field.CR4_READ_SHADOW);
    // CR0.ET/NW/CD and the reserved bits are never loaded by VM entry (SDM 26.3.2.1): L2 has L1's (KVM: vmcs12's).
    const kept = cr === 0 && !i.profile.deviations.has(Deviation.GUEST_CR0_UNLOADED_BITS_FROM_VMCS12) ? CR0_NOT_LOADED_BY_ENTRY : 0n;
    const seen = (g12 & ~kept) | (l0.l1.cr0 & kept);
    put(cr === 0 ? Field.CR0_READ_SHADOW : Field.CR4_READ_SHADOW, `merge.cr${cr}-read-shadow`, ((seen & ~mask12) | (sh12 & mask12)) & M64);
    const on = cr === 0 ? l0.cr0AlwaysOn : l0.cr4AlwaysOn;
    const off = cr === 0 ? l0.cr0AlwaysOff : l0.cr4AlwaysOff;
    put(cr === 0 ? Field.GUEST_CR0 : Field.GUEST_CR4, `merge.guest-cr${cr}`, ((g12 & ~off) | on) & M64);
  }

  // TSC (§5.3): L2's TSC = L1's TSC under vmcs01 composed with vmcs12's offset and multiplier.
  const t01 = tscOf(v01);
  const t12 = tscOf(v12);
  const signed = BigInt.asIntN(64, t01.off);
  const mag = signed < 0n ? -signed : signed;
  const scaledOff = t12.mul === ONE ? t01.off : (signed < 0n ? -fixedMul(mag, t12.mul) : fixedMul(mag, t12.mul)) & M64;
  put(Field.TSC_OFFSET, 'merge.tsc-offset', (scaledOff + t12.off) & M64);
  put(Field.TSC_MULTIPLIER, 'merge.tsc-multiplier', t12.mul === ONE ? t01.mul : fixedMul(t01.mul, t12.mul));

  // Guest register state: vmcs12's on the emulated entry, L2's live state when L0 resumes L2 itself.
  for (const enc of GUEST_FROM_VMCS12_ENCODINGS) {
    const src = real ? v12 : l0.l2Live;
    if (src) put(enc, 'merge.guest-state', src.get(enc));
  }
  if (real) {
    for (const enc of [Field.VM_ENTRY_INTR_INFO_FIELD, Field.VM_ENTRY_EXCEPTION_ERROR_CODE, Field.VM_ENTRY_INSTRUCTION_LEN]) {
      put(enc, 'merge.entry-event-injection', v12.get(enc));
    }
    // EFER (and with it the IA-32e entry control): vmcs12's if loaded, else L1's with LMA = "IA-32e mode guest" and,
    // when the entry sets CR0.PG, LME too (SDM 26.3.2.1); KVM sets both unconditionally (nested_vmx_calc_efer).
    const e12 = v12.lo(Field.VM_ENTRY_CONTROLS);
    const ia32e = (e12 & EntryCtl.IA32E_MODE_GUEST) !== 0;
    const pg = (v12.get(Field.GUEST_CR0) & (1n << 31n)) !== 0n;
    const lme = i.profile.name === 'kvm' || pg ? (ia32e ? Efer.LME : 0n) : l0.l1.efer & Efer.LME;
    const efer = e12 & EntryCtl.LOAD_IA32_EFER ? v12.get(Field.GUEST_IA32_EFER)
      : (l0.l1.efer & ~(Efer.LMA | Efer.LME)) | (ia32e ? Efer.LMA : 0n) | lme;
    put(Field.GUEST_IA32_EFER, 'merge.guest-efer', efer);
    let entry = (v01.lo(Field.VM_ENTRY_CONTROLS) | (e12 & ~EntryCtl.LOAD_IA32_PERF_GLOBAL_CTRL)) & ~(EntryCtl.IA32E_MODE_GUEST | EntryCtl.LOAD_IA32_EFER);
    if (efer & Efer.LMA) entry |= EntryCtl.IA32E_MODE_GUEST;
    if (efer !== l0.host.get(Field.HOST_IA32_EFER)) entry |= EntryCtl.LOAD_IA32_EFER;
    put(Field.VM_ENTRY_CONTROLS, 'merge.entry-controls', BigInt(entry >>> 0));
    let exit = v01.lo(Field.VM_EXIT_CONTROLS) & ~ExitCtl.LOAD_IA32_EFER;
    if (efer !== l0.host.get(Field.HOST_IA32_EFER)) exit |= ExitCtl.LOAD_IA32_EFER;
    // Posted-interrupt processing in vmcs02 needs "acknowledge interrupt on exit" (SDM 26.2.1.1).
    if (pin & Pin.PROCESS_POSTED_INTERRUPTS) exit |= ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT;
    put(Field.VM_EXIT_CONTROLS, 'merge.exit-controls', BigInt(exit >>> 0));
  }

  // Host state and the resources that are L0's: vmcs02 exits always go to L0.
  for (const enc of HOST_STATE_ENCODINGS) put(enc, 'merge.host-state', l0.host.get(enc));
  const s02 = effSecondary(v02);
  put(Field.EPT_POINTER, 'merge.ept-pointer', s02 & Secondary.ENABLE_EPT ? l0.eptp02 : 0n);
  put(Field.VIRTUAL_PROCESSOR_ID, 'merge.vpid', s02 & Secondary.ENABLE_VPID ? BigInt(l0.vpid02) : 0n);
  put(Field.MSR_BITMAP, 'merge.msr-bitmap', p02 & Primary.USE_MSR_BITMAPS ? l0.msrBitmap02 ?? 0n : 0n);
}

function div(i: MergeCheckInput, rule: string, field: string, expected: string, actual: string, explanation: string, prov?: FieldProvenance): Divergence {
  return {
    kind: 'invariant', rule, sdm: sdmOf(rule), event: i.event, level: 'L0', field, expected, actual, explanation,
    ...(prov ? { provenance: prov.inputs.map((x) => ({ from: x.from, ...(x.field !== undefined ? { field: x.field } : {}), value: hexValue(x.value) })) } : {}),
  };
}

/** A parsed L0MergeInputs key: a VMCS-shaped item (host / l2Live) with its field, an L1 item, or a top-level item. */
type L0Key = { kind: 'vmcs'; head: 'host' | 'l2Live'; enc: number | undefined } | { kind: 'l1'; rest: string } | { kind: 'top'; head: string; rest: string };

const L0_KEYS = new Map<string, L0Key>();

function parseL0Key(key: string): L0Key {
  let k = L0_KEYS.get(key);
  if (k) return k;
  const [head, rest] = key.includes('.') ? [key.slice(0, key.indexOf('.')), key.slice(key.indexOf('.') + 1)] : [key, ''];
  if (head === 'host' || head === 'l2Live') k = { kind: 'vmcs', head, enc: (Field as Record<string, number>)[rest] };
  else if (head === 'l1') k = { kind: 'l1', rest };
  else k = { kind: 'top', head, rest };
  L0_KEYS.set(key, k);
  return k;
}

/** Value of an L0MergeInputs item named by a provenance key ("exceptionBitmap", "l1.efer", "host.HOST_CR0", …), if checkable. */
function l0Item(l0: L0MergeInputs, key: string): bigint | undefined {
  const k = parseL0Key(key);
  if (k.kind === 'vmcs') {
    const v = k.head === 'host' ? l0.host : l0.l2Live;
    return v && k.enc !== undefined ? v.get(k.enc) : undefined;
  }
  if (k.kind === 'l1') {
    const x = (l0.l1 as unknown as Record<string, bigint>)[k.rest];
    return typeof x === 'bigint' ? x : undefined;
  }
  const x = (l0 as unknown as Record<string, unknown>)[k.head];
  if (k.rest !== '') return undefined;
  if (typeof x === 'bigint') return x;
  if (typeof x === 'number') return BigInt(x >>> 0);
  if (typeof x === 'boolean') return x ? 1n : 0n;
  return undefined;
}

/** Encodings by field name (own properties of the generated Field table only). */
const ENCODING_BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(Field as Record<string, number>));

/** The full fields with the rule each must name, in slot order (exit-information fields, which the merge never writes, left out). */
const CHECKED_FIELDS = slotFields().map((def, slot) => ({ def, slot, rule: FIELD_RULES.get(def.name)! })).filter((x) => x.rule !== EXIT_INFO_RULE);

/**
 * Per slot, what is known about the provenance records seen there: compiled quotes, frozenness, and whether the rule
 * already reproduced the value (step 3). The replay reads nothing but the record, so for a record nobody can change (the
 * merge freezes the records it hands out again) that verdict cannot change.
 */
const recordFacts = new RecordFactsCache();

/** Whether one recorded input is not the value its source holds now (inputs that name no checkable source pass; step 2). */
function inputLies(i: MergeCheckInput, x: ProvenanceInput): boolean {
  const field = x.field;
  if (field === undefined) return false;
  if (x.from === 'vmcs01' || x.from === 'vmcs12') {
    const enc = ENCODING_BY_NAME.get(field);
    return enc !== undefined && (x.from === 'vmcs01' ? i.vmcs01 : i.vmcs12).get(enc) !== x.value;
  }
  if (x.from !== 'L0') return false;
  if (field.startsWith('merged.')) {
    const menc = ENCODING_BY_NAME.get(field.slice(7));
    return menc !== undefined && i.vmcs02.get(menc) !== x.value;
  }
  const v = l0Item(i.l0, field);
  return v !== undefined && v !== x.value;
}

/** Scratch for checkMerge (not re-entrant): provenance by slot. */
const BY_SLOT = new Array<FieldProvenance | undefined>(VMCS_SLOT_COUNT).fill(undefined);

/** All merge-invariant divergences of one L2 entry. */
export function checkMerge(i: MergeCheckInput): Divergence[] {
  const out: Divergence[] = [];
  // Provenance by slot of its (full) encoding, the last record of an encoding winning; other encodings are never asked for.
  const bySlot = BY_SLOT;
  bySlot.fill(undefined);
  for (let k = 0; k < i.provenance.length; k++) {
    const p = i.provenance[k]!;
    const slot = (p.encoding & 1) === 0 ? slotOf(p.encoding) : -1;
    if (slot >= 0) bySlot[slot] = p;
  }
  const provenanceOf = (encoding: number): FieldProvenance | undefined => ((encoding & 1) === 0 ? bySlot[slotOf(encoding)] : undefined);

  // 1. Every field the merge writes has provenance naming the field's rule and the value vmcs02 holds.
  for (const { def: f, slot, rule } of CHECKED_FIELDS) {
    const p = bySlot[slot];
    if (!p) {
      out.push(div(i, 'merge.provenance', f.name, rule, 'no provenance', `vmcs02 ${f.name} has no provenance: L0 wrote it without a merge rule`));
      continue;
    }
    const facts = recordFacts.facts(slot, p);
    if (p.rule !== rule || !holdsValue(i.vmcs02, slot, facts)) {
      out.push(div(i, 'merge.provenance', f.name, `${rule} = ${hexValue(i.vmcs02.get(f.encoding))}`, `${p.rule} = ${hexValue(p.value)}`,
        `provenance of vmcs02 ${f.name} does not describe the value vmcs02 holds`, p));
      continue;
    }
    // 2. Inputs recorded from vmcs01 / vmcs12 / L0 are the values those hold; 3. the rule reproduces the value.
    const lie = misquoted(i, facts, inputLies);
    if (lie) {
      out.push(div(i, 'merge.provenance', f.name, `${lie.from}.${lie.field ?? ''} as recorded`, hexValue(lie.value),
        `provenance of vmcs02 ${f.name} names ${lie.from}.${lie.field ?? ''} = ${hexValue(lie.value)}, which is not the value L0 merged from`, p));
      continue;
    }
    if (facts.replayed) continue;
    const impl = MERGE_RULES.get(rule);
    if (impl) {
      let replay: bigint | undefined;
      try {
        replay = impl.compute(new InputLookup(p.inputs), f);
      } catch {
        replay = undefined;
      }
      const replayed = replay === undefined ? undefined : stored(f.encoding, replay);
      if (replayed === undefined || replayed !== p.value) {
        out.push(div(i, rule, f.name, replayed === undefined ? 'inputs sufficient for the rule' : hexValue(replayed), hexValue(p.value),
          `${rule} does not reproduce vmcs02 ${f.name} from its recorded inputs`, p));
        continue;
      }
    }
    if (facts.frozen) facts.replayed = true;
  }

  // 4. Independent re-derivation of the fields that decide exits and what L2 sees.
  derive(i, (field, rule, derived) => {
    const expected = stored(field, derived);
    const actual = i.vmcs02.get(field);
    if (expected === actual) return;
    const name = fieldDef(field)!.name;
    out.push(div(i, rule, name, hexValue(expected), hexValue(actual),
      `vmcs02 ${name} is ${hexValue(actual)}; ${rule} requires ${hexValue(expected)} from vmcs01, vmcs12 and L0's inputs`, provenanceOf(field)));
  });

  // 5. MSR bitmap contents: for every MSR and direction, exits under vmcs02 ⊇ L0's intercepts ∪ exits under vmcs12 (§5.4).
  const mb = i.msrBitmaps;
  if (mb && (i.vmcs02.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.USE_MSR_BITMAPS) !== 0) {
    const l1Uses = (i.vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.USE_MSR_BITMAPS) !== 0;
    for (let byte = 0; byte < 4096; byte++) {
      // L0's own bitmap for L1 states what L0 intercepts (KVM keeps it even when vmcs01 runs without bitmaps).
      const need = (l1Uses ? (mb.bitmap12?.[byte] ?? 0xff) : 0xff) | (mb.bitmap01?.[byte] ?? 0);
      const have = mb.bitmap02?.[byte] ?? 0xff;
      const missing = need & ~have & 0xff;
      if (missing === 0) continue;
      const bit = 31 - Math.clz32(missing & -missing);
      const region = byte >> 10;
      const msr = (region & 1 ? 0xc000_0000 : 0) + ((byte & 0x3ff) << 3) + bit;
      out.push(div(i, 'merge.msr-bitmap', `MSR ${hexValue(msr)} ${region >= 2 ? 'write' : 'read'}`, 'exit', 'no exit',
        `the vmcs02 MSR bitmap lets ${region >= 2 ? 'WRMSR' : 'RDMSR'} of ${hexValue(msr)} through although vmcs01 or vmcs12 intercepts it (exit02 must ⊇ exit01 ∪ exit12)`));
      break;
    }
  }
  return out;
}
