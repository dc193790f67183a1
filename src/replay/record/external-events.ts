// The `external` input event of one scheduled external event as the nested machine raises it for L2 (the recorder
// emits it at that point; replay's re-run emits it the same way, so both are made by this one mapping).
// Must not: decide when an event is raised (src/cpu/machine/run-guest.ts ExternalEvents does) or run anything.
import { DEFAULT_TIMER_VECTOR, type ScheduledEvent } from '../../cpu/machine/run-guest.js';
import { external, type ExternalEventEvent } from '../format/events.js';

/**
 * `e` raised before L2 step `step` (the step clock of ScheduledEvent, so `atInstruction` is `e.at` unless the event
 * fell due while L1 ran and waited for L2): target L2. The platform timer is an external interrupt at its vector.
 */
export function scheduledEventEvent(e: ScheduledEvent, step: number): ExternalEventEvent {
  const at = { atInstruction: BigInt(step), target: 'L2' as const };
  switch (e.kind) {
    case 'interrupt': return external('interrupt', { ...at, vector: e.vector });
    case 'timer': return external('interrupt', { ...at, vector: e.vector ?? DEFAULT_TIMER_VECTOR });
    case 'sipi': return external('sipi', { ...at, vector: e.vector });
    case 'nmi': return external('nmi', { ...at, vector: 2 });
    case 'init': return external('init', at);
    case 'smi': return external('smi', at);
  }
}
