// Infers which side of Linux 5.10 produced a log, from print formats that changed there (trace-formats.md §2–§5),
// because kvm_exit's `info2` in the shared "reason X rip R info A B" text means VM-exit interruption info before
// 5.10 and IDT-vectoring info from 5.10 on. Every inference is returned as evidence with its line, for provenance.
// Must not: decide silently; with no evidence the era stays unknown and the caller reports that.
import type { TraceRecord } from './records.js';
import { parseKvmEntry, parseKvmExit, parseNestedVmenter, parseNestedVmexit, parsePageFault } from './payloads.js';

export type KernelEra = '<=5.9' | '>=5.10';

export interface EraEvidence {
  readonly era: KernelEra;
  readonly line: number;
  readonly why: string;
}

/** Who rendered the text: the kernel's own print format (raw ftrace) or libtraceevent's kvm plugin. */
export type Producer = 'kernel' | 'plugin';

export function collectEraEvidence(records: readonly TraceRecord[], producer: Producer): EraEvidence[] {
  const out: EraEvidence[] = [];
  for (const r of records) {
    const ev = (era: KernelEra, why: string) => out.push({ era, line: r.line, why });
    switch (r.event) {
      case 'kvm_exit': {
        const p = parseKvmExit(r.payload);
        if (!p) break;
        if (p.cantFindField) ev('>=5.10', "kvm_exit printed through the plugin's CAN'T FIND FIELD fallback");
        else if (p.form === 'E2' || p.form === 'E4') ev('>=5.10', `kvm_exit in the ≥5.10 print format (${p.form})`);
        else if (producer === 'kernel') ev('<=5.9', "kvm_exit in the kernel's pre-5.10 print format (E1)");
        break;
      }
      case 'kvm_entry': {
        const p = parseKvmEntry(r.payload);
        if (p?.rip !== undefined) ev('>=5.10', 'kvm_entry carries rip (added in 5.10)');
        else if (p && p.tail === '') ev('<=5.9', 'kvm_entry prints only the vcpu (before 5.10)');
        break;
      }
      case 'kvm_nested_vmexit': {
        const p = parseNestedVmexit(r.payload);
        if (p?.form === 'E2' || p?.cantFindField) ev('>=5.10', 'kvm_nested_vmexit in the ≥5.10 print format');
        else if (p?.form === 'nested-kernel-old') ev('<=5.9', 'kvm_nested_vmexit in the pre-5.10 kernel format');
        break;
      }
      case 'kvm_nested_vmenter':
        if (parseNestedVmenter(r.payload)?.svm === false) ev('>=5.10', 'kvm_nested_vmenter with a vmcs field (6.9+)');
        break;
      case 'kvm_page_fault':
        if (parsePageFault(r.payload)?.form === 'new') ev('>=5.10', 'kvm_page_fault with vcpu and rip (6.1+)');
        break;
      default:
        break;
    }
  }
  return out;
}

export interface EraDecision {
  readonly era?: KernelEra;
  /** One line for the provenance assumptions. */
  readonly assumption: string;
}

export function decideEra(evidence: readonly EraEvidence[], hint?: KernelEra): EraDecision {
  const newer = evidence.find((e) => e.era === '>=5.10');
  const older = evidence.find((e) => e.era === '<=5.9');
  if (hint) {
    const against = hint === '>=5.10' ? older : newer;
    return { era: hint, assumption: `kernel ${hint} as given by the caller${against ? `; note line ${against.line}: ${against.why}` : ''}` };
  }
  if (newer && older) {
    return { era: '>=5.10', assumption: `kernel ≥5.10 (line ${newer.line}: ${newer.why}), although line ${older.line} suggests ≤5.9 (${older.why})` };
  }
  if (newer) return { era: '>=5.10', assumption: `kernel ≥5.10 inferred from line ${newer.line}: ${newer.why}` };
  if (older) return { era: '<=5.9', assumption: `kernel ≤5.9 inferred from line ${older.line}: ${older.why}` };
  return { assumption: 'kernel version unknown: nothing in the log dates its print formats' };
}
