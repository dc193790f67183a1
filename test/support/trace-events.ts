// Comparing recorded trace events in tests: an event as comparable text and the index of the first difference
// between two recordings. Must not: decide what a divergence is (replay does that); it only locates one independently.
import type { TraceEvent } from '../../src/replay/format/index.js';

/** An event as comparable text (bigint, Map and byte arrays spelled out). */
export function eventText(e: TraceEvent | undefined): string {
  return JSON.stringify(e ?? null, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v instanceof Map ? [...v.entries()] : v instanceof Uint8Array ? [...v] : v));
}

/** Index of the first event where two recordings differ (a missing event counts as a difference). */
export function firstEventDifference(a: readonly TraceEvent[], b: readonly TraceEvent[]): number {
  let i = 0;
  while (i < a.length && i < b.length && eventText(a[i]) === eventText(b[i])) i++;
  return i;
}
