// The replay driver for one trace: runs the check classes (ReplayCheckFactory) over its events in order, or over the
// columnar decoder's rows (plus the kinds they need as objects) when every class can; applies --checks / --event /
// --first. Replay of model-recorded traces through the machines adds factories; reports and CLI stay. Must not: open
// files, read clocks or the environment, or order findings by anything but event then rule.
import type { CpuModel } from '../../cpu/cpu-model.js';
import { ChunkColumns, type TraceEventKind, type TraceReader, type VmcsKind } from '../format/index.js';
import type { CheckSummary, Finding, ReplayCheck, ReplayCheckFactory, ReplayEnv } from './check.js';
import { entryChecks } from './entry-check.js';
import { exitInfoChecks } from './exit-info-check.js';
import { reflectionChecks } from './reflection-check.js';
import { modelChecks } from './model-replay.js';
import { isModelRule } from './model-rules.js';
import { ripAdvanceChecks } from './rip-advance-check.js';
import { RuleFilter, type CheckClassId } from './rules.js';

/**
 * The check classes for recorded traces, in dispatch order: classes that decide an earlier event when a later one
 * arrives (VM-entry states, RIP advancement, reflection) run before the per-exit checks of that later event.
 */
export const RECORDED_TRACE_CHECKS: readonly ReplayCheckFactory[] = [entryChecks, ripAdvanceChecks, reflectionChecks, exitInfoChecks];

/** Traces `turtles record` made (the header carries their scenario): re-run it and compare (model-replay.ts). */
export const MODEL_TRACE_CHECKS: readonly ReplayCheckFactory[] = [modelChecks];

/** The check classes for a trace: model replay when its header carries a scenario, else the recorded-data checks. */
export function checksFor(reader: TraceReader): readonly ReplayCheckFactory[] {
  return reader.header.scenario ? MODEL_TRACE_CHECKS : RECORDED_TRACE_CHECKS;
}

export interface ReplayOptions {
  /** Rule-id prefixes (`--checks`); empty = every rule. */
  readonly checks?: readonly string[];
  /** Stop at the first divergence (`--first`). */
  readonly first?: boolean;
  /** Report only divergences anchored at this event (`--event N`); replay stops once it is decided. */
  readonly event?: number;
  /** CPU model for the VM-entry checks (`--cpu`). */
  readonly cpu?: CpuModel;
  /** 'auto' decodes in columns when every selected check class can run on them; 'events' always decodes objects. */
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

export function replayTrace(reader: TraceReader, options: ReplayOptions = {}, factories: readonly ReplayCheckFactory[] = checksFor(reader)): TraceReplay {
  const filter = new RuleFilter(options.checks ?? []);
  const findings: Finding[] = [];
  let stop = false;
  const target = options.event;
  const active: Active[] = [];
  for (const f of factories) {
    if (!filter.selectsClass(f.id)) continue;
    const slot: { a?: Active } = {};
    const env: ReplayEnv = {
      file: reader.file, header: reader.header, filter, ...(options.cpu ? { cpu: options.cpu } : {}), recorded: () => reader.events(),
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
  const rowsOnly = options.decode !== 'events' && active.length > 0 && active.every((a) => a.check.columnar);
  // Every check can run on columns (exit and reflection rows plus a few kinds as objects): the fast path of a full
  // replay. Not with --event, whose early stop relies on pending() over every event.
  const merged = !rowsOnly && options.decode !== 'events' && target === undefined && active.length > 0 && active.every((a) => a.check.columnarKinds !== undefined);
  const columnar = rowsOnly || merged;
  const total = reader.eventCount;
  let replayed = 0;
  let exits = 0;
  if (merged) {
    const r = replayMergedColumns(reader, active.map((a) => a.check), () => stop, options.onProgress);
    replayed = r.replayed;
    exits = r.exits;
  } else if (columnar) {
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

/**
 * Columnar replay for checks that declare columnarKinds: exit rows, reflection rows and the objects of those kinds,
 * merged into event order, so each check sees what the event path would show it, in the same order; stops after the
 * event at which `stopped()` turns true, as the event path does.
 */
function replayMergedColumns(
  reader: TraceReader, checks: readonly ReplayCheck[], stopped: () => boolean, onProgress: ReplayOptions['onProgress'],
): { replayed: number; exits: number } {
  const kinds = new Set<TraceEventKind>();
  for (const c of checks) for (const k of c.columnarKinds!) kinds.add(k);
  // Snapshot kinds no check looks at need not be decoded (each kind's deltas form their own chain).
  const snapshotKinds = new Set<VmcsKind>();
  let allSnapshots = false;
  for (const c of checks) {
    if (!c.columnarKinds!.includes('vmcs-snapshot')) continue;
    if (c.columnarSnapshotKinds === undefined) allSnapshots = true;
    else for (const k of c.columnarSnapshotKinds) snapshotKinds.add(k);
  }
  const wantsReflections = checks.filter((c) => c.onReflectionRow !== undefined);
  const cols = new ChunkColumns();
  // Snapshot maps are built only for checks that read `fields` (entry-check.ts and rip-advance-check.ts read the slots).
  const options = { objects: kinds, lazySnapshotFields: true, ...(allSnapshots ? {} : { snapshotKinds }) };
  let exits = 0;
  for (let c = 0; c < reader.chunks.length; c++) {
    reader.decodeChunkColumns(c, cols, options);
    const rows = cols.exits;
    const refl = cols.reflections;
    const objects = cols.objects;
    const first = cols.firstEvent;
    let r = 0;
    let f = wantsReflections.length > 0 ? 0 : refl.length;
    let o = 0;
    for (;;) {
      const er = r < rows.length ? rows.event[r]! : Infinity;
      const ef = f < refl.length ? refl.event[f]! : Infinity;
      const eo = o < objects.length ? objects[o]!.event : Infinity;
      let rel: number;
      if (er <= ef && er <= eo) {
        if (er === Infinity) break;
        rel = er;
        exits++;
        for (const k of checks) k.onExitRow!(rows, r, first + rel);
        r++;
      } else if (ef <= eo) {
        rel = ef;
        for (const k of wantsReflections) k.onReflectionRow!(refl, f, first + rel);
        f++;
      } else {
        rel = eo;
        const e = objects[o]!.value;
        for (const k of checks) k.onEvent(e, first + rel);
        o++;
      }
      if (stopped()) return { replayed: first + rel + 1, exits };
    }
    onProgress?.(first + cols.eventCount, reader.eventCount);
  }
  return { replayed: reader.eventCount, exits };
}

/** The class a rule id belongs to (trace rules by prefix; VM-entry check ids otherwise). */
export function classOfRule(rule: string): CheckClassId {
  if (rule.startsWith('trace.exit-info.')) return 'exit-info';
  if (rule === 'trace.rip-advance') return 'rip-advance';
  if (rule.startsWith('trace.reflection.')) return 'reflection';
  if (isModelRule(rule)) return 'model';
  return 'vm-entry';
}
