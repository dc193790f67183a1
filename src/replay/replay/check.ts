// The contract between the replay driver and the check classes it runs over a trace: events in, divergences out,
// plus what was evaluated and what the trace did not allow to decide. New trace kinds (replay of model-recorded
// traces through the machines) add ReplayCheck implementations; the driver, the reports and the CLI stay as they are.
// Must not: read files, clocks or the environment.
import type { Divergence } from '../../checker/divergence.js';
import type { ExitColumns, ReflectionColumns, TraceEvent, TraceEventKind, TraceHeader, VmcsKind } from '../format/index.js';
import type { CpuModel } from '../../cpu/cpu-model.js';
import type { CheckClassId, RuleFilter } from './rules.js';

/** A divergence with where it came from in the imported source (when the trace knows). */
export interface Finding {
  readonly divergence: Divergence;
  readonly line?: number;
}

export interface ReplayEnv {
  readonly file: string;
  readonly header: TraceHeader;
  readonly filter: RuleFilter;
  /** CPU model for the VM-entry checks when the user named one (else the check class chooses). */
  readonly cpu?: CpuModel;
  /**
   * The trace's events from the first, decoded a chunk at a time, as often as asked (model replay compares its re-runs
   * with them in lockstep before the driver's walk).
   */
  readonly recorded?: () => Iterable<TraceEvent>;
  /** Report a divergence (the driver applies --checks, --event and --first). */
  emit(f: Finding): void;
}

/** A recorded VM-entry failure and the checks that explain it (agreement between the trace and the model). */
export interface ExplainedFailure {
  /** Event of the VMCS state that failed to enter. */
  readonly state: number;
  /** Event of the recorded failure exit. */
  readonly exit: number;
  /** The recorded exit reason, 0x-prefixed hex. */
  readonly reason: string;
  readonly checks: readonly { readonly id: string; readonly sdm: string; readonly class: string; readonly detail: string }[];
}

export interface CheckSummary {
  readonly id: CheckClassId;
  /** False when the class has nothing to check in this trace; `note` says why. */
  readonly applies: boolean;
  /** Items checked (exits, VMCS states, instruction exits, L2 exits). */
  readonly evaluated: number;
  /** Items the recorded data does not allow to decide. */
  readonly undecided: number;
  readonly divergences: number;
  readonly note: string;
  /** vm-entry: recorded VM-entry failures the checks explain. */
  readonly explained?: readonly ExplainedFailure[];
}

export interface ReplayCheck {
  readonly id: CheckClassId;
  /** Whether exit rows from the columnar decoder are all this check needs. */
  readonly columnar: boolean;
  onEvent(e: TraceEvent, index: number): void;
  /** Column mode only (columnar checks): one exit row, `index` its event number. */
  onExitRow?(cols: ExitColumns, row: number, index: number): void;
  /**
   * Set when the check can also run on the columnar decoder given exit rows, reflection rows and events of these
   * kinds as objects (onEvent), all in event order, with identical findings and summary; undefined = it cannot.
   */
  readonly columnarKinds?: readonly TraceEventKind[];
  /** With 'vmcs-snapshot' in columnarKinds: the only snapshot kinds it looks at (others may be skipped); undefined = all. */
  readonly columnarSnapshotKinds?: readonly VmcsKind[];
  /** Column mode with columnarKinds: one reflection row, `index` its event number. */
  onReflectionRow?(cols: ReflectionColumns, row: number, index: number): void;
  /** The trace ended (or replay stopped): decide what is still open. */
  finish(): void;
  /** Smallest event number an undecided item is anchored at; Infinity when nothing is open. */
  pending(): number;
  summary(divergences: number): CheckSummary;
}

/** A replay check class for the traces it applies to. */
export interface ReplayCheckFactory {
  readonly id: CheckClassId;
  create(env: ReplayEnv): ReplayCheck;
}
