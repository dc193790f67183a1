// The scenario parser: every built-in scenario parses and converts; canonical JSON round-trips; every member of the
// format is accepted (a scenario using all of them) and the JSON Schema names exactly the parser's members;
// malformed input is refused with one line naming the source, the JSON path and what was expected.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtinScenarios, loadBuiltinScenario } from '../../../../src/replay/io/scenario-files.js';
import { canonicalScenarioJson, formatScenario, scenarioProfile, scenarioToL1Config } from '../../../../src/replay/scenario/canonical.js';
import { parseScenario } from '../../../../src/replay/scenario/parse.js';
import { ScenarioError } from '../../../../src/replay/scenario/types.js';
import { recordScenario } from '../../../../src/replay/record/recorder.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { ExitReason } from '../../../../src/cpu/generated/exit-reasons.js';

/** A scenario using every member of the format (values need only be well-formed). */
const KITCHEN_SINK = {
  $schema: '../schemas/scenario.schema.json',
  format: 'turtles.scenario.v1',
  name: 'kitchen-sink',
  description: 'every member',
  cpu: 'intel-core-i7-6700k',
  l0: { profile: 'kvm', deviations: ['kvm.exception-error-code-16bit', 'kvm.abort-as-triple-fault'] },
  seed: 42,
  events: [{ at: 5, kind: 'timer' }, { at: 3, kind: 'interrupt', vector: '0x30' }, { at: 5, kind: 'nmi' }],
  l1: {
    l2: {
      mode: 'long64', code: { asm: ['start:', 'cpuid', 'jmp start'] }, user: false, gprs: { rax: '0x1', r15: '0xffffffffffffffff' },
      rflags: '0x200', data: [{ gpa: '0x90000', hex: 'de ad be ef' }],
    },
    controls: { pin: '0x1', primary: 0x80, secondary: '0x2', exit: '0x0', entry: '0x0' },
    controlsMode: 'adjust', exceptionBitmap: '0x4000', pfecMask: 2, pfecMatch: '0x2',
    cr0Mask: '0x8', cr0Shadow: '0x0', cr4Mask: '0x4', cr4Shadow: '0x0', cr3Targets: ['0x200000'],
    ioBitmap: [0x70, '0x80'], msrBitmap: { read: ['0x174'], write: [0x175] },
    ept: { mappings: [{ l2: '0x90000', l1: '0x4090000', pageSize: '4K', read: true, write: false, execute: true, memType: 6 }], noDefaultMap: false, accessedDirty: true, levels: 4 },
    vpid: 1, tscOffset: '0x10', tscMultiplier: '0x1000000000000', preemptionTimer: 1000,
    injection: { vector: 3, type: 6, errorCode: '0x0', instructionLength: 1 },
    xssExitBitmap: '0x0', enclsExitingBitmap: '0x0', shadowFields: ['GUEST_RSP', 0x802], vmfuncControls: '0x1', tprThreshold: 2,
    l1Msrs: [{ index: '0xda0', value: '0x0' }], l1Data: [{ gpa: '0x2000000', hex: '00' }],
    vmcsWrites: [{ field: 'GUEST_RIP', value: '0x10000' }],
    policy: {
      rules: [
        { reason: 'HLT', actions: [{ kind: 'stop' }] },
        { reason: 10, from: 2, count: 3, actions: [{ kind: 'emulate' }, { kind: 'skip' }] },
        {
          reason: 'any',
          actions: [
            { kind: 'inject', vector: 14, type: 3, errorCode: 2 }, { kind: 'reinject' }, { kind: 'deliver-interrupt' },
            { kind: 'set-control', field: 'primary', set: '0x80', clear: 0 }, { kind: 'vmwrite', field: 'TPR_THRESHOLD', value: '0x0' },
            { kind: 'ept-map', l2: '0x91000', l1: '0x4091000', pageSize: '4K', read: true, write: true, execute: false },
            { kind: 'ept-protect', l2: '0x90000', read: true, write: true, execute: true }, { kind: 'ept-unmap', l2: '0x92000' },
            { kind: 'ept-fix' }, { kind: 'invept', type: 1 }, { kind: 'invvpid', type: 1, linear: '0x1000' }, { kind: 'switch-vmcs' },
          ],
        },
      ],
    },
    maxExits: 100, vmxoffAtEnd: false,
  },
};

function withL1(patch: Record<string, unknown>): string {
  return JSON.stringify({ format: 'turtles.scenario.v1', name: 't', l1: { l2: { mode: 'long64', code: { asm: ['hlt'] } }, ...patch } });
}

function error(text: string): ScenarioError {
  try {
    parseScenario(text, 'file.json');
  } catch (e) {
    if (e instanceof ScenarioError) return e;
    throw e;
  }
  throw new Error('parsed without an error');
}

describe('built-in scenarios', () => {
  const names = builtinScenarios();

  it('ships the six required scenarios', () => {
    for (const n of ['cpuid-msr-io', 'cr-shadowing', 'exception-bitmap-pfec', 'ept-faults-invept', 'vmcs-shadowing', 'mixed-1m']) expect(names).toContain(n);
  });

  it.each(builtinScenarios())('%s parses, converts to an L1Config and round-trips through canonical JSON', (name) => {
    const s = loadBuiltinScenario(name);
    expect(s.name).toBe(name);
    expect(s.description.length).toBeGreaterThan(20);
    const c = scenarioToL1Config(s);
    expect(c.l2.code.length).toBeGreaterThan(0);
    expect(c.policy?.rules.length).toBeGreaterThan(0);
    const canon = canonicalScenarioJson(s);
    const again = parseScenario(canon, 'canonical');
    expect(canonicalScenarioJson(again)).toBe(canon);
    expect(canonicalScenarioJson(parseScenario(formatScenario(s), 'formatted'))).toBe(canon);
  });
});

describe('every member of the format', () => {
  const s = parseScenario(JSON.stringify(KITCHEN_SINK), 'sink.json');

  it('normalizes names, numbers and order', () => {
    expect(s.seed).toBe(42n);
    // Deviations come back in the profile's order, whatever order the file lists them in.
    expect(s.l0.deviations).toEqual(['kvm.abort-as-triple-fault', 'kvm.exception-error-code-16bit']);
    expect(s.l1.shadowFields).toEqual(['GUEST_RSP', 'GUEST_CS_SELECTOR']);
    expect(s.l1.policy?.rules[1]?.reason).toBe('CPUID');
    expect(s.l1.l2.gprs).toEqual([['rax', 1n], ['r15', 0xffff_ffff_ffff_ffffn]]);
    expect(scenarioProfile(s).deviations.size).toBe(2);
  });

  it('converts names to encodings and reasons', () => {
    const c = scenarioToL1Config(s);
    expect(c.shadowFields).toEqual([Field.GUEST_RSP, Field.GUEST_CS_SELECTOR]);
    expect(c.vmcsWrites).toEqual([[Field.GUEST_RIP, 0x10000n]]);
    expect(c.policy?.rules.map((r) => r.reason)).toEqual([ExitReason.HLT, ExitReason.CPUID, 'any']);
    expect(c.l2.gprs).toEqual([[0, 1n], [15, 0xffff_ffff_ffff_ffffn]]);
    expect(c.l2.data?.[0]?.bytes).toEqual(new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
    expect(c.policy?.rules[2]?.actions.find((a) => a.kind === 'vmwrite')).toEqual({ kind: 'vmwrite', encoding: Field.TPR_THRESHOLD, value: 0n });
  });

  it('canonical JSON is stable and round-trips', () => {
    const canon = canonicalScenarioJson(s);
    expect(canonicalScenarioJson(parseScenario(canon, 'c'))).toBe(canon);
    // Member order in the input does not matter.
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(KITCHEN_SINK).reverse()));
    expect(canonicalScenarioJson(parseScenario(reordered, 'r'))).toBe(canon);
  });

  it('the JSON Schema names exactly the members the parser accepts', () => {
    const schema = JSON.parse(readFileSync('schemas/scenario.schema.json', 'utf8')) as {
      properties: Record<string, unknown>; $defs: Record<string, { properties?: Record<string, unknown>; oneOf?: { properties: { kind: { const: string } } }[] }>;
    };
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(KITCHEN_SINK).sort());
    expect(Object.keys(schema.$defs['l1']!.properties!).sort()).toEqual(Object.keys(KITCHEN_SINK.l1).sort());
    expect(Object.keys(schema.$defs['l2']!.properties!).sort()).toEqual(Object.keys(KITCHEN_SINK.l1.l2).sort());
    const kinds = schema.$defs['action']!.oneOf!.map((a) => a.properties.kind.const).sort();
    const used = [...new Set(KITCHEN_SINK.l1.policy.rules.flatMap((r) => r.actions.map((a) => a.kind)))].sort();
    expect(kinds).toEqual(used);
  });
});

describe('docs/scenarios.md', () => {
  it('its example parses and records, and it lists every built-in scenario', () => {
    const doc = readFileSync('docs/scenarios.md', 'utf8');
    const example = /```json\n([\s\S]*?)\n```/.exec(doc)?.[1];
    expect(example).toBeDefined();
    const s = parseScenario(example!, 'docs/scenarios.md');
    expect(s.name).toBe('cpuid-then-halt');
    expect(s.l0.profile).toBe('kvm');
    expect(recordScenario(s).summary).toMatchObject({ status: 'completed', exitsToL1: 3 });
    for (const n of builtinScenarios()) expect(doc).toContain(`| \`${n}\` |`);
  });
});

describe('malformed scenarios', () => {
  const cases: [string, string, string][] = [
    ['not JSON', '{', '$'],
    ['wrong format', JSON.stringify({ format: 'turtles.scenario.v2', name: 't', l1: {} }), '$.format'],
    ['missing l1', JSON.stringify({ format: 'turtles.scenario.v1', name: 't' }), '$.l1'],
    ['bad name', JSON.stringify({ format: 'turtles.scenario.v1', name: 'Has Space', l1: {} }), '$.name'],
    ['unknown member', withL1({ bogus: 1 }), '$.l1.bogus'],
    ['unknown CPU', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', cpu: 'pentium', l1: {} }), '$.cpu'],
    ['deviation with sdm', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', l0: { profile: 'sdm', deviations: [] }, l1: {} }), '$.l0.deviations'],
    ['unknown deviation', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', l0: { profile: 'kvm', deviations: ['kvm.nope'] }, l1: {} }), '$.l0.deviations[0]'],
    ['64-bit value as a number', withL1({ cr0Mask: 8 }), '$.l1.cr0Mask'],
    ['64-bit value too long', withL1({ cr0Mask: '0x11112222333344445' }), '$.l1.cr0Mask'],
    ['32-bit value out of range', withL1({ exceptionBitmap: 2 ** 32 }), '$.l1.exceptionBitmap'],
    ['bad port', withL1({ ioBitmap: [1, 70000] }), '$.l1.ioBitmap[1]'],
    ['bad assembly line', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', l1: { l2: { mode: 'long64', code: { asm: ['nop', 'frobnicate eax'] } } } }), '$.l1.l2.code.asm[1]'],
    ['both asm and hex', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', l1: { l2: { mode: 'long64', code: { asm: ['nop'], hex: '90' } } } }), '$.l1.l2.code'],
    ['odd hex', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', l1: { l2: { mode: 'long64', code: { hex: '9' } } } }), '$.l1.l2.code.hex'],
    ['bad mode', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', l1: { l2: { mode: 'long32', code: { hex: '90' } } } }), '$.l1.l2.mode'],
    ['rsp among gprs', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', l1: { l2: { mode: 'long64', code: { hex: 'f4' }, gprs: { rsp: '0x0' } } } }), '$.l1.l2.gprs.rsp'],
    ['unknown exit reason', withL1({ policy: { rules: [{ reason: 'NOPE', actions: [] }] } }), '$.l1.policy.rules[0].reason'],
    ['unknown action', withL1({ policy: { rules: [{ reason: 'any', actions: [{ kind: 'reboot' }] }] } }), '$.l1.policy.rules[0].actions[0].kind'],
    ['action member of another kind', withL1({ policy: { rules: [{ reason: 'any', actions: [{ kind: 'skip', l2: '0x0' }] }] } }), '$.l1.policy.rules[0].actions[0].l2'],
    ['ept-protect without rights', withL1({ policy: { rules: [{ reason: 'any', actions: [{ kind: 'ept-protect', l2: '0x0', read: true }] }] } }), '$.l1.policy.rules[0].actions[0]'],
    ['bad invept type', withL1({ policy: { rules: [{ reason: 'any', actions: [{ kind: 'invept', type: 3 }] }] } }), '$.l1.policy.rules[0].actions[0].type'],
    ['unknown field name', withL1({ vmcsWrites: [{ field: 'GUEST_NOPE', value: '0x0' }] }), '$.l1.vmcsWrites[0].field'],
    ['bad EPT page size', withL1({ ept: { mappings: [{ l2: '0x0', l1: '0x0', pageSize: '8K' }] } }), '$.l1.ept.mappings[0].pageSize'],
    ['maxExits zero', withL1({ maxExits: 0 }), '$.l1.maxExits'],
    ['seed negative', JSON.stringify({ format: 'turtles.scenario.v1', name: 't', seed: -1, l1: {} }), '$.seed'],
  ];

  it.each(cases)('%s: one line naming the path', (_what, text, path) => {
    const e = error(text);
    expect(e.source).toBe('file.json');
    expect(e.path.startsWith(path)).toBe(true);
    expect(e.message).toBe(`file.json: ${e.path}: ${e.expected}`);
    expect(e.message).not.toContain('\n');
    expect(e.expected.length).toBeGreaterThan(5);
  });

  it('names what it expected and what it got', () => {
    expect(error(withL1({ cr0Mask: 8 })).expected).toBe('expected a 64-bit value as a "0x…" hex string of 1-16 digits, got 8');
    expect(error(withL1({ bogus: 1 })).expected).toContain('allowed here: l2, controls');
  });
});
