// EPT capabilities from a CPU model, EPTP validation (the VM-entry / INVEPT single-context / EPTP-switching rules)
// and construction of typed Ept handles (EPT12, EPT01, EPT02) on top of a validated EPTP.
// Must not: walk tables; an invalid EPTP is a value naming the rule it breaks.
// SDM Vol. 3C 24.6.11 (EPTP format), 26.2.1.1 (VM-entry checks on the EPTP), App. A.10; reference §8.1.
import type { CpuModel } from '../cpu-model.js';
import {
  HPA, L1_GPA, L2_GPA, type AddressSpace, type GuestPhysical, type Hpa, type L1Gpa, type L2Gpa, type PhysicalAddress,
} from '../address.js';
import type { QwordMemory } from '../memory.js';
import { bit, bits, maskRange } from '../u64.js';
import type { DecodedEptp, Ept, EptCapabilities, EptConfig } from './types.js';

// One capability object per model and shadow-stack setting: a model never changes, so the answer is shared (and the
// EPTP validation memo below, keyed by the object, hits for every caller).
const capabilitiesMemo = new WeakMap<CpuModel, [EptCapabilities | undefined, EptCapabilities | undefined]>();

export function eptCapabilities(model: CpuModel, options: { supervisorShadowStack?: boolean } = {}): EptCapabilities {
  const sss = options.supervisorShadowStack ?? false;
  let pair = capabilitiesMemo.get(model);
  if (!pair) {
    pair = [undefined, undefined];
    capabilitiesMemo.set(model, pair);
  }
  const i = sss ? 1 : 0;
  return (pair[i] ??= computeEptCapabilities(model, sss));
}

function computeEptCapabilities(model: CpuModel, supervisorShadowStack: boolean): EptCapabilities {
  return {
    maxPhysAddr: model.maxPhysAddr,
    executeOnly: model.eptCap(0),
    walkLength4: model.eptCap(6),
    walkLength5: model.eptCap(7),
    memTypeUc: model.eptCap(8),
    memTypeWb: model.eptCap(14),
    pages2M: model.eptCap(16),
    pages1G: model.eptCap(17),
    accessedDirty: model.eptCap(21),
    advancedExitInfo: model.eptCap(22),
    supervisorShadowStack,
  };
}

export function eptConfig(
  caps: EptCapabilities,
  controls: { modeBasedExecute?: boolean; rmwSetsRead?: boolean } = {},
): EptConfig {
  return { caps, modeBasedExecute: controls.modeBasedExecute ?? false, rmwSetsRead: controls.rmwSetsRead ?? true };
}

export type EptpErrorKind =
  | 'eptp-memory-type'
  | 'eptp-walk-length'
  | 'eptp-accessed-dirty-unsupported'
  | 'eptp-shadow-stack-unsupported'
  | 'eptp-reserved-bits';

export interface EptpError {
  readonly kind: EptpErrorKind;
  readonly eptp: bigint;
  readonly message: string;
}

export type EptpValidation = { readonly ok: true; readonly eptp: DecodedEptp } | { readonly ok: false; readonly error: EptpError };

/** EPTRTA (EPTP bits 51:12), the tag of guest-physical and combined mappings (reference §8.1). */
export function eptrtaOf(eptp: bigint): bigint {
  return eptp & maskRange(51, 12);
}

// validateEptp answers per capability set, by EPTP value: the answer is a pure function of the two and its objects are
// read-only, so a remembered one is as good as a fresh one (nested L0 re-validates the same EPTPs on every entry).
// Bounded: a map that reaches VALIDATION_MEMO_LIMIT values starts over.
const validationMemo = new WeakMap<EptCapabilities, Map<bigint, EptpValidation>>();
const VALIDATION_MEMO_LIMIT = 256;

/** Check an EPTP against the capabilities, in the order of SDM 26.2.1.1. */
export function validateEptp(eptp: bigint, caps: EptCapabilities): EptpValidation {
  let memo = validationMemo.get(caps);
  if (!memo) {
    memo = new Map();
    validationMemo.set(caps, memo);
  }
  const known = memo.get(eptp);
  if (known) return known;
  const v = computeEptpValidation(eptp, caps);
  if (memo.size >= VALIDATION_MEMO_LIMIT) memo.clear();
  memo.set(eptp, v);
  return v;
}

function computeEptpValidation(eptp: bigint, caps: EptCapabilities): EptpValidation {
  const fail = (kind: EptpErrorKind, message: string): EptpValidation => ({ ok: false, error: { kind, eptp, message } });
  const memType = Number(bits(eptp, 2, 0));
  if (!((memType === 0 && caps.memTypeUc) || (memType === 6 && caps.memTypeWb))) {
    return fail('eptp-memory-type', `EPTP memory type ${memType} is not supported (UC needs cap bit 8, WB cap bit 14)`);
  }
  const walkLength = Number(bits(eptp, 5, 3)) + 1;
  if (!((walkLength === 4 && caps.walkLength4) || (walkLength === 5 && caps.walkLength5))) {
    return fail('eptp-walk-length', `EPTP page-walk length ${walkLength} is not supported (cap bits 6/7)`);
  }
  const ad = bit(eptp, 6);
  if (ad && !caps.accessedDirty) {
    return fail('eptp-accessed-dirty-unsupported', 'EPTP bit 6 (accessed/dirty flags) set without cap bit 21');
  }
  const sss = bit(eptp, 7);
  if (sss && !caps.supervisorShadowStack) {
    return fail('eptp-shadow-stack-unsupported', 'EPTP bit 7 (supervisor shadow-stack control) set without CET support');
  }
  const reserved = (eptp & maskRange(11, 8)) | (eptp & maskRange(63, caps.maxPhysAddr));
  if (reserved !== 0n) {
    return fail('eptp-reserved-bits', `EPTP reserved bits set: 0x${reserved.toString(16)} (bits 11:8 and 63:${caps.maxPhysAddr})`);
  }
  return {
    ok: true,
    eptp: {
      raw: eptp,
      memType: memType as 0 | 6,
      walkLength: walkLength as 4 | 5,
      accessedDirty: ad,
      supervisorShadowStack: sss,
      rootAddress: eptp & maskRange(caps.maxPhysAddr - 1, 12),
      eptrta: eptrtaOf(eptp),
    },
  };
}

export type EptHandleResult<In extends GuestPhysical, Out extends PhysicalAddress> =
  | { readonly ok: true; readonly ept: Ept<In, Out> }
  | { readonly ok: false; readonly error: EptpError };

/** Validate `eptp` and bind it to the memory holding its tables. The spaces fix what the EPT translates. */
export function makeEpt<In extends GuestPhysical, Out extends PhysicalAddress>(args: {
  readonly eptp: bigint;
  readonly config: EptConfig;
  readonly tables: QwordMemory<Out>;
  readonly inSpace: AddressSpace<In>;
  readonly outSpace: AddressSpace<Out>;
}): EptHandleResult<In, Out> {
  const v = validateEptp(args.eptp, args.config.caps);
  if (!v.ok) return v;
  return {
    ok: true,
    ept: {
      eptp: v.eptp,
      root: args.outSpace.of(v.eptp.rootAddress),
      config: args.config,
      tables: args.tables,
      inSpace: args.inSpace,
      outSpace: args.outSpace,
    },
  };
}

interface EptArgs<Out extends PhysicalAddress> {
  readonly eptp: bigint;
  readonly config: EptConfig;
  readonly tables: QwordMemory<Out>;
}

/** L1's EPT for L2 (vmcs12 EPT pointer): L2 guest-physical → L1 guest-physical, tables in L1 memory. */
export function ept12(args: EptArgs<L1Gpa>): EptHandleResult<L2Gpa, L1Gpa> {
  return makeEpt({ eptp: args.eptp, config: args.config, tables: args.tables, inSpace: L2_GPA, outSpace: L1_GPA });
}

/** L0's EPT for L1 (vmcs01): L1 guest-physical → host-physical, tables in host memory. */
export function ept01(args: EptArgs<Hpa>): EptHandleResult<L1Gpa, Hpa> {
  return makeEpt({ eptp: args.eptp, config: args.config, tables: args.tables, inSpace: L1_GPA, outSpace: HPA });
}

/** L0's shadow EPT for L2 (vmcs02): L2 guest-physical → host-physical, tables in host memory. */
export function ept02(args: EptArgs<Hpa>): EptHandleResult<L2Gpa, Hpa> {
  return makeEpt({ eptp: args.eptp, config: args.config, tables: args.tables, inSpace: L2_GPA, outSpace: HPA });
}
