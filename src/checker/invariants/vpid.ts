// VPID invariant of a nested run: all vpid12 values share L0's one tag for L2, so L0 must flush it when vpid12 changes,
// on every entry and exit when vmcs12 runs L2 without VPID (VPID 0 is flushed by both), and for L1's INVVPID — checked
// on the flushes L0 records. Must not: consult L0's own plan (src/nested/vpid.ts).
// Reference: nested-vmx.md §5.6, §2.3; SDM 28.3.3.1, 28.3.3.3.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { Primary, Secondary } from '../../cpu/generated/controls.js';
import type { Vmcs } from '../../cpu/vmcs.js';
import type { TlbFlush } from '../../nested/vpid.js';
import type { Divergence } from '../divergence.js';
import { checkerRule } from '../rules.js';

/** vmcs12 runs L2 with VPID (secondary control in effect and bit set). */
export function l2UsesVpid(vmcs12: Vmcs): boolean {
  const p = vmcs12.lo(Field.CPU_BASED_VM_EXEC_CONTROL);
  return (p & Primary.ACTIVATE_SECONDARY_CONTROLS) !== 0 && (vmcs12.lo(Field.SECONDARY_VM_EXEC_CONTROL) & Secondary.ENABLE_VPID) !== 0;
}

/** The VPID a VMCS tags linear mappings with (0 when VPID is off). */
export function vpidTag(vmcs: Vmcs): number {
  return l2UsesVpid(vmcs) ? vmcs.lo(Field.VIRTUAL_PROCESSOR_ID) : 0;
}

function flushes(fs: readonly TlbFlush[], tag: number): boolean {
  return fs.some((f) => f.kind === 'context' && f.vpid === tag);
}

function div(rule: string, event: number, expected: string, actual: readonly TlbFlush[], explanation: string): Divergence {
  const text = actual.length === 0 ? 'no flush' : actual.map((f) => (f.kind === 'none' ? 'none' : `${f.kind} vpid ${f.vpid}`)).join(', ');
  return { kind: 'invariant', rule, sdm: checkerRule(rule).sdm, event, level: 'L0', field: 'VIRTUAL_PROCESSOR_ID', expected, actual: text, explanation };
}

/**
 * Tracks vpid12 across a nested run and checks the flushes L0 records at each emulated VMLAUNCH/VMRESUME, each exit
 * to L1 and each INVVPID of L1.
 */
export class VpidMonitor {
  /** vpid12 of the last entry that ran L2 with VPID (the one whose mappings L0's tag may hold), or null. */
  private last: number | null = null;

  /** An emulated VM entry: `vmcs02` is what L2 runs on, `recorded` the flushes L0 made for this entry. */
  entry(event: number, vmcs12: Vmcs, vmcs02: Vmcs, recorded: readonly TlbFlush[]): Divergence[] {
    const tag = vpidTag(vmcs02);
    // Without a VPID in vmcs02 the hardware entry itself flushes: nothing for L0 to do.
    if (tag === 0) return [];
    if (!l2UsesVpid(vmcs12)) {
      return flushes(recorded, tag) ? [] : [div('vpid.entry-flush', event, `context flush of vpid ${tag}`, recorded,
        'vmcs12 runs L2 without VPID, so the entry must invalidate the mappings of the tag L2 runs with (VM entry flushes VPID 0)')];
    }
    const vpid12 = vmcs12.lo(Field.VIRTUAL_PROCESSOR_ID);
    const changed = this.last !== null && this.last !== vpid12;
    const before = this.last;
    this.last = vpid12;
    if (!changed || flushes(recorded, tag)) return [];
    return [div('vpid.entry-flush', event, `context flush of vpid ${tag}`, recorded,
      `L1 changed vpid12 from ${before} to ${vpid12}; L2 runs on the same tag, so its mappings from vpid12 ${before} must be invalidated`)];
  }

  /** An exit to L1 (`vmcs01` is L1's VMCS): without VPID in vmcs12, the exit flushes L1's tag. */
  exit(event: number, vmcs12: Vmcs, vmcs01: Vmcs, recorded: readonly TlbFlush[]): Divergence[] {
    const tag = vpidTag(vmcs01);
    if (tag === 0 || l2UsesVpid(vmcs12) || flushes(recorded, tag)) return [];
    return [div('vpid.exit-flush', event, `context flush of vpid ${tag}`, recorded,
      'vmcs12 runs L2 without VPID, so the exit to L1 must invalidate the mappings tagged with L1\'s VPID (VM exit flushes VPID 0)')];
  }

  /** L1's INVVPID completed successfully: L0 must have flushed something for it. */
  invvpid(event: number, recorded: readonly TlbFlush[]): Divergence[] {
    if (recorded.some((f) => f.kind !== 'none')) return [];
    return [div('vpid.invvpid-flush', event, 'a flush of the tag vpid12 maps to', recorded, 'L1\'s INVVPID succeeded but L0 invalidated nothing')];
  }
}
