// Importer for IRIS per-exit VMCS logs (dessertlab/iris, Xen + VT-x; trace-formats.md §9): (field, value, type)
// hex triples, `ffffffff ffffffff 0` opening each exit. Each exit → a vm-exit from the VMREADs of exit fields,
// the guest GPRs, and snapshots of the one VMCS ('single') before and after the handler's VMWRITEs.
// Must not: read files, or lose a line (malformed input → unmapped note, then resync at the next exit marker).
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { RegId, type ExitFields, type TraceEvent } from '../format/index.js';
import { LineAccount, splitLines } from './ftrace/stats.js';
import { ImportError, importHeader, type ImportOptions, type ImportResult } from './ftrace/result.js';

const MARKER = 0xffff_ffffn;
const HEX_LINE = /^[0-9a-f]{1,16}$/i;

/** IRIS register pseudo-fields → turtles register ids. */
const GPR_FIELDS: ReadonlyMap<bigint, number> = new Map([
  [0x1fff_ffffn, RegId.RAX], [0x2fff_ffffn, RegId.RBX], [0x3fff_ffffn, RegId.RCX], [0x4fff_ffffn, RegId.RDX],
  [0x5fff_ffffn, RegId.R8], [0x6fff_ffffn, RegId.R9], [0x7fff_ffffn, RegId.R10], [0x8fff_ffffn, RegId.R11],
  [0x9fff_ffffn, RegId.R12], [0xafff_ffffn, RegId.R13], [0xbfff_ffffn, RegId.R14], [0xcfff_ffffn, RegId.R15],
  [0xdfff_ffffn, RegId.RBP], [0xefff_ffffn, RegId.RSI], [0x0fff_ffffn, RegId.RDI],
]);

type Exit32 = 'reason' | 'intrInfo' | 'intrError' | 'idtVectoringInfo' | 'idtVectoringError' | 'instructionLength' | 'instructionInfo';
type Exit64 = 'qualification' | 'guestLinear' | 'guestPhysical' | 'rip';

/** VMCS exit-information fields (and the guest RIP) the vm-exit takes from VMREADs. */
const EXIT_FIELD_32: ReadonlyMap<number, Exit32> = new Map([
  [Field.VM_EXIT_REASON, 'reason'], [Field.VM_EXIT_INTR_INFO, 'intrInfo'], [Field.VM_EXIT_INTR_ERROR_CODE, 'intrError'],
  [Field.IDT_VECTORING_INFO_FIELD, 'idtVectoringInfo'], [Field.IDT_VECTORING_ERROR_CODE, 'idtVectoringError'],
  [Field.VM_EXIT_INSTRUCTION_LEN, 'instructionLength'], [Field.VMX_INSTRUCTION_INFO, 'instructionInfo'],
]);
const EXIT_FIELD_64: ReadonlyMap<number, Exit64> = new Map([
  [Field.EXIT_QUALIFICATION, 'qualification'], [Field.GUEST_LINEAR_ADDRESS, 'guestLinear'],
  [Field.GUEST_PHYSICAL_ADDRESS, 'guestPhysical'], [Field.GUEST_RIP, 'rip'],
]);

interface Triple {
  readonly line: number;
  readonly field: bigint;
  readonly value: bigint;
  readonly type: bigint;
}

interface OpenExit {
  readonly line: number;
  readonly triples: Triple[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function sameState(a: ReadonlyMap<number, bigint>, b: ReadonlyMap<number, bigint>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

class IrisMapper {
  readonly events: TraceEvent[] = [];
  readonly account = new LineAccount();
  private state = new Map<number, bigint>();
  private lastSnapshot = new Map<number, bigint>();
  private open: OpenExit | undefined;
  exits = 0;

  private unmapped(line: number, reasonKey: string, detail: string, text: string, lines: number): void {
    this.events.push({ kind: 'unmapped', line, reason: detail, text });
    this.account.skip(`unmapped:${reasonKey}`, lines);
  }

  private snapshot(line: number): void {
    if (sameState(this.state, this.lastSnapshot)) return;
    this.lastSnapshot = new Map(this.state);
    this.events.push({ kind: 'vmcs-snapshot', line, which: 'single', fields: new Map(this.state) });
  }

  triple(t: Triple): void {
    if (t.type === 0n && t.field === MARKER && t.value === MARKER) {
      this.flush();
      // A VM exit rewrites the exit-information (type 1) and guest-state (type 2) fields: what was known of them
      // before is no longer known. Controls and host state (types 0, 3) only change by VMWRITE.
      for (const enc of [...this.state.keys()]) {
        const type = (enc >> 10) & 3;
        if (type === 1 || type === 2) this.state.delete(enc);
      }
      // The one control a VM exit changes: it clears the valid bit (31) of the VM-entry interruption-information
      // field (SDM 24.8.3), so an event injected at the previous entry is not injected again.
      const entryIntr = this.state.get(Field.VM_ENTRY_INTR_INFO_FIELD);
      if (entryIntr !== undefined) this.state.set(Field.VM_ENTRY_INTR_INFO_FIELD, entryIntr & ~0x8000_0000n);
      this.open = { line: t.line, triples: [] };
      this.account.mapped(3);
      return;
    }
    const text = `${t.field.toString(16)} ${t.value.toString(16)} ${t.type.toString(16)}`;
    if (!this.open) return this.unmapped(t.line, 'triple before the first exit marker', 'triple outside any exit (before the first "ffffffff ffffffff 0")', text, 3);
    if (t.type === 2n && !GPR_FIELDS.has(t.field)) return this.unmapped(t.line, 'unknown register pseudo-field', `register pseudo-field 0x${t.field.toString(16)} is not one of IRIS's`, text, 3);
    if (t.type > 2n) return this.unmapped(t.line, 'unknown triple type', `triple type ${t.type} (expected 0 VMWRITE, 1 VMREAD, 2 GPR)`, text, 3);
    if ((t.type === 0n || t.type === 1n) && t.field > 0xffff_ffffn) {
      return this.unmapped(t.line, 'field encoding too wide', `VMCS field encoding 0x${t.field.toString(16)} wider than 32 bits`, text, 3);
    }
    this.open.triples.push(t);
    this.account.mapped(3);
  }

  flush(): void {
    const x = this.open;
    if (!x) return;
    this.open = undefined;
    this.exits++;
    const exit: Mutable<ExitFields> = { level: 'L2' };
    const regs = new Map<number, bigint>();
    const seen = new Set<number>();
    let firstWrite = x.triples.findIndex((t) => t.type === 0n);
    if (firstWrite < 0) firstWrite = x.triples.length;
    for (const t of x.triples) {
      if (t.type === 2n) regs.set(GPR_FIELDS.get(t.field)!, t.value);
      if (t.type !== 1n) continue;
      const enc = Number(t.field);
      if (seen.has(enc)) continue;
      seen.add(enc);
      const f32 = EXIT_FIELD_32.get(enc);
      if (f32 !== undefined) {
        if (t.value > 0xffff_ffffn) {
          this.events.push({ kind: 'unmapped', line: t.line, reason: `VMREAD of 32-bit field 0x${enc.toString(16)} returned 0x${t.value.toString(16)}`, text: '' });
        } else {
          exit[f32] = Number(t.value);
        }
      }
      const f64 = EXIT_FIELD_64.get(enc);
      if (f64 !== undefined) exit[f64] = t.value;
    }
    this.events.push({ kind: 'vm-exit', line: x.line, ...exit });
    if (regs.size > 0) this.events.push({ kind: 'registers', line: x.line, level: 'L2', regs: new Map([...regs].sort((a, b) => a[0] - b[0])) });
    // The VMCS as the handler found it (its leading VMREADs), then as it left it (all triples in order).
    x.triples.forEach((t, i) => {
      if (t.type !== 2n) this.state.set(Number(t.field), t.value);
      if (i === firstWrite - 1) this.snapshot(x.line);
    });
    this.snapshot(x.line);
  }
}

export function importIris(text: string, options: ImportOptions = {}): ImportResult {
  const name = options.sourceName ?? '<iris>';
  const lines = splitLines(text);
  const m = new IrisMapper();
  const pending: { line: number; value: bigint }[] = [];
  let resyncFrom: number | undefined;
  const isMarkerAt = (i: number): boolean =>
    /^f{8}$/i.test(lines[i]?.trim() ?? '') && /^f{8}$/i.test(lines[i + 1]?.trim() ?? '') && (lines[i + 2]?.trim() ?? '') === '0';
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i]!.trim();
    if (resyncFrom !== undefined) {
      if (!isMarkerAt(i)) {
        m.account.skip('unmapped:skipped to the next exit marker');
        continue;
      }
      resyncFrom = undefined;
    }
    if (s === '') {
      m.account.skip('blank');
      continue;
    }
    if (!HEX_LINE.test(s)) {
      // A broken line breaks the triple grouping: drop the partial triple and restart at the next exit marker.
      m.events.push({ kind: 'unmapped', line: i + 1, reason: 'not a hex number; skipping to the next exit marker', text: lines[i]! });
      m.account.skip('unmapped:not a hex number');
      m.account.skip('unmapped:skipped to the next exit marker', pending.length);
      pending.length = 0;
      resyncFrom = i + 1;
      continue;
    }
    // Most values fit a double exactly (≤ 13 hex digits); BigInt(number) is much cheaper than parsing a string.
    pending.push({ line: i + 1, value: s.length <= 13 ? BigInt(Number.parseInt(s, 16)) : BigInt(`0x${s}`) });
    if (pending.length === 3) {
      m.triple({ line: pending[0]!.line, field: pending[0]!.value, value: pending[1]!.value, type: pending[2]!.value });
      pending.length = 0;
    }
  }
  if (pending.length > 0) {
    m.events.push({ kind: 'unmapped', line: pending[0]!.line, reason: `incomplete triple at the end (${pending.length} of 3 lines)`, text: pending.map((p) => p.value.toString(16)).join(' ') });
    m.account.skip('unmapped:incomplete triple at the end', pending.length);
  }
  m.flush();
  if (m.exits === 0) throw new ImportError('no-records', name, undefined, 'IRIS exits (an "ffffffff ffffffff 0" marker triple); found none');
  if (m.account.lines !== lines.length) throw new Error(`turtles bug: ${name}: accounted for ${m.account.lines} of ${lines.length} lines`);
  const assumptions = [
    'IRIS log (Xen on VT-x, single level): the recorded hypervisor plays L1 and its guest L2, so each exit is a vm-exit at level L2',
    'vm-exit fields come from the first VMREAD of each exit-information field in the exit (and GUEST_RIP); fields the handler did not read are unknown',
    'each exit gives VMCS snapshots of the one VMCS (kind "single"): after the exit\'s leading VMREADs, and after all its VMWRITEs',
    'at each exit marker the known exit-information and guest-state fields are forgotten (the exit rewrites them); controls and host state carry over, except that the exit clears the valid bit of the VM-entry interruption-information field (SDM 24.8.3)',
    'guest GPRs (type-2 triples) become a registers event; IRIS does not log RSP there (it is GUEST_RSP in the VMCS)',
  ];
  const stats = m.account.stats();
  return { format: 'iris', events: m.events, stats, kind: 'single-level', assumptions, header: importHeader('iris', 'single-level', stats, assumptions, options) };
}
