// What every machine that implements L1Machine shares: the step clock, the run status, and emitting the O1 and O5
// observations in the order the ReferenceMachine's doc comment defines. The reference and the nested machine extend
// it, so the checker compares two streams produced by one piece of bookkeeping.
// Must not: execute anything; subclasses own the VMX behaviour and say where L1's RFLAGS live.
import type { L1LaunchResult, L1Program } from '../l1/machine.js';
import type { Observation, ObservationSink } from '../l1/observation.js';
import type { L1MemoryDigest } from '../l1/observe.js';
import type { ExternalEvents } from './run-guest.js';

/** 'running' until the L1 program returns ('completed') or the run ends early (L2 budget, interpreter gap, shutdown). */
export type MachineStatus = 'running' | 'completed' | 'budget-exhausted' | 'unsupported-instruction' | 'shutdown';

export interface MachineRunResult {
  readonly status: MachineStatus;
  /** L1 operations performed (the `step` of the next one). */
  readonly steps: number;
  readonly l2Steps: number;
  /** Exits to L1 (VM exits and VM-entry failures). */
  readonly exits: number;
}

type VmxInstructionObservation = Extract<Observation, { kind: 'vmx-instruction' }>;

export abstract class ObservingL1Machine {
  status: MachineStatus = 'running';
  protected stepNo = 0;
  protected exits = 0;
  /** Set by the subclass once its L1 memory exists (only when there is a sink: no sink, no observation computed). */
  protected digest: L1MemoryDigest | undefined;
  abstract readonly events: ExternalEvents;

  constructor(protected readonly sink: ObservationSink | undefined) {}

  /** Run an L1 program to its end (or until the run stops early). */
  run(program: L1Program): MachineRunResult {
    program(this as unknown as Parameters<L1Program>[0]);
    if (this.status === 'running') this.status = 'completed';
    return this.result();
  }

  result(): MachineRunResult {
    return { status: this.status, steps: this.stepNo, l2Steps: this.events.l2Steps, exits: this.exits };
  }

  /** L1's RFLAGS after the instruction just executed (reported in O1). */
  protected abstract l1Rflags(): bigint;

  /** Called with each new step number before the operation runs (the nested machine tells L0). */
  protected onStep(_step: number): void {}

  /** Start one L1 operation: its step number. */
  protected begin(): number {
    if (this.status !== 'running') throw new Error(`turtles bug: L1 operation after the run ended (${this.status})`);
    this.onStep(this.stepNo);
    return this.stepNo++;
  }

  protected o1(step: number, instruction: string, operands: readonly bigint[], r: L1LaunchResult, failedCheck?: string): void {
    const sink = this.sink;
    if (!sink) return;
    const o: { -readonly [K in keyof VmxInstructionObservation]: VmxInstructionObservation[K] } = {
      kind: 'vmx-instruction', step, instruction, operands, outcome: r.kind, rflags: this.l1Rflags(),
    };
    if ('error' in r) o.error = r.error;
    if ('vector' in r) o.vector = r.vector;
    if ('value' in r && r.value !== undefined) o.value = r.value;
    if (failedCheck !== undefined) o.failedCheck = failedCheck;
    sink.observe(o);
  }

  protected o5(step: number): void {
    if (this.sink && this.digest) this.sink.observe(this.digest.observe(step));
  }
}
