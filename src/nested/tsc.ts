// TSC offset and multiplier for L2 (the vmcs02 values) from L0's values for L1 and vmcs12's values for L2,
// in VMX's 48-bit fixed point with exact 128-bit intermediates (KVM kvm_calc_nested_tsc_offset/_multiplier).
// Must not: read clocks or VMCS storage; callers pass the four numbers (as bigint) and get bigints back.
// Reference: nested-vmx.md §5.3; SDM 25.3 (TSC offsetting and scaling), 24.6.5.
import { u64 } from '../cpu/u64.js';

/** Fractional bits of the VMX TSC multiplier. */
export const TSC_FRAC_BITS = 48n;
/** Multiplier 1.0 in 48-bit fixed point. */
export const TSC_ONE = 1n << TSC_FRAC_BITS;

/** (tsc · multiplier) >> 48, kept to 64 bits: what the CPU does when "use TSC scaling" is 1 (SDM 25.3). */
export function scaleTsc(tsc: bigint, multiplier: bigint): bigint {
  return u64((u64(tsc) * u64(multiplier)) >> TSC_FRAC_BITS);
}

/** TSC a guest reads: scale, then add the offset modulo 2^64. */
export function guestTsc(hostTsc: bigint, offset: bigint, multiplier: bigint): bigint {
  return u64(scaleTsc(hostTsc, multiplier) + offset);
}

/**
 * Signed offset times unsigned multiplier, shifted: the magnitude is scaled and the sign re-applied, so rounding
 * is toward zero for negative offsets (KVM mul_s64_u64_shr). The offset is a two's-complement u64.
 */
export function mulSignedOffset(offset: bigint, multiplier: bigint): bigint {
  const signed = BigInt.asIntN(64, offset);
  const magnitude = ((signed < 0n ? -signed : signed) * u64(multiplier)) >> TSC_FRAC_BITS;
  return u64(signed < 0n ? -magnitude : magnitude);
}

export interface TscParams {
  readonly offset: bigint;
  readonly multiplier: bigint;
}

/** L2's multiplier in vmcs02: mul01 unchanged when vmcs12 does not scale, else (mul01 · mul12) >> 48. */
export function nestedTscMultiplier(mul01: bigint, mul12: bigint): bigint {
  if (u64(mul12) === TSC_ONE) return u64(mul01);
  return u64((u64(mul01) * u64(mul12)) >> TSC_FRAC_BITS);
}

/** L2's offset in vmcs02: off01 (scaled by mul12 when vmcs12 scales) plus off12, modulo 2^64. */
export function nestedTscOffset(off01: bigint, mul12: bigint, off12: bigint): bigint {
  const scaled = u64(mul12) === TSC_ONE ? u64(off01) : mulSignedOffset(off01, mul12);
  return u64(scaled + off12);
}

/** Both vmcs02 values at once. */
export function nestedTsc(l1: TscParams, l2: TscParams): TscParams {
  return { offset: nestedTscOffset(l1.offset, l2.multiplier, l2.offset), multiplier: nestedTscMultiplier(l1.multiplier, l2.multiplier) };
}

/**
 * Effective (offset, multiplier) a VMCS applies to RDTSC: offset only with "use TSC offsetting", multiplier only
 * with offsetting and "use TSC scaling" (SDM 25.3: scaling applies only when offsetting is also 1).
 */
export function effectiveTsc(useOffsetting: boolean, useScaling: boolean, offset: bigint, multiplier: bigint): TscParams {
  return {
    offset: useOffsetting ? u64(offset) : 0n,
    multiplier: useOffsetting && useScaling ? u64(multiplier) : TSC_ONE,
  };
}
