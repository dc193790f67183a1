// Canonical JSON of a scenario (stored in trace headers so replay re-runs exactly what was recorded) and the
// conversion of a scenario into the built-in L1's L1Config, L0 profile and external-event schedule. Canonical form: members in the schema's order, absent
// members omitted, 64-bit values and bit masks as "0x…" lowercase hex, no whitespace — equal scenarios give equal text.
// Must not: accept unchecked input (scenarios come from parseScenario) or run anything.
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import type { L1Action, L1Config, L1PolicyRule } from '../../cpu/l1/config.js';
import type { ScheduledEvent } from '../../cpu/machine/run-guest.js';
import { REG_NAMES } from '../../cpu/state.js';
import { fieldByName } from '../../cpu/vmcs.js';
import { kvmProfile, sdmProfile, type KvmDeviationId, type L0Profile } from '../../nested/profile.js';
import { hexToBytes } from './json-reader.js';
import { scenarioCodeBytes } from './parse.js';
import type { Scenario, ScenarioAction, ScenarioBytes, ScenarioField, ScenarioInjection, ScenarioL1, ScenarioReason } from './types.js';

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

const hex = (x: bigint | number): string => `0x${x.toString(16)}`;

/** An object of the defined members only, in the order given. */
function obj(entries: readonly (readonly [string, Json | undefined])[]): { [k: string]: Json } {
  const out: { [k: string]: Json } = {};
  for (const [k, v] of entries) if (v !== undefined) out[k] = v;
  return out;
}

const opt = <T>(v: T | undefined, f: (x: T) => Json): Json | undefined => (v === undefined ? undefined : f(v));

function bytesJson(b: readonly ScenarioBytes[]): Json {
  return b.map((x) => obj([['gpa', hex(x.gpa)], ['hex', x.hex]]));
}

function injectionEntries(i: ScenarioInjection): [string, Json | undefined][] {
  return [['vector', i.vector], ['type', i.type], ['errorCode', opt(i.errorCode, hex)], ['instructionLength', i.instructionLength]];
}

function actionJson(a: ScenarioAction): Json {
  switch (a.kind) {
    case 'inject':
      return obj([['kind', a.kind], ...injectionEntries(a)]);
    case 'set-control':
      return obj([['kind', a.kind], ['field', a.field], ['set', opt(a.set, hex)], ['clear', opt(a.clear, hex)]]);
    case 'vmwrite':
      return obj([['kind', a.kind], ['field', a.field], ['value', hex(a.value)]]);
    case 'ept-map':
      return obj([['kind', a.kind], ['l2', hex(a.l2)], ['l1', hex(a.l1)], ['pageSize', a.pageSize], ['read', a.read], ['write', a.write], ['execute', a.execute]]);
    case 'ept-protect':
      return obj([['kind', a.kind], ['l2', hex(a.l2)], ['read', a.read], ['write', a.write], ['execute', a.execute]]);
    case 'ept-unmap':
      return obj([['kind', a.kind], ['l2', hex(a.l2)]]);
    case 'invept':
      return obj([['kind', a.kind], ['type', a.type]]);
    case 'invvpid':
      return obj([['kind', a.kind], ['type', a.type], ['linear', opt(a.linear, hex)]]);
    default:
      return { kind: a.kind };
  }
}

function l1Json(l: ScenarioL1): Json {
  const l2 = l.l2;
  return obj([
    ['l2', obj([
      ['mode', l2.mode], ['code', 'hex' in l2.code ? { hex: l2.code.hex } : { asm: [...l2.code.asm] }], ['user', l2.user],
      ['gprs', opt(l2.gprs, (g) => obj(g.map(([r, v]) => [r, hex(v)])))], ['rflags', opt(l2.rflags, hex)], ['data', opt(l2.data, bytesJson)],
    ])],
    ['controls', opt(l.controls, (c) => obj((['pin', 'primary', 'secondary', 'exit', 'entry'] as const).map((k) => [k, opt(c[k], hex)])))],
    ['controlsMode', l.controlsMode],
    ['exceptionBitmap', opt(l.exceptionBitmap, hex)], ['pfecMask', opt(l.pfecMask, hex)], ['pfecMatch', opt(l.pfecMatch, hex)],
    ['cr0Mask', opt(l.cr0Mask, hex)], ['cr0Shadow', opt(l.cr0Shadow, hex)], ['cr4Mask', opt(l.cr4Mask, hex)], ['cr4Shadow', opt(l.cr4Shadow, hex)],
    ['cr3Targets', opt(l.cr3Targets, (t) => t.map(hex))],
    ['ioBitmap', opt(l.ioBitmap, (p) => [...p])],
    ['msrBitmap', opt(l.msrBitmap, (m) => obj([['read', opt(m.read, (r) => r.map(hex))], ['write', opt(m.write, (w) => w.map(hex))]]))],
    ['ept', opt(l.ept, (e) => obj([
      ['mappings', opt(e.mappings, (ms) => ms.map((m) => obj([
        ['l2', hex(m.l2)], ['l1', hex(m.l1)], ['pageSize', m.pageSize], ['read', m.read], ['write', m.write], ['execute', m.execute], ['memType', m.memType],
      ])))],
      ['noDefaultMap', e.noDefaultMap], ['accessedDirty', e.accessedDirty], ['levels', e.levels],
    ]))],
    ['vpid', l.vpid], ['tscOffset', opt(l.tscOffset, hex)], ['tscMultiplier', opt(l.tscMultiplier, hex)], ['preemptionTimer', l.preemptionTimer],
    ['injection', opt(l.injection, (i) => obj(injectionEntries(i)))],
    ['xssExitBitmap', opt(l.xssExitBitmap, hex)], ['enclsExitingBitmap', opt(l.enclsExitingBitmap, hex)],
    ['shadowFields', opt(l.shadowFields, (f) => [...f])],
    ['vmfuncControls', opt(l.vmfuncControls, hex)], ['tprThreshold', l.tprThreshold],
    ['l1Msrs', opt(l.l1Msrs, (m) => m.map((x) => obj([['index', hex(x.index)], ['value', hex(x.value)]])))],
    ['l1Data', opt(l.l1Data, bytesJson)],
    ['vmcsWrites', opt(l.vmcsWrites, (w) => w.map((x) => obj([['field', x.field], ['value', hex(x.value)]])))],
    ['policy', opt(l.policy, (p) => ({
      rules: p.rules.map((r) => obj([['reason', r.reason], ['actions', r.actions.map(actionJson)], ['from', r.from], ['count', r.count]])),
    }))],
    ['maxExits', l.maxExits], ['vmxoffAtEnd', l.vmxoffAtEnd],
  ]);
}

/** The scenario as a JSON value in canonical member order (what canonicalScenarioJson prints). */
export function scenarioJsonValue(s: Scenario): Json {
  return obj([
    ['format', s.format], ['name', s.name], ['description', s.description], ['cpu', s.cpu],
    ['l0', obj([['profile', s.l0.profile], ['deviations', opt(s.l0.deviations, (d) => [...d])]])],
    ['seed', opt(s.seed, (x) => (x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : hex(x)))],
    ['events', opt(s.events, (es) => es.map((e) => obj([['at', e.at], ['kind', e.kind], ['vector', 'vector' in e ? e.vector : undefined]])))],
    ['l1', l1Json(s.l1)],
  ]);
}

/** Canonical compact JSON: byte-identical for equal scenarios, and parseScenario gives the scenario back. */
export function canonicalScenarioJson(s: Scenario): string {
  return JSON.stringify(scenarioJsonValue(s));
}

/** The scenario in canonical member order, indented (for files and docs). */
export function formatScenario(s: Scenario): string {
  return `${JSON.stringify(scenarioJsonValue(s), null, 2)}\n`;
}

// ---- conversion ---------------------------------------------------------------------------------------------------

function encodingOf(f: ScenarioField): number {
  if (typeof f === 'number') return f;
  const d = fieldByName(f);
  if (!d) throw new Error(`turtles bug: scenario field ${f} passed the parser but is not in the field table`);
  return d.encoding;
}

function reasonOf(r: ScenarioReason): number | 'any' {
  if (r === 'any' || typeof r === 'number') return r;
  const n = (ExitReason as Record<string, number>)[r];
  if (n === undefined) throw new Error(`turtles bug: exit reason ${r} passed the parser but is unknown`);
  return n;
}

function actionOf(a: ScenarioAction): L1Action {
  if (a.kind === 'vmwrite') return { kind: 'vmwrite', encoding: encodingOf(a.field), value: a.value };
  return a;
}

const bytesOf = (b: readonly ScenarioBytes[]) => b.map((x) => ({ gpa: x.gpa, bytes: hexToBytes(x.hex) }));

/** The built-in L1's configuration for a (parsed) scenario. */
export function scenarioToL1Config(s: Scenario): L1Config {
  const l = s.l1;
  const code = scenarioCodeBytes(l.l2.code, l.l2.mode);
  if (!(code instanceof Uint8Array)) throw new Error(`turtles bug: scenario ${s.name}: L2 code does not assemble after parsing (${code.message})`);
  const gprIndex = (name: string): number => REG_NAMES.indexOf(name as (typeof REG_NAMES)[number]);
  const rules: L1PolicyRule[] | undefined = l.policy?.rules.map((r) => ({
    reason: reasonOf(r.reason), actions: r.actions.map(actionOf), ...(r.from !== undefined ? { from: r.from } : {}), ...(r.count !== undefined ? { count: r.count } : {}),
  }));
  const c: { -readonly [K in keyof L1Config]: L1Config[K] } = {
    l2: {
      mode: l.l2.mode, code, ...(l.l2.user !== undefined ? { user: l.l2.user } : {}),
      ...(l.l2.gprs ? { gprs: l.l2.gprs.map(([r, v]) => [gprIndex(r), v] as const) } : {}),
      ...(l.l2.rflags !== undefined ? { rflags: l.l2.rflags } : {}), ...(l.l2.data ? { data: bytesOf(l.l2.data) } : {}),
    },
  };
  const copy = <K extends keyof ScenarioL1 & keyof L1Config>(k: K) => {
    if (l[k] !== undefined) (c as Record<string, unknown>)[k] = l[k];
  };
  for (const k of [
    'controls', 'controlsMode', 'exceptionBitmap', 'pfecMask', 'pfecMatch', 'cr0Mask', 'cr0Shadow', 'cr4Mask', 'cr4Shadow', 'cr3Targets', 'ioBitmap',
    'msrBitmap', 'ept', 'vpid', 'tscOffset', 'tscMultiplier', 'preemptionTimer', 'injection', 'xssExitBitmap', 'enclsExitingBitmap', 'vmfuncControls',
    'tprThreshold', 'maxExits', 'vmxoffAtEnd',
  ] as const) copy(k);
  if (l.shadowFields) c.shadowFields = l.shadowFields.map(encodingOf);
  if (l.l1Msrs) c.l1Msrs = l.l1Msrs.map((m) => [m.index, m.value] as const);
  if (l.l1Data) c.l1Data = bytesOf(l.l1Data);
  if (l.vmcsWrites) c.vmcsWrites = l.vmcsWrites.map((w) => [encodingOf(w.field), w.value] as const);
  if (rules) c.policy = { rules };
  return c;
}

/** The external-event schedule both machines run a scenario with. */
export function scenarioSchedule(s: Scenario): readonly ScheduledEvent[] {
  return s.events ?? [];
}

/** The L0 profile a scenario asks for. */
export function scenarioProfile(s: Scenario): L0Profile {
  if (s.l0.profile === 'sdm') return sdmProfile();
  return s.l0.deviations ? kvmProfile({ only: s.l0.deviations as KvmDeviationId[] }) : kvmProfile();
}
