// The scenario model (`turtles.scenario.v1`, docs/scenarios.md): what `turtles record` runs — a CPU model, an L0
// profile, and the built-in L1's configuration and exit-handling policy with its L2 program, as normalized JSON-shaped
// data (64-bit values as bigint, 32-bit values as numbers, field encodings and exit reasons by name when they have one).
// Must not: parse text or run anything (parse.ts parses, convert.ts turns a scenario into an L1Config).
import type { EptPageSize } from '../../cpu/ept/types.js';
import type { L2Mode } from '../../cpu/interp/l2-env.js';
import type { ScheduledEvent } from '../../cpu/machine/run-guest.js';
import type { ControlRequest, Ept12Mapping, EptSpec, EventInjection, L1Config } from '../../cpu/l1/config.js';

export const SCENARIO_FORMAT = 'turtles.scenario.v1';

/** L2 machine code: assembly lines (assembled by src/asm for the L2 mode's bitness at the code address) or hex bytes. */
export type ScenarioCode = { readonly asm: readonly string[] } | { readonly hex: string };

export interface ScenarioBytes {
  readonly gpa: bigint;
  /** Lowercase hex, no separators. */
  readonly hex: string;
}

export interface ScenarioL2 {
  readonly mode: L2Mode;
  readonly code: ScenarioCode;
  readonly user?: boolean;
  /** Initial GPRs by name (rax … r15, never rsp), in register order. */
  readonly gprs?: readonly (readonly [name: string, value: bigint])[];
  readonly rflags?: bigint;
  readonly data?: readonly ScenarioBytes[];
}

// These parts have the same shape in JSON terms as in the L1 configuration, so the scenario model names them once.
export type ScenarioControls = ControlRequest;
export type ScenarioEptMapping = Ept12Mapping;
export type ScenarioEpt = EptSpec;
export type ScenarioInjection = EventInjection;

/** A VMCS field: its name in the field table (e.g. "GUEST_RIP"), or the encoding when it has no name there. */
export type ScenarioField = string | number;
/** An exit reason: its name (e.g. "CPUID"), a basic reason number without a name, or 'any'. */
export type ScenarioReason = string | number;

export type ScenarioAction =
  | { readonly kind: 'skip' }
  | { readonly kind: 'emulate' }
  | ({ readonly kind: 'inject' } & ScenarioInjection)
  | { readonly kind: 'reinject' }
  | { readonly kind: 'deliver-interrupt' }
  | { readonly kind: 'set-control'; readonly field: 'pin' | 'primary' | 'secondary' | 'exit' | 'entry' | 'exception-bitmap'; readonly set?: number; readonly clear?: number }
  | { readonly kind: 'vmwrite'; readonly field: ScenarioField; readonly value: bigint }
  | { readonly kind: 'ept-map'; readonly l2: bigint; readonly l1: bigint; readonly pageSize?: EptPageSize; readonly read?: boolean; readonly write?: boolean; readonly execute?: boolean }
  | { readonly kind: 'ept-protect'; readonly l2: bigint; readonly read: boolean; readonly write: boolean; readonly execute: boolean }
  | { readonly kind: 'ept-unmap'; readonly l2: bigint }
  | { readonly kind: 'ept-fix' }
  | { readonly kind: 'invept'; readonly type: 1 | 2 }
  | { readonly kind: 'invvpid'; readonly type: 0 | 1 | 2 | 3; readonly linear?: bigint }
  | { readonly kind: 'switch-vmcs' }
  | { readonly kind: 'stop' };

export interface ScenarioRule {
  readonly reason: ScenarioReason;
  readonly actions: readonly ScenarioAction[];
  readonly from?: number;
  readonly count?: number;
}

/** The L1Config fields whose JSON form has the same type as in the configuration (64-bit values as bigint). */
type SameAsL1Config =
  | 'controls' | 'controlsMode' | 'exceptionBitmap' | 'pfecMask' | 'pfecMatch' | 'cr0Mask' | 'cr0Shadow' | 'cr4Mask'
  | 'cr4Shadow' | 'cr3Targets' | 'ioBitmap' | 'msrBitmap' | 'ept' | 'vpid' | 'tscOffset' | 'tscMultiplier'
  | 'preemptionTimer' | 'injection' | 'xssExitBitmap' | 'enclsExitingBitmap' | 'vmfuncControls' | 'tprThreshold'
  | 'maxExits' | 'vmxoffAtEnd';

/** The built-in L1's configuration (src/cpu/l1/config.ts L1Config) in JSON terms: the fields that name VMCS fields,
 * exit reasons or registers, or hold bytes, take their JSON forms; the others are L1Config's own. */
export interface ScenarioL1 extends Pick<L1Config, SameAsL1Config> {
  readonly l2: ScenarioL2;
  readonly shadowFields?: readonly ScenarioField[];
  readonly l1Msrs?: readonly { readonly index: number; readonly value: bigint }[];
  readonly l1Data?: readonly ScenarioBytes[];
  readonly vmcsWrites?: readonly { readonly field: ScenarioField; readonly value: bigint }[];
  readonly policy?: { readonly rules: readonly ScenarioRule[] };
}

export interface ScenarioL0 {
  readonly profile: 'sdm' | 'kvm';
  /** kvm only: the deviations switched on (default: all of KVM_OBSERVABLE_DEVIATIONS). */
  readonly deviations?: readonly string[];
}

/**
 * One external event arriving for L2: the machines' own ScheduledEvent (src/cpu/machine/run-guest.ts), raised before
 * the L2 step with index `at`, L2 steps counted over the whole run as ScheduledEvent counts them. Its JSON form is the
 * same object, so the scenario model takes the type rather than restating it.
 */
export type ScenarioEvent = ScheduledEvent;

export const SCENARIO_EVENT_KINDS = ['interrupt', 'nmi', 'timer', 'init', 'sipi', 'smi'] as const;

export interface Scenario {
  readonly format: typeof SCENARIO_FORMAT;
  readonly name: string;
  readonly description: string;
  /** CPU model id L0 advertises to L1 (schemas/cpu-models/); default DEFAULT_SCENARIO_CPU. */
  readonly cpu: string;
  readonly l0: ScenarioL0;
  readonly l1: ScenarioL1;
  /** Seed for what L2 draws from the platform (RDRAND/RDSEED); recorded in the trace header. */
  readonly seed?: bigint;
  /** External events for L2, in the order they are raised (stable by `at`); absent = none. */
  readonly events?: readonly ScenarioEvent[];
}

/** What L0 advertises by default: KVM's nested capabilities on the default host (the nested machine's usual L1 model). */
export const DEFAULT_SCENARIO_CPU = 'kvm-l1';

/** A scenario file that cannot be used: one line naming the source, the JSON path and what was expected. */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
  readonly kind = 'scenario';
  constructor(readonly source: string, readonly path: string, readonly expected: string) {
    super(`${source}: ${path}: ${expected}`);
  }
}
