// The replay driver for one trace: runs the check classes (ReplayCheckFactory) over its events in order, or over the
// columnar exit rows when only exit checks are selected, applying --checks / --event / --first. Replay of
// model-recorded traces through the machines adds factories; reports and CLI stay. Must not: open files, read clocks
// or the environment, or order findings by anything but event then rule.
import type { CpuModel } from '../../cpu/cpu-model.js';
import { ChunkColumns, type TraceReader } from '../format/index.js';
import type { CheckSummary, Finding, ReplayCheck, ReplayCheckFactory, ReplayEnv } from './check.js';
import { entryChecks } from './entry-check.js';
import { exitInfoChecks } from './exit-info-check.js';
import { reflectionChecks } from './reflection-check.js';
import { ripAdvanceChecks } from './rip-advance-check.js';
import { RuleFilter, type CheckClassId } from './rules.js';

/**
 * The check classes for recorded traces, in dispatch order: classes that decide an earlier event when a later one
 * arrives (VM-entry states, RIP advancement, reflection) run before the per-exit checks of that later event.
 */
export const RECORDED_TRACE_CHECKS: readonly ReplayCheckFactory[] = [entryChecks, ripAdvanceChecks, reflectionChecks, exitInfoChecks];

export interface ReplayOptions {
  /** Rule-id prefixes (`--checks`); empty = every rule. */
  readonly checks?: readonly string[];
  /** Stop at the first divergence (`--first`). */
  readonly first?: boolean;
  /** Report only divergences anchored at this event (`--event N`); replay stops once it is decided. */
  readonly event?: number;
  /** CPU model for the VM-entry checks (`--cpu`). */
  readonly cpu?: CpuModel;
  /** 'auto' decodes in columns when only exit checks are selected; 'events' always decodes objects. */
  readonly decode?: 'auto' | 'events';
  /** Called after each chunk with events done and the total. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface TraceReplay {
  readonly file: string;
  readonly events: number;
  /** Events the replay went through (fewer than `events` with --first or --event). */
  readonly replayed: number;
  readonly exits: number;
  /** Sorted by event, then rule. */
  readonly findings: readonly Finding[];
  readonly checks: readonly CheckSummary[];
  /** --first stopped the replay at a divergence. */
  readonly stopped: boolean;
  readonly decode: 'events' | 'columns';
}

interface Active {
  readonly check: ReplayCheck;
  count: number;
}

export function replayTrace(reader: TraceReader, options: ReplayOptions = {}, factories: readonly ReplayCheckFactory[] = RECORDED_TRACE_CHECKS): TraceReplay {
  const filter = new RuleFilter(options.checks ?? []);
  const findings: Finding[] = [];
  let stop = false;
  const target = options.event;
  const active: Active[] = [];
  for (const f of factories) {
    if (!filter.selectsClass(f.id)) continue;
    const slot: { a?: Active } = {};
    const env: ReplayEnv = {
      file: reader.file, header: reader.header, filter, ...(options.cpu ? { cpu: options.cpu } : {}),
      emit: (x) => {
        if (target !== undefined && x.divergence.event !== target) return;
        if (stop) return;
        findings.push(x);
        slot.a!.count++;
        if (options.first) stop = true;
      },
    };
    slot.a = { check: f.create(env), count: 0 };
    active.push(slot.a);
  }
  const columnar = options.decode !== 'events' && active.length > 0 && active.every((a) => a.check.columnar);
  const total = reader.eventCount;
  let replayed = 0;
  let exits = 0;
  if (columnar) {
    const cols = new ChunkColumns();
    const firstChunk = target !== undefined ? reader.chunkOf(Math.min(target, Math.max(total - 1, 0))) : 0;
    for (let c = firstChunk; c < reader.chunks.length && !stop; c++) {
      reader.decodeChunkColumns(c, cols);
      const rows = cols.exits;
      for (let r = 0; r < rows.length && !stop; r++) {
        const index = cols.firstEvent + rows.event[r]!;
        if (target !== undefined && index !== target) continue;
        exits++;
        for (const a of active) a.check.onExitRow!(rows, r, index);
      }
      replayed += cols.eventCount;
      options.onProgress?.(cols.firstEvent + cols.eventCount, total);
      if (target !== undefined) break;
    }
  } else {
    let index = 0;
    for (const e of reader.events()) {
      if (e.kind === 'vm-exit' || e.kind === 'l0-exit') exits++;
      for (const a of active) a.check.onEvent(e, index);
      index++;
      if (stop) break;
      if (target !== undefined && index > target && active.every((a) => a.check.pending() > target)) break;
      if ((index & 0xffff) === 0) options.onProgress?.(index, total);
    }
    replayed = index;
    options.onProgress?.(index, total);
  }
  for (const a of active) a.check.finish();
  findings.sort((a, b) => a.divergence.event - b.divergence.event || (a.divergence.rule < b.divergence.rule ? -1 : a.divergence.rule > b.divergence.rule ? 1 : 0));
  const checks = active.map((a) => a.check.summary(a.count));
  return { file: reader.file, events: total, replayed, exits, findings, checks, stopped: stop, decode: columnar ? 'columns' : 'events' };
}

/** The class a rule id belongs to (trace rules by prefix; VM-entry check ids otherwise). */
export function classOfRule(rule: string): CheckClassId {
  if (rule.startsWith('trace.exit-info.')) return 'exit-info';
  if (rule === 'trace.rip-advance') return 'rip-advance';
  if (rule.startsWith('trace.reflection.')) return 'reflection';
  return 'vm-entry';
}
