// Infers which side of Linux 5.10 produced a log, from print formats that changed there (trace-formats.md §2–§5),
// because kvm_exit's `info2` in the shared "reason X rip R info A B" text means VM-exit interruption info before
// 5.10 and IDT-vectoring info from 5.10 on. Every inference is returned as evidence with its line, for provenance.
// kvm_entry's rip is weak evidence that never decides (distributions backported that patch alone); an info2 the SDM
// allows under only one reading (e.g. valid on an external-interrupt exit) decides.
// Must not: decide silently; with no evidence the era stays unknown and the caller reports that.
import type { TraceRecord } from './records.js';
import { parseKvmEntry, parseKvmExit, parseNestedVmenter, parseNestedVmexit, parsePageFault } from './payloads.js';
import { parseExitReason } from './exit-reason.js';

export type KernelEra = '<=5.9' | '>=5.10';

export interface EraEvidence {
  readonly era: KernelEra;
  readonly line: number;
  readonly why: string;
  /** Evidence that other evidence outweighs (kvm_entry's rip: backported alone to some pre-5.10 kernels). */
  readonly weak?: boolean;
}

/** Exits whose VM-exit interruption information is never valid but which may occur during event delivery (SDM 27.2.2, 27.2.4). */
const VECTORING_ONLY = new Set([9, 44, 48, 49, 62]);
const EXCEPTION_NMI = 0;
const EXTERNAL_INTERRUPT = 1;

/** Who rendered the text: the kernel's own print format (raw ftrace) or libtraceevent's kvm plugin. */
export type Producer = 'kernel' | 'plugin';

export function collectEraEvidence(records: readonly TraceRecord[], producer: Producer): EraEvidence[] {
  const out: EraEvidence[] = [];
  for (const r of records) {
    const ev = (era: KernelEra, why: string, weak = false) => out.push({ era, line: r.line, why, ...(weak ? { weak } : {}) });
    switch (r.event) {
      case 'kvm_exit': {
        const p = parseKvmExit(r.payload);
        if (!p) break;
        if (p.cantFindField) ev('>=5.10', "kvm_exit printed through the plugin's CAN'T FIND FIELD fallback");
        else if (p.form === 'E2' || p.form === 'E4') ev('>=5.10', `kvm_exit in the ≥5.10 print format (${p.form})`);
        else if (producer === 'kernel') ev('<=5.9', "kvm_exit in the kernel's pre-5.10 print format (E1)");
        if (p.form === 'E1/E3' && p.info2 !== undefined && p.info2 <= 0xffff_ffffn) {
          const basic = (parseExitReason(p.reasonText).reason ?? -1) & 0xffff;
          const v = `0x${p.info2.toString(16)}`;
          const valid = (p.info2 & 0x8000_0000n) !== 0n;
          if (valid && basic === EXTERNAL_INTERRUPT) ev('<=5.9', `kvm_exit info2 ${v} is valid on the EXTERNAL_INTERRUPT exit, which IDT-vectoring information never is (SDM 27.2.4): it is VM-exit interruption information`);
          else if (valid && VECTORING_ONLY.has(basic)) ev('>=5.10', `kvm_exit info2 ${v} is valid on the ${p.reasonText} exit, which VM-exit interruption information never is (SDM 27.2.2): it is IDT-vectoring information`);
          else if (!valid && basic === EXCEPTION_NMI) ev('>=5.10', `kvm_exit info2 ${v} is invalid on the EXCEPTION_NMI exit, whose VM-exit interruption information is always valid (SDM 27.2.2): it is IDT-vectoring information`);
        }
        break;
      }
      case 'kvm_entry': {
        const p = parseKvmEntry(r.payload);
        if (p?.rip !== undefined) ev('>=5.10', 'kvm_entry carries rip (added in 5.10, also backported alone, e.g. SUSE bsc#1182770)', true);
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
  // Weak evidence never decides: it is reported, and a log only it dates keeps its era unknown.
  const strong = evidence.filter((e) => !e.weak);
  const newer = strong.find((e) => e.era === '>=5.10');
  const older = strong.find((e) => e.era === '<=5.9');
  const weak = evidence.find((e) => e.weak && (strong.length === 0 || e.era !== (newer ?? older)!.era));
  const also = weak && strong.length > 0 ? `; line ${weak.line} (${weak.why}) does not outweigh it` : '';
  if (hint) {
    const against = hint === '>=5.10' ? older : newer;
    return { era: hint, assumption: `kernel ${hint} as given by the caller${against ? `; note line ${against.line}: ${against.why}` : ''}` };
  }
  if (newer && older) {
    return { era: '>=5.10', assumption: `kernel ≥5.10 (line ${newer.line}: ${newer.why}), although line ${older.line} suggests ≤5.9 (${older.why})` };
  }
  if (newer) return { era: '>=5.10', assumption: `kernel ≥5.10 inferred from line ${newer.line}: ${newer.why}${also}` };
  if (older) return { era: '<=5.9', assumption: `kernel ≤5.9 inferred from line ${older.line}: ${older.why}${also}` };
  if (weak) return { assumption: `kernel version unknown: only line ${weak.line} hints at it (${weak.why}), which does not date kvm_exit's info2` };
  return { assumption: 'kernel version unknown: nothing in the log dates its print formats' };
}
