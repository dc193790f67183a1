// `turtles import --format dump-vmcs|xen-dump`: a KVM dump_vmcs or Xen vmcs_dump_vcpu dump as a single-level trace:
// the exit the dump states (vm-exit with the exit-information fields it shows), then one 'single' VMCS snapshot with
// every field it shows; every line is accounted for. Must not: read files, or invent fields the dump does not show.
// Formats: trace-formats.md §6–§7.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { splitLines } from '../import/ftrace/stats.js';
import { parseVmcsDump, type ParsedVmcsDump } from '../import/vmcs-dump/index.js';
import type { ExitFields, ImportCounts, TraceEvent, TraceHeader } from '../format/index.js';

export type DumpFormat = 'dump-vmcs' | 'xen-dump';

export interface DumpImport {
  readonly format: DumpFormat;
  readonly events: TraceEvent[];
  readonly header: TraceHeader;
  readonly counts: ImportCounts;
  readonly assumptions: readonly string[];
}

/** Bad input: where and what was expected (the CLI turns it into a one-line error, exit 2). */
export interface DumpImportError {
  readonly file: string;
  readonly line: number;
  readonly expected: string;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const FORMAT_OF: Readonly<Record<string, DumpFormat>> = { 'kvm-dump-vmcs': 'dump-vmcs', 'xen-vmcs-dump': 'xen-dump' };

function exitFields(p: ParsedVmcsDump): Mutable<ExitFields> | undefined {
  const x = p.derived.exit;
  if (!x) return undefined;
  const v = p.vmcs;
  const f: Mutable<ExitFields> = { level: 'L2', reason: Number(x.reason & 0xffff_ffffn) };
  const u64 = (enc: number) => v.read(enc);
  const u32 = (enc: number) => {
    const r = v.read(enc);
    return r === undefined ? undefined : Number(r & 0xffff_ffffn);
  };
  const set = <K extends keyof ExitFields>(k: K, val: ExitFields[K] | undefined) => {
    if (val !== undefined) f[k] = val;
  };
  set('qualification', u64(Field.EXIT_QUALIFICATION));
  set('rip', u64(Field.GUEST_RIP));
  set('guestLinear', u64(Field.GUEST_LINEAR_ADDRESS));
  set('guestPhysical', u64(Field.GUEST_PHYSICAL_ADDRESS));
  set('intrInfo', u32(Field.VM_EXIT_INTR_INFO));
  set('intrError', u32(Field.VM_EXIT_INTR_ERROR_CODE));
  set('idtVectoringInfo', u32(Field.IDT_VECTORING_INFO_FIELD));
  set('idtVectoringError', u32(Field.IDT_VECTORING_ERROR_CODE));
  set('instructionLength', u32(Field.VM_EXIT_INSTRUCTION_LEN));
  set('instructionInfo', u32(Field.VMX_INSTRUCTION_INFO));
  return f;
}

/** Import a dump; `format` 'auto' takes whichever of the two the text is. */
export function importVmcsDump(text: string, format: DumpFormat | 'auto', sourceName: string): { ok: true; value: DumpImport } | { ok: false; error: DumpImportError } {
  const r = parseVmcsDump(text, sourceName);
  if (!r.ok) return { ok: false, error: { file: r.error.file, line: r.error.line, expected: r.error.expected } };
  const p = r.value;
  const found = FORMAT_OF[p.format];
  if (!found) {
    return { ok: false, error: { file: sourceName, line: 1, expected: 'a KVM dump_vmcs or Xen vmcs_dump_vcpu dump (turtles JSON VMCS state is read by check-entry, not imported)' } };
  }
  if (format !== 'auto' && found !== format) {
    return { ok: false, error: { file: sourceName, line: 1, expected: `a ${format === 'dump-vmcs' ? 'KVM dump_vmcs' : 'Xen vmcs_dump_vcpu'} dump; this is a ${found === 'dump-vmcs' ? 'KVM dump_vmcs' : 'Xen vmcs_dump_vcpu'} dump` } };
  }
  const firstField = Math.min(...p.fieldLines.values());
  const events: TraceEvent[] = [];
  const exit = exitFields(p);
  const exitLine = p.derived.exit?.line;
  if (exit) events.push({ kind: 'vm-exit', ...(exitLine !== undefined ? { line: exitLine } : {}), ...exit });
  const fields = new Map([...p.vmcs.values].sort((a, b) => a[0] - b[0]));
  events.push({ kind: 'vmcs-snapshot', which: 'single', fields, ...(Number.isFinite(firstField) ? { line: firstField } : {}) });

  // Line accounting: unmapped lines by reason, blank lines, and every other line of the dump as read.
  const lines = splitLines(text);
  const skipped = new Map<string, number>();
  const unmappedLines = new Set<number>();
  for (const u of p.unmapped) {
    if (unmappedLines.has(u.line)) continue;
    unmappedLines.add(u.line);
    skipped.set(`unmapped:${u.reason}`, (skipped.get(`unmapped:${u.reason}`) ?? 0) + 1);
  }
  let blank = 0;
  lines.forEach((l, i) => {
    if (l.trim() === '' && !unmappedLines.has(i + 1)) blank++;
  });
  if (blank) skipped.set('blank', blank);
  const skippedTotal = [...skipped.values()].reduce((a, b) => a + b, 0);
  const counts: ImportCounts = {
    lines: lines.length, mapped: lines.length - skippedTotal,
    skipped: Object.fromEntries([...skipped.keys()].sort().map((k) => [k, skipped.get(k)!])),
  };
  const assumptions = [
    `${found === 'dump-vmcs' ? 'KVM dump_vmcs' : 'Xen vmcs_dump_vcpu'} layout: ${p.derived.layout.join(', ')}`,
    'single level: the dumping hypervisor plays L1 and its guest L2; the VMCS becomes one snapshot of kind "single"',
    exit ? `the dump states exit reason 0x${p.derived.exit!.reason.toString(16)} (line ${exitLine}): a vm-exit before the snapshot, with the exit-information fields the dump shows`
      : 'the dump states no exit reason: no vm-exit event',
    ...(p.derived.efer ? [`EFER 0x${p.derived.efer.value.toString(16)} on line ${p.derived.efer.line} is ${p.derived.efer.source === 'msr-load-list' ? "Xen's guest MSR load list" : `KVM's "(${p.derived.efer.source})" value`}, not the GUEST_IA32_EFER field: not in the snapshot`] : []),
    ...(Object.keys(p.derived.msrLists).length ? ['KVM\'s software copies of the MSR lists are not VMCS fields: not in the snapshot'] : []),
    ...p.derived.notes,
  ];
  const header: TraceHeader = {
    producer: `turtles import ${found}`, l0Profile: 'recorded', kind: 'single-level',
    provenance: { sourceFormat: found, sourceName, description: '', assumptions, counts },
  };
  return { ok: true, value: { format: found, events, header, counts, assumptions } };
}
