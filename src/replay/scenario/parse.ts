// Parser of `turtles.scenario.v1` JSON text into a normalized Scenario: every member checked against the format
// (docs/scenarios.md, schemas/scenario.schema.json), unknown members refused, L2 assembly assembled once to report its
// errors at the line's JSON path. Errors are one-line ScenarioErrors (source, JSON path, what was expected).
// Must not: read files (callers pass text) or run the scenario.
import { assemble } from '../../asm/index.js';
import { findCpuModel } from '../../cpu/cpu-model.js';
import { ExitReason } from '../../cpu/generated/exit-reasons.js';
import { L2_MODES, L2Layout, modeBitness, type L2Mode } from '../../cpu/interp/l2-env.js';
import { REG_NAMES } from '../../cpu/state.js';
import { fieldByName, fieldDef } from '../../cpu/vmcs.js';
import { KVM_OBSERVABLE_DEVIATIONS } from '../../nested/profile.js';
import { JsonReader, keyPath, type JsonObject } from './json-reader.js';
import {
  DEFAULT_SCENARIO_CPU, SCENARIO_EVENT_KINDS, SCENARIO_FORMAT, ScenarioError, type Scenario, type ScenarioAction, type ScenarioBytes, type ScenarioCode, type ScenarioEvent,
  type ScenarioControls, type ScenarioEpt, type ScenarioEptMapping, type ScenarioField, type ScenarioInjection, type ScenarioL1,
  type ScenarioL2, type ScenarioReason, type ScenarioRule,
} from './types.js';

/** Largest scenario text accepted (a scenario is a description, not data). */
export const MAX_SCENARIO_BYTES = 4 << 20;
const MAX_CODE_BYTES = 0x1_0000;
const MAX_DATA_BYTES = 1 << 20;
const MAX_EVENTS = 1 << 16;
const PAGE_SIZES = ['4K', '2M', '1G'] as const;
const CONTROL_FIELDS = ['pin', 'primary', 'secondary', 'exit', 'entry', 'exception-bitmap'] as const;
const ACTION_KINDS = [
  'skip', 'emulate', 'inject', 'reinject', 'deliver-interrupt', 'set-control', 'vmwrite', 'ept-map', 'ept-protect', 'ept-unmap', 'ept-fix',
  'invept', 'invvpid', 'switch-vmcs', 'stop',
] as const;
const EXIT_REASON_NAMES = new Map<number, string>(Object.entries(ExitReason).map(([k, v]) => [v, k]));

/** Where L2 code is placed, as the assembler must see it (real mode: CS base = code address, IP 0). */
export function codeOrigin(mode: L2Mode): bigint {
  return mode === 'real' ? 0n : L2Layout.CODE;
}

/** Assemble a scenario's L2 code (the parser has already checked it assembles). */
export function scenarioCodeBytes(code: ScenarioCode, mode: L2Mode): Uint8Array | { line: number; message: string } {
  if ('hex' in code) {
    const out = new Uint8Array(code.hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(code.hex.slice(2 * i, 2 * i + 2), 16);
    return out;
  }
  const r = assemble(code.asm.join('\n'), { bitness: modeBitness(mode), ip: codeOrigin(mode) });
  return r.ok ? r.bytes : { line: r.error.line, message: r.error.message };
}

class ScenarioParser {
  constructor(private readonly j: JsonReader) {}

  scenario(v: unknown): Scenario {
    const j = this.j;
    const o = j.object(v, '$', ['$schema', 'format', 'name', 'description', 'cpu', 'l0', 'l1', 'seed', 'events'], ['format', 'name', 'l1']);
    if (o['format'] !== SCENARIO_FORMAT) j.fail('$.format', `"${SCENARIO_FORMAT}"`, o['format']);
    const name = j.string(o['name'], '$.name');
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) j.fail('$.name', 'a name of 1-64 characters a-z, 0-9, ".", "_", "-" starting with a letter or digit', name);
    const description = o['description'] === undefined ? '' : j.string(o['description'], '$.description');
    const cpu = o['cpu'] === undefined ? DEFAULT_SCENARIO_CPU : j.string(o['cpu'], '$.cpu');
    if (!findCpuModel(cpu)) j.fail('$.cpu', 'a CPU model id from schemas/cpu-models/', cpu);
    const l0 = o['l0'] === undefined ? { profile: 'sdm' as const } : this.l0(o['l0']);
    const seed = o['seed'] === undefined ? undefined : this.seed(o['seed'], '$.seed');
    const events = o['events'] === undefined ? undefined : this.events(o['events'], '$.events');
    return {
      format: SCENARIO_FORMAT, name, description, cpu, l0, l1: this.l1(o['l1'], '$.l1'), ...(seed !== undefined ? { seed } : {}),
      ...(events !== undefined ? { events } : {}),
    };
  }

  /** The external-event schedule, stably sorted by `at`: the order ScheduledEvent raises them in, so it is canonical. */
  private events(v: unknown, path: string): ScenarioEvent[] {
    const j = this.j;
    const list = j.array(v, path, MAX_EVENTS).map((x, i): ScenarioEvent => {
      const ip = `${path}[${i}]`;
      if (x === null || typeof x !== 'object' || Array.isArray(x)) j.fail(ip, 'an event object with "at" and "kind"', x);
      const kind = j.oneOf((x as JsonObject)['kind'], `${ip}.kind`, SCENARIO_EVENT_KINDS);
      // ScheduledEvent: interrupt and SIPI carry a vector, the timer may (default 0x20), the others have none.
      const needsVector = kind === 'interrupt' || kind === 'sipi';
      const o = j.object(x, ip, needsVector || kind === 'timer' ? ['at', 'kind', 'vector'] : ['at', 'kind'], needsVector ? ['at', 'vector'] : ['at']);
      const at = j.int(o['at'], `${ip}.at`, 0, Number.MAX_SAFE_INTEGER, false);
      const vector = o['vector'] === undefined ? undefined : j.int(o['vector'], `${ip}.vector`, 0, 255);
      switch (kind) {
        case 'interrupt': case 'sipi': return { at, kind, vector: vector! };
        case 'timer': return vector === undefined ? { at, kind } : { at, kind, vector };
        default: return { at, kind };
      }
    });
    return list.sort((a, b) => a.at - b.at);
  }

  seed(v: unknown, path: string): bigint {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
    if (typeof v === 'string') return this.j.u64(v, path);
    return this.j.fail(path, 'a non-negative integer or a "0x…" hex string', v);
  }

  private l0(v: unknown): Scenario['l0'] {
    const j = this.j;
    const o = j.object(v, '$.l0', ['profile', 'deviations'], ['profile']);
    const profile = j.oneOf(o['profile'], '$.l0.profile', ['sdm', 'kvm'] as const);
    if (o['deviations'] === undefined) return { profile };
    if (profile !== 'kvm') j.fail('$.l0.deviations', 'no deviations with profile "sdm" (they belong to the kvm profile)');
    const list = j.array(o['deviations'], '$.l0.deviations', KVM_OBSERVABLE_DEVIATIONS.length);
    const seen = new Set<string>();
    list.forEach((d, i) => {
      const id = j.oneOf(d, `$.l0.deviations[${i}]`, KVM_OBSERVABLE_DEVIATIONS);
      if (seen.has(id)) j.fail(`$.l0.deviations[${i}]`, `each deviation once, "${id}" is listed twice`);
      seen.add(id);
    });
    // Canonical order: the profile's own order, so equal sets serialize equally.
    return { profile, deviations: KVM_OBSERVABLE_DEVIATIONS.filter((d) => seen.has(d)) };
  }

  private l1(v: unknown, path: string): ScenarioL1 {
    const j = this.j;
    const o = j.object(v, path, [
      'l2', 'controls', 'controlsMode', 'exceptionBitmap', 'pfecMask', 'pfecMatch', 'cr0Mask', 'cr0Shadow', 'cr4Mask', 'cr4Shadow', 'cr3Targets',
      'ioBitmap', 'msrBitmap', 'ept', 'vpid', 'tscOffset', 'tscMultiplier', 'preemptionTimer', 'injection', 'xssExitBitmap', 'enclsExitingBitmap',
      'shadowFields', 'vmfuncControls', 'tprThreshold', 'l1Msrs', 'l1Data', 'vmcsWrites', 'policy', 'maxExits', 'vmxoffAtEnd',
    ], ['l2']);
    const p = (k: string) => keyPath(path, k);
    const out: { -readonly [K in keyof ScenarioL1]: ScenarioL1[K] } = { l2: this.l2(o['l2'], p('l2')) };
    const u32 = (k: 'exceptionBitmap' | 'pfecMask' | 'pfecMatch') => {
      if (o[k] !== undefined) out[k] = j.u32(o[k], p(k));
    };
    const u64 = (k: 'cr0Mask' | 'cr0Shadow' | 'cr4Mask' | 'cr4Shadow' | 'tscOffset' | 'tscMultiplier' | 'xssExitBitmap' | 'enclsExitingBitmap' | 'vmfuncControls') => {
      if (o[k] !== undefined) out[k] = j.u64(o[k], p(k));
    };
    if (o['controls'] !== undefined) out.controls = this.controls(o['controls'], p('controls'));
    if (o['controlsMode'] !== undefined) out.controlsMode = j.oneOf(o['controlsMode'], p('controlsMode'), ['adjust', 'exact'] as const);
    u32('exceptionBitmap');
    u32('pfecMask');
    u32('pfecMatch');
    u64('cr0Mask');
    u64('cr0Shadow');
    u64('cr4Mask');
    u64('cr4Shadow');
    if (o['cr3Targets'] !== undefined) out.cr3Targets = j.array(o['cr3Targets'], p('cr3Targets'), 256).map((x, i) => j.u64(x, `${p('cr3Targets')}[${i}]`));
    if (o['ioBitmap'] !== undefined) out.ioBitmap = this.intList(o['ioBitmap'], p('ioBitmap'), 0, 0xffff);
    if (o['msrBitmap'] !== undefined) {
      const m = j.object(o['msrBitmap'], p('msrBitmap'), ['read', 'write']);
      const mp = p('msrBitmap');
      out.msrBitmap = {
        ...(m['read'] !== undefined ? { read: this.intList(m['read'], `${mp}.read`, 0, 0xffff_ffff) } : {}),
        ...(m['write'] !== undefined ? { write: this.intList(m['write'], `${mp}.write`, 0, 0xffff_ffff) } : {}),
      };
    }
    if (o['ept'] !== undefined) out.ept = this.ept(o['ept'], p('ept'));
    if (o['vpid'] !== undefined) out.vpid = j.int(o['vpid'], p('vpid'), 0, 0xffff);
    u64('tscOffset');
    u64('tscMultiplier');
    if (o['preemptionTimer'] !== undefined) out.preemptionTimer = j.u32(o['preemptionTimer'], p('preemptionTimer'));
    if (o['injection'] !== undefined) out.injection = this.injection(o['injection'], p('injection'), {});
    u64('xssExitBitmap');
    u64('enclsExitingBitmap');
    if (o['shadowFields'] !== undefined) out.shadowFields = j.array(o['shadowFields'], p('shadowFields'), 4096).map((x, i) => this.field(x, `${p('shadowFields')}[${i}]`));
    u64('vmfuncControls');
    if (o['tprThreshold'] !== undefined) out.tprThreshold = j.int(o['tprThreshold'], p('tprThreshold'), 0, 15);
    if (o['l1Msrs'] !== undefined) {
      out.l1Msrs = j.array(o['l1Msrs'], p('l1Msrs'), 4096).map((x, i) => {
        const ip = `${p('l1Msrs')}[${i}]`;
        const m = j.object(x, ip, ['index', 'value'], ['index', 'value']);
        return { index: j.u32(m['index'], `${ip}.index`), value: j.u64(m['value'], `${ip}.value`) };
      });
    }
    if (o['l1Data'] !== undefined) out.l1Data = this.bytesList(o['l1Data'], p('l1Data'));
    if (o['vmcsWrites'] !== undefined) {
      out.vmcsWrites = j.array(o['vmcsWrites'], p('vmcsWrites'), 4096).map((x, i) => {
        const ip = `${p('vmcsWrites')}[${i}]`;
        const m = j.object(x, ip, ['field', 'value'], ['field', 'value']);
        return { field: this.field(m['field'], `${ip}.field`), value: j.u64(m['value'], `${ip}.value`) };
      });
    }
    if (o['policy'] !== undefined) {
      const pol = j.object(o['policy'], p('policy'), ['rules'], ['rules']);
      const rp = `${p('policy')}.rules`;
      out.policy = { rules: j.array(pol['rules'], rp, 4096).map((r, i) => this.rule(r, `${rp}[${i}]`)) };
    }
    if (o['maxExits'] !== undefined) out.maxExits = j.int(o['maxExits'], p('maxExits'), 1, 2 ** 31 - 1, false);
    if (o['vmxoffAtEnd'] !== undefined) out.vmxoffAtEnd = j.boolean(o['vmxoffAtEnd'], p('vmxoffAtEnd'));
    return out;
  }

  private l2(v: unknown, path: string): ScenarioL2 {
    const j = this.j;
    const o = j.object(v, path, ['mode', 'code', 'user', 'gprs', 'rflags', 'data'], ['mode', 'code']);
    const mode = j.oneOf(o['mode'], `${path}.mode`, L2_MODES);
    const code = this.code(o['code'], `${path}.code`, mode);
    const out: { -readonly [K in keyof ScenarioL2]: ScenarioL2[K] } = { mode, code };
    if (o['user'] !== undefined) out.user = j.boolean(o['user'], `${path}.user`);
    if (o['gprs'] !== undefined) {
      const gp = `${path}.gprs`;
      const names = REG_NAMES.filter((r) => r !== 'rsp');
      const g = j.object(o['gprs'], gp, names);
      out.gprs = names.filter((r) => g[r] !== undefined).map((r) => [r, j.u64(g[r], keyPath(gp, r))] as const);
    }
    if (o['rflags'] !== undefined) out.rflags = j.u64(o['rflags'], `${path}.rflags`);
    if (o['data'] !== undefined) out.data = this.bytesList(o['data'], `${path}.data`);
    return out;
  }

  private code(v: unknown, path: string, mode: L2Mode): ScenarioCode {
    const j = this.j;
    const o = j.object(v, path, ['asm', 'hex']);
    if ((o['asm'] === undefined) === (o['hex'] === undefined)) j.fail(path, 'exactly one of "asm" (assembly lines) or "hex" (bytes)');
    let code: ScenarioCode;
    if (o['hex'] !== undefined) {
      code = { hex: j.hexBytes(o['hex'], `${path}.hex`, MAX_CODE_BYTES) };
      if (code.hex.length === 0) j.fail(`${path}.hex`, 'at least one byte of code');
    } else {
      const lines = j.array(o['asm'], `${path}.asm`, 65_536).map((x, i) => j.string(x, `${path}.asm[${i}]`));
      code = { asm: lines };
    }
    const bytes = scenarioCodeBytes(code, mode);
    if (!(bytes instanceof Uint8Array)) return j.fail(`${path}.asm[${bytes.line - 1}]`, `an instruction the ${modeBitness(mode)}-bit assembler accepts (${bytes.message})`);
    if (bytes.length === 0) j.fail(path, 'at least one instruction');
    if (bytes.length > MAX_CODE_BYTES) j.fail(path, `at most ${MAX_CODE_BYTES} bytes of code, got ${bytes.length}`);
    return code;
  }

  private controls(v: unknown, path: string): ScenarioControls {
    const o = this.j.object(v, path, ['pin', 'primary', 'secondary', 'exit', 'entry']);
    const out: { -readonly [K in keyof ScenarioControls]: number } = {};
    for (const k of ['pin', 'primary', 'secondary', 'exit', 'entry'] as const) if (o[k] !== undefined) out[k] = this.j.u32(o[k], `${path}.${k}`);
    return out;
  }

  private ept(v: unknown, path: string): ScenarioEpt {
    const j = this.j;
    const o = j.object(v, path, ['mappings', 'noDefaultMap', 'accessedDirty', 'levels']);
    const out: { -readonly [K in keyof ScenarioEpt]: ScenarioEpt[K] } = {};
    if (o['mappings'] !== undefined) {
      out.mappings = j.array(o['mappings'], `${path}.mappings`, 65_536).map((x, i): ScenarioEptMapping => {
        const mp = `${path}.mappings[${i}]`;
        const m = j.object(x, mp, ['l2', 'l1', 'pageSize', 'read', 'write', 'execute', 'memType'], ['l2', 'l1']);
        return {
          l2: j.u64(m['l2'], `${mp}.l2`), l1: j.u64(m['l1'], `${mp}.l1`),
          ...(m['pageSize'] !== undefined ? { pageSize: j.oneOf(m['pageSize'], `${mp}.pageSize`, PAGE_SIZES) } : {}),
          ...this.rights(m, mp, false),
          ...(m['memType'] !== undefined ? { memType: j.int(m['memType'], `${mp}.memType`, 0, 7) } : {}),
        };
      });
    }
    if (o['noDefaultMap'] !== undefined) out.noDefaultMap = j.boolean(o['noDefaultMap'], `${path}.noDefaultMap`);
    if (o['accessedDirty'] !== undefined) out.accessedDirty = j.boolean(o['accessedDirty'], `${path}.accessedDirty`);
    if (o['levels'] !== undefined) {
      const n = j.int(o['levels'], `${path}.levels`, 4, 5, false);
      out.levels = n === 4 ? 4 : 5;
    }
    return out;
  }

  private rights(m: JsonObject, path: string, required: boolean): { read?: boolean; write?: boolean; execute?: boolean } {
    const out: { read?: boolean; write?: boolean; execute?: boolean } = {};
    for (const k of ['read', 'write', 'execute'] as const) {
      if (m[k] !== undefined) out[k] = this.j.boolean(m[k], `${path}.${k}`);
      else if (required) this.j.fail(`${path}.${k}`, `a required member "${k}"`);
    }
    return out;
  }

  private injection(v: unknown, path: string, o0: { action?: boolean }): ScenarioInjection {
    const j = this.j;
    const allowed = ['vector', 'type', 'errorCode', 'instructionLength', ...(o0.action ? ['kind'] : [])];
    const o = j.object(v, path, allowed, ['vector', 'type']);
    return {
      vector: j.int(o['vector'], `${path}.vector`, 0, 255), type: j.int(o['type'], `${path}.type`, 0, 7),
      ...(o['errorCode'] !== undefined ? { errorCode: j.u32(o['errorCode'], `${path}.errorCode`) } : {}),
      ...(o['instructionLength'] !== undefined ? { instructionLength: j.int(o['instructionLength'], `${path}.instructionLength`, 0, 15) } : {}),
    };
  }

  private intList(v: unknown, path: string, min: number, max: number): number[] {
    return this.j.array(v, path, 65_536).map((x, i) => this.j.int(x, `${path}[${i}]`, min, max));
  }

  private bytesList(v: unknown, path: string): ScenarioBytes[] {
    const j = this.j;
    let total = 0;
    return j.array(v, path, 4096).map((x, i) => {
      const ip = `${path}[${i}]`;
      const o = j.object(x, ip, ['gpa', 'hex'], ['gpa', 'hex']);
      const hex = j.hexBytes(o['hex'], `${ip}.hex`, MAX_DATA_BYTES);
      total += hex.length / 2;
      if (total > MAX_DATA_BYTES) j.fail(ip, `at most ${MAX_DATA_BYTES} bytes of data in ${path}`);
      return { gpa: j.u64(o['gpa'], `${ip}.gpa`), hex };
    });
  }

  /** A VMCS field by name, or by encoding (normalized to the name when the table has one). */
  field(v: unknown, path: string): ScenarioField {
    if (typeof v === 'string' && !v.startsWith('0x')) {
      const d = fieldByName(v);
      if (!d) this.j.fail(path, 'a VMCS field name from the field table (`turtles fields`) or an encoding', v);
      return d.name;
    }
    const n = this.j.u32(v, path);
    return fieldDef(n)?.name ?? n;
  }

  private reason(v: unknown, path: string): ScenarioReason {
    if (v === 'any') return 'any';
    if (typeof v === 'string' && !v.startsWith('0x')) {
      if (!(v in ExitReason)) this.j.fail(path, '"any", an exit reason name (e.g. "CPUID") or a basic exit reason number', v);
      return v;
    }
    const n = this.j.int(v, path, 0, 0xffff);
    return EXIT_REASON_NAMES.get(n) ?? n;
  }

  private rule(v: unknown, path: string): ScenarioRule {
    const j = this.j;
    const o = j.object(v, path, ['reason', 'actions', 'from', 'count'], ['reason', 'actions']);
    return {
      reason: this.reason(o['reason'], `${path}.reason`),
      actions: j.array(o['actions'], `${path}.actions`, 256).map((a, i) => this.action(a, `${path}.actions[${i}]`)),
      ...(o['from'] !== undefined ? { from: j.int(o['from'], `${path}.from`, 1, 2 ** 31 - 1, false) } : {}),
      ...(o['count'] !== undefined ? { count: j.int(o['count'], `${path}.count`, 0, 2 ** 31 - 1, false) } : {}),
    };
  }

  private action(v: unknown, path: string): ScenarioAction {
    const j = this.j;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) j.fail(path, 'an action object with a "kind"', v);
    const kind = j.oneOf((v as JsonObject)['kind'], `${path}.kind`, ACTION_KINDS);
    const only = (...keys: string[]) => j.object(v, path, ['kind', ...keys], keys);
    switch (kind) {
      case 'skip': case 'emulate': case 'reinject': case 'deliver-interrupt': case 'ept-fix': case 'switch-vmcs': case 'stop':
        only();
        return { kind };
      case 'inject':
        return { kind, ...this.injection(v, path, { action: true }) };
      case 'set-control': {
        const o = j.object(v, path, ['kind', 'field', 'set', 'clear'], ['field']);
        return {
          kind, field: j.oneOf(o['field'], `${path}.field`, CONTROL_FIELDS),
          ...(o['set'] !== undefined ? { set: j.u32(o['set'], `${path}.set`) } : {}),
          ...(o['clear'] !== undefined ? { clear: j.u32(o['clear'], `${path}.clear`) } : {}),
        };
      }
      case 'vmwrite': {
        const o = only('field', 'value');
        return { kind, field: this.field(o['field'], `${path}.field`), value: j.u64(o['value'], `${path}.value`) };
      }
      case 'ept-map': {
        const o = j.object(v, path, ['kind', 'l2', 'l1', 'pageSize', 'read', 'write', 'execute'], ['l2', 'l1']);
        return {
          kind, l2: j.u64(o['l2'], `${path}.l2`), l1: j.u64(o['l1'], `${path}.l1`),
          ...(o['pageSize'] !== undefined ? { pageSize: j.oneOf(o['pageSize'], `${path}.pageSize`, PAGE_SIZES) } : {}),
          ...this.rights(o, path, false),
        };
      }
      case 'ept-protect': {
        const o = only('l2', 'read', 'write', 'execute');
        const r = this.rights(o, path, true);
        return { kind, l2: j.u64(o['l2'], `${path}.l2`), read: r.read!, write: r.write!, execute: r.execute! };
      }
      case 'ept-unmap':
        return { kind, l2: j.u64(only('l2')['l2'], `${path}.l2`) };
      case 'invept': {
        const t = j.int(only('type')['type'], `${path}.type`, 1, 2, false);
        return { kind, type: t === 1 ? 1 : 2 };
      }
      case 'invvpid': {
        const o = j.object(v, path, ['kind', 'type', 'linear'], ['type']);
        const t = j.int(o['type'], `${path}.type`, 0, 3, false) as 0 | 1 | 2 | 3;
        return { kind, type: t, ...(o['linear'] !== undefined ? { linear: j.u64(o['linear'], `${path}.linear`) } : {}) };
      }
    }
  }
}

/** Parse scenario text; `sourceName` names it in errors (a file path, or "builtin:<name>"). */
export function parseScenario(text: string, sourceName: string): Scenario {
  const j = new JsonReader(sourceName);
  if (text.length > MAX_SCENARIO_BYTES) j.fail('$', `a scenario of at most ${MAX_SCENARIO_BYTES} characters, got ${text.length}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ScenarioError(sourceName, '$', `valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return new ScenarioParser(j).scenario(value);
}

export { ScenarioError };
