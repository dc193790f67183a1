// Model-based test of the VMX instruction state machine (VMXON → VMCLEAR → VMPTRLD → VMWRITE* → VMLAUNCH → exit
// → VMRESUME → VMCLEAR/VMPTRLD of other regions → VMXOFF, with invalid operands, CPL and MOV-SS changes mixed in)
// against a deliberately simpler model written from SDM ch. 30 pseudocode: it knows only whether the processor is
// in VMX operation, the VMXON pointer, the current pointer, each region's launch state, CPL and MOV-SS blocking,
// and predicts the outcome kind and error number of every instruction.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { Seg } from '../../src/cpu/state.js';
import { Vmcs } from '../../src/cpu/vmcs.js';
import { flagsPattern, type VmxInstrOutcome } from '../../src/cpu/vmx/outcome.js';
import { INVALID_VMCS_POINTER, VmxProcessor } from '../../src/cpu/vmx/processor.js';
import { regionLayout } from '../../src/cpu/vmx/vmcs-region.js';
import { MapMemory, SKYLAKE, fillGuestAndHost, identity, root64 } from '../unit/cpu/vmx/helpers.js';
import { propertyParams } from '../support/property.js';

// ---------------------------------------------------------------------------------------------------------------
// The world: three good regions, the VMXON region, a region with a wrong revision, an unbacked page, and pointers
// that are misaligned or beyond MAXPHYADDR (39 on this model).

const VMXON = 0x1000n;
const R = [0x2000n, 0x3000n, 0x4000n] as const;
const BADREV = 0x5000n;
const UNBACKED = 0x40_0000n;
const POINTERS = [VMXON, ...R, BADREV, UNBACKED, R[0] + 0x10n, 1n << 39n];
const GOOD_REVISION = new Set<bigint>([VMXON, ...R]);
const SUPPORTED = [Field.GUEST_RIP, Field.TSC_OFFSET, Field.TSC_OFFSET_HIGH, Field.EXCEPTION_BITMAP, Field.VM_EXIT_REASON].map(BigInt);
const UNSUPPORTED = [0x6c40n, BigInt(Field.GUEST_RIP | 0x1000), BigInt(Field.GUEST_RIP) | 0x8000n, BigInt(Field.VM_EXIT_CONTROLS | 1)];

interface Model {
  inVmx: boolean;
  vmxon: bigint | null;
  current: bigint | null;
  /** Launch state of each region as memory and the processor agree on it (default clear). */
  launch: Map<bigint, 'clear' | 'launched'>;
  cpl: number;
  movSs: boolean;
}

interface Real {
  p: VmxProcessor;
}

type Expected = { kind: 'fault'; vector: number } | { kind: 'vmsucceed' } | { kind: 'vmfail-invalid' } | { kind: 'vmfail-valid'; error: number } | { kind: 'vm-entry' };

const UD: Expected = { kind: 'fault', vector: 6 };
const GP: Expected = { kind: 'fault', vector: 13 };
const OK: Expected = { kind: 'vmsucceed' };

function valid(ptr: bigint): boolean {
  return (ptr & 0xfffn) === 0n && ptr < 1n << 39n;
}

function vmfail(m: Model, error: number): Expected {
  return m.current === null ? { kind: 'vmfail-invalid' } : { kind: 'vmfail-valid', error };
}

/** The common #UD / #GP(0) prefix for everything but VMXON. */
function prefix(m: Model): Expected | undefined {
  if (!m.inVmx) return UD;
  if (m.cpl > 0) return GP;
  return undefined;
}

function compare(m: Model, r: Real, want: Expected, got: VmxInstrOutcome, rflagsBefore: bigint): void {
  if (want.kind === 'fault') expect(got).toMatchObject({ kind: 'fault', vector: want.vector });
  else if (want.kind === 'vm-entry') expect(got.kind).toBe('vm-entry');
  else expect(got).toMatchObject(want);
  // RFLAGS: one of the three result patterns, or unchanged on a fault.
  const pattern = flagsPattern(r.p.state.rflags);
  if (want.kind === 'fault') expect(r.p.state.rflags).toBe(rflagsBefore);
  if (want.kind === 'vmsucceed') expect(pattern).toBe('succeed');
  if (want.kind === 'vmfail-invalid') expect(pattern).toBe('fail-invalid');
  if (want.kind === 'vmfail-valid') expect(pattern).toBe('fail-valid');
  // The processor's architectural VMX state matches the model after every step.
  expect(r.p.inVmxOperation).toBe(m.inVmx);
  expect(r.p.currentPointer).toBe(m.current ?? INVALID_VMCS_POINTER);
  if (m.inVmx) expect(r.p.vmxonPointer).toBe(m.vmxon);
  if (m.current !== null) expect(r.p.launchState(m.current)).toBe(m.launch.get(m.current) ?? 'clear');
}

abstract class Cmd implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }
  abstract expected(m: Model): Expected;
  abstract exec(r: Real): VmxInstrOutcome;
  /** Model transition after a completed (non-fault) outcome. */
  abstract apply(m: Model, r: Real, got: VmxInstrOutcome): void;
  abstract toString(): string;
  run(m: Model, r: Real): void {
    const want = this.expected(m);
    const before = r.p.state.rflags;
    const got = this.exec(r);
    if (want.kind !== 'fault' && got.kind !== 'fault') this.apply(m, r, got);
    compare(m, r, want, got, before);
  }
}

class Vmxon extends Cmd {
  constructor(readonly ptr: bigint) { super(); }
  expected(m: Model): Expected {
    if (!m.inVmx) {
      if (m.cpl > 0) return GP;
      return valid(this.ptr) && GOOD_REVISION.has(this.ptr) ? OK : { kind: 'vmfail-invalid' };
    }
    return m.cpl > 0 ? GP : vmfail(m, 15);
  }
  exec(r: Real) { return r.p.vmxon(this.ptr); }
  apply(m: Model, _r: Real, got: VmxInstrOutcome) {
    if (!m.inVmx && got.kind === 'vmsucceed') Object.assign(m, { inVmx: true, vmxon: this.ptr, current: null });
  }
  toString() { return `vmxon(0x${this.ptr.toString(16)})`; }
}

class Vmxoff extends Cmd {
  expected(m: Model): Expected { return prefix(m) ?? OK; }
  exec(r: Real) { return r.p.vmxoff(); }
  apply(m: Model) { Object.assign(m, { inVmx: false, vmxon: null, current: null }); }
  toString() { return 'vmxoff'; }
}

class Vmclear extends Cmd {
  constructor(readonly ptr: bigint) { super(); }
  expected(m: Model): Expected {
    const pre = prefix(m);
    if (pre) return pre;
    if (!valid(this.ptr)) return vmfail(m, 2);
    if (this.ptr === m.vmxon) return vmfail(m, 3);
    return OK;
  }
  exec(r: Real) { return r.p.vmclear(this.ptr); }
  apply(m: Model, _r: Real, got: VmxInstrOutcome) {
    if (got.kind !== 'vmsucceed') return;
    m.launch.set(this.ptr, 'clear');
    if (m.current === this.ptr) m.current = null;
  }
  toString() { return `vmclear(0x${this.ptr.toString(16)})`; }
}

class Vmptrld extends Cmd {
  constructor(readonly ptr: bigint) { super(); }
  expected(m: Model): Expected {
    const pre = prefix(m);
    if (pre) return pre;
    if (!valid(this.ptr)) return vmfail(m, 9);
    if (this.ptr === m.vmxon) return vmfail(m, 10);
    if (!GOOD_REVISION.has(this.ptr)) return vmfail(m, 11);
    return OK;
  }
  exec(r: Real) { return r.p.vmptrld(this.ptr); }
  apply(m: Model, _r: Real, got: VmxInstrOutcome) { if (got.kind === 'vmsucceed') m.current = this.ptr; }
  toString() { return `vmptrld(0x${this.ptr.toString(16)})`; }
}

class Vmptrst extends Cmd {
  expected(m: Model): Expected { return prefix(m) ?? OK; }
  exec(r: Real) { return r.p.vmptrst(); }
  apply(m: Model, _r: Real, got: VmxInstrOutcome) {
    expect(got).toEqual({ kind: 'vmsucceed', value: m.current ?? INVALID_VMCS_POINTER });
  }
  toString() { return 'vmptrst'; }
}

class VmreadVmwrite extends Cmd {
  constructor(readonly write: boolean, readonly enc: bigint, readonly value: bigint) { super(); }
  expected(m: Model): Expected {
    const pre = prefix(m);
    if (pre) return pre;
    if (m.current === null) return { kind: 'vmfail-invalid' };
    return SUPPORTED.includes(this.enc) ? OK : { kind: 'vmfail-valid', error: 12 };
  }
  exec(r: Real) { return this.write ? r.p.vmwrite(this.enc, this.value, 64) : r.p.vmread(this.enc, 64); }
  apply() {}
  toString() { return this.write ? `vmwrite(0x${this.enc.toString(16)}, 0x${this.value.toString(16)})` : `vmread(0x${this.enc.toString(16)})`; }
}

class Enter extends Cmd {
  constructor(readonly launch: boolean) { super(); }
  expected(m: Model): Expected {
    const pre = prefix(m);
    if (pre) return pre;
    if (m.current === null) return { kind: 'vmfail-invalid' };
    if (m.movSs) return { kind: 'vmfail-valid', error: 26 };
    const state = m.launch.get(m.current) ?? 'clear';
    if (this.launch && state !== 'clear') return { kind: 'vmfail-valid', error: 4 };
    if (!this.launch && state !== 'launched') return { kind: 'vmfail-valid', error: 5 };
    return { kind: 'vm-entry' };
  }
  exec(r: Real) { return this.launch ? r.p.vmlaunch() : r.p.vmresume(); }
  apply(m: Model, r: Real, got: VmxInstrOutcome) {
    if (got.kind !== 'vm-entry') return;
    m.launch.set(m.current!, 'launched');
    // Leave the guest at once with a CPUID exit: L1 continues at HOST_RIP in CPL 0 without MOV-SS blocking.
    expect(r.p.vmExit({ reason: 10, instructionLength: 2 }, got.guest).kind).toBe('host');
    expect(r.p.state.rip).toBe(0xffff_8000_0000_1000n);
  }
  toString() { return this.launch ? 'vmlaunch' : 'vmresume'; }
}

class SetCpl extends Cmd {
  constructor(readonly cpl: number) { super(); }
  expected(): Expected { return OK; }
  exec(r: Real): VmxInstrOutcome {
    r.p.state.segAr[Seg.SS] = (r.p.state.segAr[Seg.SS]! & ~0x60) | (this.cpl << 5);
    r.p.state.rflags &= ~0x8d5n; // keep the RFLAGS comparison in `compare` meaningful for this pseudo-step
    return { kind: 'vmsucceed' };
  }
  apply(m: Model) { m.cpl = this.cpl; }
  toString() { return `cpl=${this.cpl}`; }
}

class SetMovSs extends Cmd {
  constructor(readonly on: boolean) { super(); }
  expected(): Expected { return OK; }
  exec(r: Real): VmxInstrOutcome {
    r.p.state.interruptibility = this.on ? 0x2 : 0;
    r.p.state.rflags &= ~0x8d5n;
    return { kind: 'vmsucceed' };
  }
  apply(m: Model) { m.movSs = this.on; }
  toString() { return `movss=${this.on}`; }
}

const ptr = fc.constantFrom(...POINTERS);
const goodPtr = fc.constantFrom(...R);
const regionPtr = fc.oneof({ weight: 4, arbitrary: goodPtr }, { weight: 1, arbitrary: fc.constant(VMXON) }, { weight: 2, arbitrary: ptr });
const access = fc.tuple(fc.boolean(), fc.constantFrom(...SUPPORTED, ...UNSUPPORTED), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }))
  .map(([w, e, v]) => new VmreadVmwrite(w, e, v));
// fc.commands picks uniformly among these, so repetition is the weighting: the useful middle of the state machine
// (pointer management, field access, entries) is visited far more often than VMXOFF or CPL changes.
const commands = [
  fc.oneof({ weight: 3, arbitrary: fc.constant(VMXON) }, { weight: 1, arbitrary: ptr }).map((p) => new Vmxon(p)),
  fc.constant(new Vmxoff()),
  regionPtr.map((p) => new Vmclear(p)),
  regionPtr.map((p) => new Vmclear(p)),
  regionPtr.map((p) => new Vmptrld(p)),
  regionPtr.map((p) => new Vmptrld(p)),
  regionPtr.map((p) => new Vmptrld(p)),
  fc.constant(new Vmptrst()),
  access,
  access,
  fc.boolean().map((l) => new Enter(l)),
  fc.boolean().map((l) => new Enter(l)),
  fc.boolean().map((l) => new Enter(l)),
  fc.constantFrom(0, 0, 3).map((c) => new SetCpl(c)),
  fc.constantFrom(false, false, true).map((b) => new SetMovSs(b)),
];

function setup(): { model: Model; real: Real } {
  const mem = new MapMemory().map(0x1000n, 0x5000);
  for (const p of [VMXON, ...R]) mem.write(p, 4, BigInt(SKYLAKE.vmcsRevision));
  mem.write(BADREV, 4, BigInt(SKYLAKE.vmcsRevision) + 1n);
  // Every good region starts with a clear VMCS whose guest and host state load cleanly (the entry checks are a
  // stub that passes; what they decide is the vmentry engine's test).
  const image = new Vmcs();
  fillGuestAndHost(image);
  // The VMXON region can become an ordinary VMCS in a later VMX session, so it gets the image too.
  for (const r of [VMXON, ...R]) regionLayout(SKYLAKE).store(mem, r, image, false);
  const p = new VmxProcessor({ cpu: SKYLAKE, memory: mem, state: root64(), translate: identity, entryChecker: () => ({ kind: 'pass' }) });
  return { model: { inVmx: false, vmxon: null, current: null, launch: new Map(), cpl: 0, movSs: false }, real: { p } };
}

describe('VMX instruction state machine vs a simple model', () => {
  it('agrees on every outcome, error number, RFLAGS pattern, current pointer and launch state', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 80, size: 'max' }), (cmds) => {
        fc.modelRun(setup, cmds);
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});
