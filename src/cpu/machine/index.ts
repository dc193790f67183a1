// Public surface of the single-level (reference) machine: the machine itself, the reusable "run a guest under a VMCS
// until it exits" loop with its event schedule and memory port, L1-physical memory and the default L1 state.
// Must not: contain logic. SDM Vol. 3C ch. 25–27; reference §9.1.
export {
  DEFAULT_L2_STEP_BUDGET, ReferenceMachine, runReference, type MachineRunResult, type MachineStatus, type ReferenceMachineOptions,
} from './reference-machine.js';
export {
  DEFAULT_TIMER_VECTOR, ExternalEvents, GuestMemoryPort, runGuestUntilExit, type GuestEntry, type GuestRunResult, type RunGuestArgs,
  type ScheduledEvent,
} from './run-guest.js';
export { L1PhysicalPort, L1_DEFAULTS, assignCpuState, defaultL1State } from './l1-memory.js';
export { CachedEptGuestMemory } from './ept-guest-memory.js';
export { ObservingL1Machine } from './observing-machine.js';
