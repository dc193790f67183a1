// Public surface of L1 as the oracle sees it: the L1Machine interface and programs, the observations (O1–O6) and the
// helpers both machines derive them with, and the built-in configurable L1 (config, policy, setup, emulation).
// Must not: contain logic. DESIGN.md §3–§4; reference §9.1.
export type { L1LaunchResult, L1Machine, L1Program, L1VmxResult } from './machine.js';
export type { ExitInformation, Observation, ObservationKind, ObservationSink } from './observation.js';
export {
  L1MemoryDigest, ObservationLog, detailDigest, eventText, fnv1a64, guestStateFields, l1StateDetail, l1StateObservation, l2StateDetail,
  readExitInformation, readGuestState, type CrView,
} from './observe.js';
export {
  L1Layout, L2_ENV_RANGES, validateL1Config, type ControlField, type ControlGroup, type ControlProblem, type ControlRequest, type EptSpec,
  type Ept12Mapping, type EventInjection, type L1Action, type L1Config, type L1Policy, type L1PolicyRule, type L2Spec,
  type MsrListEntry, type MsrLists,
} from './config.js';
export { DEFAULT_MAX_EXITS, builtinL1, defaultActions, type ExitView } from './builtin.js';
export { finalControls, readCaps, usesEpt, type FinalControls, type L1Caps } from './setup.js';
export { emulatedCpuid, emulatedMsrValue, emulatedPortValue, emulatedRandom } from './emulate.js';
export { Ept12Editor, buildEpt12, eptLeaf } from './ept12.js';
