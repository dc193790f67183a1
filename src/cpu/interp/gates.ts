// IDT gate lookup for event delivery: bounds check against IDTR.limit, gate type and present checks, the
// gate-DPL check for software interrupts, and the checks on the target code segment.
// Must not: push anything or change state. SDM Vol. 3A 6.11 (IDT descriptors), 6.12.1.1 (protection),
// 6.14.1 (64-bit gates).
import { IntrType } from '../nonroot/types.js';
import { exc, type ExecContext, type Fault } from './exec-context.js';
import type { DeliveryRequest } from './events.js';
import { dpl, isCode, present, readDescriptor, type Descriptor } from './segments.js';

/** EXT bit of error codes raised during delivery: set unless the event is INT n / INT3 / INTO / INT1. */
export function extBit(type: number): number {
  return type === IntrType.SOFTWARE_INTERRUPT || type === IntrType.SOFTWARE_EXCEPTION || type === IntrType.PRIVILEGED_SOFTWARE_EXCEPTION ? 0 : 1;
}

export type Gate =
  | { readonly kind: 'task'; readonly selector: number }
  | {
    readonly kind: 'int';
    readonly selector: number;
    readonly offset: bigint;
    /** Interrupt gate (clears IF) vs trap gate. */
    readonly interrupt: boolean;
    /** 32-bit gate (legacy mode); 64-bit gates are always "32" here. */
    readonly is32: boolean;
    readonly ist: number;
  };

export function readGate(ctx: ExecContext, req: DeliveryRequest, long: boolean): Gate | Fault {
  const s = ctx.state;
  const ext = extBit(req.type);
  const idtErr = req.vector * 8 + 2 + ext;
  const entrySize = long ? 16 : 8;
  const off = BigInt(req.vector * entrySize);
  if (off + BigInt(entrySize - 1) > BigInt(s.idtrLimit)) return exc(13, idtErr);
  const addr = long ? BigInt.asUintN(64, s.idtrBase + off) : (s.idtrBase + off) & 0xffff_ffffn;
  const lo64 = ctx.readLinear(addr, 8, true);
  if (typeof lo64 !== 'bigint') return lo64;
  const lo = Number(lo64 & 0xffff_ffffn);
  const hi = Number(lo64 >> 32n);
  const type = (hi >>> 8) & 0x1f;
  const gateDpl = (hi >>> 13) & 3;
  const p = (hi & 0x8000) !== 0;
  let valid: boolean;
  if (long) valid = type === 0x0e || type === 0x0f;
  else valid = type === 0x05 || type === 0x06 || type === 0x07 || type === 0x0e || type === 0x0f;
  if (!valid) return exc(13, idtErr);
  // INT n, INT3 and INTO check the gate DPL against CPL; INT1 (privileged software exception) does not.
  if ((req.type === IntrType.SOFTWARE_INTERRUPT || req.type === IntrType.SOFTWARE_EXCEPTION) && gateDpl < ctx.cpl) {
    return exc(13, req.vector * 8 + 2);
  }
  if (!p) return exc(11, idtErr);
  const selector = lo >>> 16;
  if (type === 0x05) return { kind: 'task', selector };
  let offset = BigInt((lo & 0xffff) | (type & 8 ? hi & 0xffff_0000 : 0)) & 0xffff_ffffn;
  let ist = 0;
  if (long) {
    const upper = ctx.readLinear(BigInt.asUintN(64, addr + 8n), 4, true);
    if (typeof upper !== 'bigint') return upper;
    offset |= upper << 32n;
    ist = hi & 7;
  }
  return { kind: 'int', selector, offset, interrupt: (type & 1) === 0, is32: (type & 8) !== 0, ist };
}

/** Target code segment of a gate: non-null, a code segment with DPL ≤ CPL, present (SDM 6.12.1.1). */
export function checkCodeSegmentForGate(ctx: ExecContext, selector: number, ext: number): Descriptor | Fault {
  if ((selector & 0xfffc) === 0) return exc(13, ext);
  const ec = (selector & 0xfffc) | ext;
  const d = readDescriptor(ctx, selector, ec);
  if (!('ar' in d)) return d;
  if (!isCode(d.ar) || dpl(d.ar) > ctx.cpl) return exc(13, ec);
  if (!present(d.ar)) return exc(11, ec);
  return d;
}
