// Properties of page-modification logging and EPT-violation #VE against deliberately small models written here:
// (1) the EPT walker with a PageModificationLog logs exactly the 4-KiB pages whose leaf dirty flag goes 0 → 1, in
// access order, from the index down, and turns any access that must set a flag with the index outside 0–511 into a
// log-full event that changes nothing; (2) on the reference machine, an EPT violation becomes a #VE exactly when the
// SDM's conditions hold for the generated leaf, access, VE busy word, control and exception bitmap.
// SDM Vol. 3C 29.3.6, 29.3.5, 25.5.6.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../src/asm/index.js';
import { L1_GPA, L2_GPA, type L1Gpa, type L2Gpa } from '../../src/cpu/address.js';
import { eptCapabilities, eptConfig, ept12 } from '../../src/cpu/ept/eptp.js';
import { EptTableBuilder } from '../../src/cpu/ept/builder.js';
import { EptBit } from '../../src/cpu/ept/entry.js';
import { PageModificationLog } from '../../src/cpu/ept/pml.js';
import type { EptAccess } from '../../src/cpu/ept/types.js';
import { walkEpt } from '../../src/cpu/ept/walker.js';
import { Primary, Secondary } from '../../src/cpu/generated/controls.js';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../src/cpu/l1/builtin.js';
import type { L1Program } from '../../src/cpu/l1/machine.js';
import { handlerAddress, L2Layout } from '../../src/cpu/interp/l2-env.js';
import { PhysicalMemory } from '../../src/cpu/memory.js';
import { propertyParams } from '../support/property.js';
import { runConfig, runProgram, SKYLAKE } from '../unit/cpu/machine/helpers.js';

// ---------------------------------------------------------------------------------------------------------------
// (1) PML over the walker.

/** 4-KiB leaves spread so they share some upper tables and not others, and one 2-MiB leaf. */
const PAGES_4K = [0x0n, 0x1000n, 0x2_0000n, 0x40_0000n, 0x4000_0000n, 0x80_0000_0000n];
const LARGE = 0x60_0000n;
/** Access targets: every 4-KiB page, and four 4-KiB pages inside the 2-MiB leaf. */
const TARGETS = [...PAGES_4K, LARGE, LARGE + 0x1000n, LARGE + 0x5_3000n, LARGE + 0x1f_f000n];
const PML_PAGE = 0x8000_0000n;

type Kind = 'read' | 'write' | 'rmw' | 'fetch' | 'paging-structure';
type Op =
  | { readonly op: 'access'; readonly target: number; readonly offset: number; readonly kind: Kind }
  | { readonly op: 'set-index'; readonly index: number }
  | { readonly op: 'clear-dirty'; readonly target: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('access' as const), target: fc.nat(TARGETS.length - 1), offset: fc.nat(0xfff), kind: fc.constantFrom<Kind>('read', 'write', 'rmw', 'fetch', 'paging-structure') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('set-index' as const), index: fc.oneof(fc.nat(4), fc.nat(511), fc.constantFrom(512, 0xfffe, 0xffff)) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear-dirty' as const), target: fc.nat(TARGETS.length - 1) }) },
);

/** The model: accessed flags per EPT entry (level:index-prefix), dirty flags per leaf, the index and the log. */
class PmlModel {
  readonly accessed = new Set<string>();
  readonly dirty = new Set<string>();
  readonly log = new Map<number, bigint>();
  constructor(public index: number) {}

  static path(gpa: bigint): { keys: string[]; leaf: string } {
    const large = gpa >= LARGE && gpa < LARGE + 0x20_0000n;
    const keys: string[] = [];
    for (let level = 4; level >= (large ? 2 : 1); level--) keys.push(`${level}:${gpa >> BigInt(12 + 9 * (level - 1))}`);
    return { keys, leaf: keys[keys.length - 1]! };
  }

  /** 'full' or 'done'. */
  access(gpa: bigint, write: boolean): 'full' | 'done' {
    const { keys, leaf } = PmlModel.path(gpa);
    const needs = keys.some((k) => !this.accessed.has(k)) || (write && !this.dirty.has(leaf));
    if (!needs) return 'done';
    if (this.index > 511) return 'full';
    for (const k of keys) this.accessed.add(k);
    if (write && !this.dirty.has(leaf)) {
      this.dirty.add(leaf);
      this.log.set(this.index, gpa & ~0xfffn);
      this.index = (this.index - 1) & 0xffff;
    }
    return 'done';
  }
}

function accessOf(kind: Kind, gpa: bigint): EptAccess {
  if (kind === 'paging-structure') return { type: 'read', cause: { kind: 'paging-structure', linear: 0x1234n as never } };
  return { type: kind, cause: { kind: 'no-linear' } };
}

describe('PML over the EPT walker (model-based)', () => {
  it('logs exactly the dirty 0 → 1 transitions in order, and a log-full event changes no flag', () => {
    const caps = eptCapabilities(SKYLAKE);
    fc.assert(fc.property(fc.oneof(fc.nat(600), fc.constant(0xffff)), fc.array(arbOp, { maxLength: 40 }), (startIndex, ops) => {
      const memory = new PhysicalMemory<L1Gpa>({ space: 'L1Gpa' });
      const b = new EptTableBuilder<L2Gpa, L1Gpa>({ memory, inSpace: L2_GPA, outSpace: L1_GPA, tableArea: { base: 0x10_0000n, pages: 64 } });
      PAGES_4K.forEach((g, i) => expect(b.map(L2_GPA.of(g), L1_GPA.of(0x1000_0000n + BigInt(i) * 0x1000n)).ok).toBe(true));
      expect(b.map(L2_GPA.of(LARGE), L1_GPA.of(0x2000_0000n), { pageSize: '2M' }).ok).toBe(true);
      let index = startIndex;
      const pml = new PageModificationLog({
        readIndex: () => index,
        writeIndex: (i) => { index = i; },
        readAddress: () => PML_PAGE,
        writeEntry: (a, v) => { memory.writeU64(L1_GPA.of(a), v); },
      });
      pml.enabled = true;
      const h = ept12({ eptp: b.eptp({ accessedDirty: true }), config: eptConfig(caps), tables: memory });
      if (!h.ok) throw new Error(h.error.message);
      const ept = { ...h.ept, flagGate: pml };
      const model = new PmlModel(startIndex);
      const leafAddress = (gpa: bigint) => {
        const large = gpa >= LARGE && gpa < LARGE + 0x20_0000n;
        return b.entryAddress(L2_GPA.of(gpa), large ? 2 : 1)!;
      };
      for (const op of ops) {
        if (op.op === 'set-index') {
          index = op.index;
          model.index = op.index;
          continue;
        }
        const gpa = TARGETS[op.target]!;
        const leaf = leafAddress(gpa);
        if (op.op === 'clear-dirty') {
          memory.writeU64(leaf, memory.readU64(leaf) & ~EptBit.D);
          model.dirty.delete(PmlModel.path(gpa).leaf);
          continue;
        }
        const before = memory.readU64(leaf);
        const write = op.kind === 'write' || op.kind === 'rmw' || op.kind === 'paging-structure';
        const expected = model.access(gpa + BigInt(op.offset), write);
        const r = walkEpt(ept, L2_GPA.of(gpa + BigInt(op.offset)), accessOf(op.kind, gpa));
        expect(r.ok).toBe(true);
        expect(pml.takeFullEvent()).toBe(expected === 'full');
        if (expected === 'full') expect(memory.readU64(leaf)).toBe(before);
        expect(index).toBe(model.index);
        expect((memory.readU64(leaf) & EptBit.D) !== 0n).toBe(model.dirty.has(PmlModel.path(gpa).leaf));
      }
      // The log page holds exactly the model's entries.
      for (let i = 0; i < 512; i++) expect(memory.readU64(L1_GPA.of(PML_PAGE + BigInt(i) * 8n))).toBe(model.log.get(i) ?? 0n);
    }), propertyParams({ numRuns: 150 }));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// (2) #VE or VM exit on the reference machine.

const DATA = L2Layout.DATA;
const VE_AREA = 0x0106_0000n;

interface VeCase {
  readonly r: boolean;
  readonly w: boolean;
  readonly x: boolean;
  readonly suppress: boolean;
  readonly store: boolean;
  readonly busy: number;
  readonly control: boolean;
  readonly bitmap20: boolean;
}

/** `value` three times in four, so the #VE outcomes are not rare. */
function mostly(value: boolean): fc.Arbitrary<boolean> {
  return fc.oneof(fc.constant(value), fc.constant(value), fc.constant(value), fc.constant(!value));
}

const arbVeCase: fc.Arbitrary<VeCase> = fc.record({
  r: fc.boolean(), w: fc.boolean(), x: fc.boolean(), suppress: mostly(false), store: fc.boolean(),
  busy: fc.oneof(fc.constant(0), fc.constant(0), fc.constantFrom(1, 0xffff_ffff)), control: mostly(true), bitmap20: fc.boolean(),
});

type VeOutcome = 'misconfig' | 'no-violation' | 'exit-48' | 've-delivered' | 've-exit';

/** The SDM's rule (25.5.6.1), for one leaf that maps the page the program accesses. */
function expectedVe(c: VeCase): VeOutcome {
  const rwx = (c.r ? 1 : 0) | (c.w ? 2 : 0) | (c.x ? 4 : 0);
  if (rwx === 2 || rwx === 6) return 'misconfig'; // write without read (execute-only is supported on Skylake)
  const permitted = c.store ? c.r && c.w : c.r;
  if (rwx !== 0 && permitted) return 'no-violation';
  // The deciding entry: the not-present leaf, or the leaf that maps the page. Its bit 63 is what we generated.
  if (!c.control || c.suppress || c.busy !== 0) return 'exit-48';
  return c.bitmap20 ? 've-exit' : 've-delivered';
}

function runVeCase(c: VeCase) {
  const code = c.store ? asm64`mov rbx, ${DATA}; mov qword ptr [rbx], rbx; hlt` : asm64`mov rbx, ${DATA}; mov rax, [rbx]; hlt`;
  const secondary = Secondary.ENABLE_EPT | (c.control ? Secondary.EPT_VIOLATION_VE : 0);
  const config = {
    l2: { mode: 'long64' as const, code },
    controls: { primary: Primary.HLT_EXITING },
    ept: { mappings: [{ l2: DATA, l1: 0x500_0000n, read: c.r, write: c.w, execute: c.x }] },
    exceptionBitmap: c.bitmap20 ? 1 << 20 : 0,
    l1Data: [{ gpa: VE_AREA + 4n, bytes: new Uint8Array([c.busy & 0xff, (c.busy >>> 8) & 0xff, (c.busy >>> 16) & 0xff, (c.busy >>> 24) & 0xff]) }],
    vmcsWrites: [[Field.SECONDARY_VM_EXEC_CONTROL, BigInt(secondary)], [Field.VE_INFORMATION_ADDRESS, VE_AREA]] as [number, bigint][],
    policy: { rules: [{ reason: 'any' as const, actions: [{ kind: 'stop' as const }] }] },
  };
  if (!c.suppress) return runConfig(config, { cpu: SKYLAKE });
  // Bit 63 goes into L1's leaf right before VMLAUNCH (the builder has no suppress-#VE option in L1Config).
  const program: L1Program = (m) => builtinL1(config)(new Proxy(m, {
    get(target, key) {
      if (key === 'vmlaunch') {
        return () => {
          let table: bigint = 0x0110_0000n;
          let address = 0n;
          for (let level = 4; level >= 1; level--) {
            address = table + ((DATA >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
            table = target.readMemory(L1_GPA.of(address), 8) & 0xf_ffff_ffff_f000n;
          }
          target.writeMemory(L1_GPA.of(address), 8, target.readMemory(L1_GPA.of(address), 8) | (1n << 63n));
          return target.vmlaunch();
        };
      }
      const v: unknown = Reflect.get(target, key);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }));
  return runProgram(program, { cpu: SKYLAKE });
}

describe('#VE versus VM exit on generated leaves and VE-information states', () => {
  it('matches the SDM conditions', () => {
    const seen = new Set<VeOutcome>();
    fc.assert(fc.property(arbVeCase, (c) => {
      const run = runVeCase(c);
      const reasons = run.exits.map((e) => e.exit.exitReason);
      const busyAfter = BigInt(run.machine.memory.readU32(L1_GPA.of(VE_AREA + 4n)));
      const outcome = expectedVe(c);
      seen.add(outcome);
      switch (outcome) {
        case 'misconfig': expect(reasons).toEqual([49]); break;
        case 'no-violation': expect(reasons).toEqual([12]); expect(run.exits[0]!.rip).not.toBe(handlerAddress(20)); break;
        case 'exit-48': expect(reasons).toEqual([48]); break;
        case 've-delivered': expect(reasons).toEqual([12]); expect(run.exits[0]!.rip).toBe(handlerAddress(20)); break;
        case 've-exit': expect(reasons).toEqual([0]); expect(run.exits[0]!.exit.interruptionInfo).toBe(0x8000_0314); break;
      }
      const delivered = outcome === 've-delivered' || outcome === 've-exit';
      expect(busyAfter).toBe(delivered ? 0xffff_ffffn : BigInt(c.busy));
      expect(run.machine.memory.readU32(L1_GPA.of(VE_AREA))).toBe(delivered ? 48 : 0);
    }), propertyParams({ numRuns: 60 }));
    // The generator reached every outcome class (otherwise the property above proves little).
    expect([...seen].sort()).toEqual(['exit-48', 'misconfig', 'no-violation', 've-delivered', 've-exit']);
  });
});
