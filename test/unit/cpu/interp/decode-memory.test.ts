// The decode cache (physical-address keyed, validated against fetched bytes: self-modifying code never runs a
// stale decode), instruction fetch across pages and the CS limit, and guest memory through real paging and
// EPT (page faults as exceptions, EPT violations as exits with qualification, GPA and linear address).
import { describe, expect, it } from 'vitest';
import { L2_GPA, type L2Gpa } from '../../../../src/cpu/address.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { CpuState, Seg } from '../../../../src/cpu/state.js';
import { ExitReason as R } from '../../../../src/cpu/generated/exit-reasons.js';
import { eptConfig, makeEpt, type EptCapabilities } from '../../../../src/cpu/ept/index.js';
import { decodeEptViolationQualification } from '../../../../src/cpu/ept/qualification.js';
import {
  DeterministicPlatform, DecodeCache, EptGuestMemory, Interpreter, L2Layout, buildL2Environment, decodeOne, handlerAddress,
  makeNonRootRuntime,
} from '../../../../src/cpu/interp/index.js';
import { assembleOrThrow } from '../../../../src/asm/index.js';
import { machine, poke, vmcsWith } from './harness.js';

describe('decode', () => {
  it('operands, sizes, displacement field and prefixes', () => {
    const r = decodeOne(new Uint8Array([0x67, 0x48, 0x8b, 0x44, 0x8b, 0xf0]), 64, 0n);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const i = r.instr;
    expect(i.name).toBe('mov');
    expect(i.addrSize).toBe(4);
    expect(i.opSize).toBe(8);
    expect(i.mem).toMatchObject({ base: 3, index: 1, scale: 4, disp: BigInt.asUintN(64, -16n), seg: Seg.DS });
  });
  it('reports truncated and invalid encodings', () => {
    expect(decodeOne(new Uint8Array([0x48, 0x8b]), 64, 0n)).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeOne(new Uint8Array([0x0f, 0x04, 0, 0]), 64, 0n)).toEqual({ ok: false, reason: 'invalid' });
  });
  it('cache hits on repeat and re-decodes when the bytes change', () => {
    const c = new DecodeCache();
    const a = new Uint8Array([0x90, 0xf4]);
    expect(c.decode(0x1000n, a, 64, 0n).ok).toBe(true);
    expect(c.decode(0x1000n, a, 64, 0n).ok).toBe(true);
    expect(c.hits).toBe(1);
    const b = new Uint8Array([0xf4, 0x90]);
    const r = c.decode(0x1000n, b, 64, 0n);
    expect(r.ok && r.instr.name).toBe('hlt');
    expect(c.misses).toBe(2);
  });
  it('self-modifying code executes the new bytes', () => {
    // The second instruction is overwritten with `mov eax, 2` before it runs.
    const m = machine('long64', 'mov byte ptr [0x10009], 2; mov eax, 1; hlt');
    m.run(20);
    expect(m.state.gpr[0]).toBe(2n);
  });
});

describe('fetch', () => {
  it('an instruction crossing into an unmapped page faults with the second page address', () => {
    const m = machine('long64', new Uint8Array([0xf4]));
    // Place `mov eax, imm32` so that it straddles 0x3fff_fffe (end of the 1 GiB identity map).
    const at = 0x3fff_fffen;
    poke(m, at, [0xb8, 1]);
    m.state.rip = at;
    m.step();
    expect(m.state.rip).toBe(handlerAddress(14));
    expect(m.state.cr2).toBe(0x4000_0000n);
  });
  it('CS limit: fetching past the limit is #GP(0)', () => {
    const m = machine('protected32', 'nop; nop; hlt');
    m.state.segLimit[Seg.CS] = Number(L2Layout.CODE) + 1;
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(13) + 1n);
  });
});

describe('guest memory under paging and EPT', () => {
  it('a write to a read-only page faults with W|P and CR2', () => {
    const m = machine('long64', 'mov qword ptr [rax], 1; hlt');
    // Clear R/W in the PD entry of 4–6 MiB (CR0.WP = 1 makes it read-only for CPL 0 too).
    const pdpt = m.memory.readU64(m.state.cr3 as never) & ~0xfffn;
    const pd = m.memory.readU64(pdpt as never) & ~0xfffn;
    const e = m.memory.readU64((pd + 16n) as never);
    m.memory.writeU64((pd + 16n) as never, e & ~2n);
    m.state.gpr[0] = 0x40_0000n;
    m.run(10);
    expect(m.state.rip).toBe(handlerAddress(14) + 1n);
    expect(m.state.cr2).toBe(0x40_0000n);
    // Error code pushed: P | W.
    expect(m.memory.readU64(m.state.gpr[4]! as never)).toBe(3n);
  });

  it('EPT violation on a data write exits with qualification, GPA and linear address', () => {
    const caps: EptCapabilities = {
      maxPhysAddr: 46, executeOnly: false, walkLength4: true, walkLength5: false, memTypeUc: true, memTypeWb: true,
      pages2M: true, pages1G: true, accessedDirty: false, advancedExitInfo: false, supervisorShadowStack: false,
    };
    const memory = new PhysicalMemory<L2Gpa>({ space: 'L2Gpa' });
    const state = new CpuState();
    const code = assembleOrThrow('mov qword ptr [0x90000], 5; mov rbx, [0x90000]; hlt', 64, L2Layout.CODE);
    buildL2Environment(state, { mode: 'long64', memory, space: L2_GPA, code });
    // EPT tables for an identity map of 1 GiB, read/write/execute, except the page at 0x90000: read-only.
    const eptp = buildIdentityEpt(memory, 0x90000n);
    const made = makeEpt({ eptp, config: eptConfig(caps), tables: memory, inSpace: L2_GPA, outSpace: L2_GPA });
    if (!made.ok) throw new Error(made.error.message);
    const mem = new EptGuestMemory(state, memory, () => made.ept, { maxPhysAddr: 46 });
    const env = { readPhysByte: (a: bigint) => memory.readU8(L2_GPA.of(a)), insOutsInfo: true };
    const interp = new Interpreter({ mem, platform: new DeterministicPlatform(), nonRoot: makeNonRootRuntime(vmcsWith({}), env, { preemptionTimerRate: 0 }) });
    const r = interp.run(state, 10).last;
    expect(r.kind).toBe('vmexit');
    if (r.kind !== 'vmexit') return;
    expect(r.exit.reason).toBe(R.EPT_VIOLATION);
    expect(r.exit.guestPhysicalAddress).toBe(0x90000n);
    expect(r.exit.guestLinearAddress).toBe(0x90000n);
    const d = decodeEptViolationQualification(r.exit.qualification);
    if (!d.ok) throw new Error('reserved bits in the qualification');
    expect(d.value).toMatchObject({ write: true, readable: true, writable: false, linearValid: true, finalTranslation: true });
    expect(state.rip).toBe(L2Layout.CODE);
  });
});

/** A 4-level EPT mapping 0–1 GiB identity with 2 MiB leaves (RWX, WB), except a 4 KiB read-only page at `ro`. */
function buildIdentityEpt(memory: PhysicalMemory<L2Gpa>, ro: bigint): bigint {
  const base = 0x30_0000n;
  const pml4 = base;
  const pdpt = base + 0x1000n;
  const pd = base + 0x2000n;
  const pt = base + 0x3000n;
  const w = (a: bigint, v: bigint) => memory.writeU64(L2_GPA.of(a), v);
  w(pml4, pdpt | 7n);
  w(pdpt, pd | 7n);
  for (let i = 0n; i < 512n; i++) {
    const addr = i << 21n;
    if (addr === (ro & ~0x1f_ffffn)) w(pd + i * 8n, pt | 7n);
    else w(pd + i * 8n, addr | 7n | (6n << 3n) | (1n << 7n));
  }
  for (let i = 0n; i < 512n; i++) {
    const addr = (ro & ~0x1f_ffffn) + (i << 12n);
    w(pt + i * 8n, addr | (addr === ro ? 5n : 7n) | (6n << 3n));
  }
  return pml4 | 6n | (3n << 3n);
}
