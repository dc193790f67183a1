// The interpreter's step loop: events at the instruction boundary (MTF, debug trap, preemption timer, NMI
// and interrupt windows, NMIs, interrupts), HLT idling, fetch + decode (cached by physical address),
// non-root exit evaluation before execution, execution, retirement (TSC tick, interruptibility shadows,
// single-step, MTF, timer), and exception raising with the double-fault rules and IDT-vectoring info.
// Must not: write a VMCS or load host state (vmx/ does). SDM Vol. 3A 6.9, 6.15; Vol. 3C 25.1.1, 25.5, 27.2.4.
import { Ar, Seg, type CpuState } from '../state.js';
import { isExitCapable, evaluateInstruction } from '../nonroot/exit-for.js';
import {
  exceptionExit, exceptionExits, externalInterruptExit, externalInterruptExits, interruptWindowExits, interruptsUnblocked,
  mtfEnabled, mtfExit, nmiExit, nmiExits, nmiWindowExits, nmisUnblocked, preemptionTimerActive, preemptionTimerExit,
  preemptionTimerTicks, taskSwitchExit, tripleFaultExit, windowExit, Interruptibility,
} from '../nonroot/rules-events.js';
import { ioAccessOf, isIoInstruction } from '../nonroot/rules-io-msr.js';
import { IntrType, interruptionInfo, type NonRootExit } from '../nonroot/types.js';
import { Secondary } from '../generated/controls.js';
import { convertToVe, VE_VECTOR } from '../ept/ve.js';
import { PendingSignals } from '../machine/signals.js';
import { isKnownGap } from './coverage.js';
import { DecodeCache } from './decode.js';
import type { DecodedInstr } from './decoded.js';
import { deliver } from './events.js';
import { ExecContext, canonical, exc, fromGuestFault, type Fault } from './exec-context.js';
import { ioPermissionFault } from './handlers-string.js';
import type { Outcome } from './handler.js';
import type { Platform } from './platform.js';
import { AuxState, type NonRootRuntime } from './runtime.js';
import { INSTRUCTION_TABLE } from './table.js';
import type { EventRecord, GuestMemoryAccess, StepResult } from './types.js';

/** An event being raised or delivered. */
export interface RaisedEvent extends EventRecord {
  /** RIP pushed as the return address (fault: the instruction; trap/software: the next one). */
  readonly returnRip: bigint;
  /** Length of the instruction that caused a software interrupt/exception (exit information). */
  readonly instructionLength?: number;
  /** #PF linear address. */
  readonly cr2?: bigint;
  /** #DB: DR6-style bits (B0–B3, BD, BS). */
  readonly dr6?: number;
}

export interface InterpreterOptions {
  readonly mem: GuestMemoryAccess;
  readonly platform: Platform;
  /** Run in VMX non-root operation under this runtime (null/absent: plain execution, no VMX). */
  readonly nonRoot?: NonRootRuntime | null;
  readonly cache?: DecodeCache;
}

const CONTRIBUTORY = new Set([0, 10, 11, 12, 13]);

function isHwException(e: EventRecord): boolean {
  return e.type === IntrType.HARDWARE_EXCEPTION;
}

/** The result of every plainly retired instruction: one shared (frozen) value instead of an object per step. */
const RETIRED: StepResult = Object.freeze({ kind: 'retired' as const });

/** The second fault turns into #DF (SDM 6.15 table 6-5): contributory after contributory, or after a #PF. */
function becomesDoubleFault(first: EventRecord, second: EventRecord): boolean {
  if (!isHwException(first)) return false;
  const secondContrib = CONTRIBUTORY.has(second.vector);
  if (CONTRIBUTORY.has(first.vector)) return secondContrib;
  if (first.vector === 14) return secondContrib || second.vector === 14;
  return false;
}

function vectoringInfo(e: RaisedEvent): Partial<NonRootExit> {
  const sw = e.type === IntrType.SOFTWARE_INTERRUPT || e.type === IntrType.SOFTWARE_EXCEPTION || e.type === IntrType.PRIVILEGED_SOFTWARE_EXCEPTION;
  return {
    idtVectoringInfo: interruptionInfo(e.vector, e.type, e.errorCode !== undefined),
    ...(e.errorCode !== undefined ? { idtVectoringErrorCode: e.errorCode >>> 0 } : {}),
    ...(sw && e.instructionLength !== undefined ? { instructionLength: e.instructionLength } : {}),
  };
}

export class Interpreter {
  readonly aux = new AuxState();
  /** INIT, SIPI and SMI waiting for the next boundary (decided in non-root operation only, machine/signals.ts). */
  readonly signals = new PendingSignals();
  readonly cache: DecodeCache;
  readonly mem: GuestMemoryAccess;
  readonly platform: Platform;
  private nr: NonRootRuntime | null;
  private ctx: ExecContext | null = null;

  constructor(opts: InterpreterOptions) {
    this.mem = opts.mem;
    this.platform = opts.platform;
    this.nr = opts.nonRoot ?? null;
    this.cache = opts.cache ?? new DecodeCache();
  }

  /** The non-root runtime in force (null outside VMX non-root operation). */
  get nonRoot(): NonRootRuntime | null {
    return this.nr;
  }

  /** Enter VMX non-root operation (VM entry): the controls in force and the preemption-timer start value. */
  enterNonRoot(nr: NonRootRuntime, preemptionTimerValue = 0n): void {
    this.nr = nr;
    this.ctx = null;
    this.aux.preemptionTimer = preemptionTimerValue;
    this.aux.mtfPending = false;
    // The first PAUSE at CPL 0 after VM entry starts a new PAUSE loop (SDM 25.1.3).
    this.aux.plePrevPause = -1n;
  }

  /** Leave VMX non-root operation (after a VM exit has been taken). */
  leaveNonRoot(): void {
    this.nr = null;
    this.ctx = null;
    this.aux.mtfPending = false;
  }

  /** The VMX-preemption timer value as it would be saved on a VM exit. */
  get preemptionTimerValue(): bigint {
    return this.aux.preemptionTimer;
  }

  raiseInterrupt(vector: number): void {
    this.aux.pendingInterrupts.add(vector & 0xff);
  }

  raiseNmi(): void {
    this.aux.pendingNmi = true;
  }

  /** VM entry asked for a pending MTF VM exit (injection type 7, vector 0). */
  setPendingMtf(): void {
    this.aux.mtfPending = true;
  }

  private context(state: CpuState): ExecContext {
    if (!this.ctx || this.ctx.state !== state) this.ctx = new ExecContext(state, this.mem, this.platform, this.aux, this.nr);
    return this.ctx;
  }

  /** Run until something other than a retired instruction or delivered event happens, or `max` steps. */
  run(state: CpuState, max: number): { readonly steps: number; readonly last: StepResult } {
    let last: StepResult = { kind: 'retired' };
    for (let n = 0; n < max; n++) {
      last = this.step(state);
      if (last.kind !== 'retired' && last.kind !== 'delivered') return { steps: n + 1, last };
    }
    return { steps: max, last };
  }

  /**
   * Deliver an event through the guest IDT as VM entry's event injection does (SDM 26.6.1): not subject to the
   * exception bitmap (faults during its delivery are, and exits then carry IDT-vectoring information). For
   * software interrupts/exceptions the return address is RIP + `instructionLength` (the VM-entry instruction
   * length). Type 7 (other event, vector 0) makes an MTF VM exit pending instead. With "monitor trap flag" set,
   * an MTF VM exit is pending after a successful injection.
   */
  inject(state: CpuState, event: { readonly vector: number; readonly type: number; readonly errorCode?: number; readonly instructionLength?: number }): StepResult {
    if (event.type === IntrType.OTHER_EVENT) {
      this.aux.mtfPending = true;
      return { kind: 'retired' };
    }
    const x = this.context(state);
    const len = event.instructionLength ?? 0;
    const sw = event.type === IntrType.SOFTWARE_INTERRUPT || event.type === IntrType.SOFTWARE_EXCEPTION || event.type === IntrType.PRIVILEGED_SOFTWARE_EXCEPTION;
    const r = this.raise(x, {
      vector: event.vector, type: event.type, ...(event.errorCode !== undefined ? { errorCode: event.errorCode } : {}),
      returnRip: sw ? state.rip + BigInt(len) : state.rip, instructionLength: len,
    }, undefined, true);
    if (r.kind === 'delivered' && this.nr && mtfEnabled(this.nr.controls)) this.aux.mtfPending = true;
    return r;
  }

  step(state: CpuState): StepResult {
    const x = this.context(state);
    // Per-instruction flags (e.g. "IRET unblocked NMIs") must not leak into events taken at this boundary.
    x.begin(state.rip);
    if (state.activity === 2 && !this.nr) return { kind: 'shutdown' };
    const b = this.boundary(x);
    if (b) return b;
    if (state.activity !== 0) {
      this.tick(x, 1n);
      return { kind: 'halted' };
    }
    return this.execute(x);
  }

  // ---- instruction boundary ------------------------------------------------------------------------------

  private boundary(x: ExecContext): StepResult | null {
    const s = x.state;
    const a = this.aux;
    const nr = this.nr;
    // SMI and INIT (and SIPI) outrank MTF, debug traps, the timer, NMIs and interrupts (SDM 6.9, 25.5.2).
    if (nr && !this.signals.idle) {
      const smisBefore = this.signals.smisHandled;
      const sig = this.signals.atBoundary(s.activity);
      if (this.signals.smisHandled !== smisBefore && this.signals.smmLosesPendingMtf) a.mtfPending = false;
      if (sig) return this.exit(sig);
    }
    if (nr && a.mtfPending) {
      a.mtfPending = false;
      return this.exit(mtfExit());
    }
    if (a.pendingDebugTrap && !(s.interruptibility & Interruptibility.MOV_SS) && s.activity === 0) {
      const dr6 = a.pendingDebugTrap;
      a.pendingDebugTrap = 0;
      return this.raise(x, { vector: 1, type: IntrType.HARDWARE_EXCEPTION, returnRip: s.rip, dr6 });
    }
    if (nr) {
      if (preemptionTimerActive(nr.controls) && a.preemptionTimer === 0n) return this.exit(preemptionTimerExit());
      if (nmiWindowExits(nr.controls, s) && s.activity !== 3) return this.exit(windowExit(true));
    }
    // Wait-for-SIPI blocks NMIs (SDM 26.6.2).
    if (a.pendingNmi && nmisUnblocked(s) && !(nr && s.activity === 3)) {
      if (nr && nmiExits(nr.controls)) {
        a.pendingNmi = false;
        return this.exit(nmiExit());
      }
      a.pendingNmi = false;
      s.activity = 0;
      return this.raise(x, { vector: 2, type: IntrType.NMI, returnRip: s.rip });
    }
    if (nr && interruptWindowExits(nr.controls, s) && s.activity !== 3) return this.exit(windowExit(false));
    const apic = nr?.apic;
    if (apic && apic.pendingVirtualInterrupt && interruptsUnblocked(s) && (s.activity === 0 || s.activity === 1)) {
      // Virtual-interrupt delivery (SDM 29.2.2): the priority of interrupt-window exits, above external interrupts;
      // it wakes the processor from HLT.
      const vector = apic.beginVirtualInterruptDelivery();
      s.activity = 0;
      return this.raise(x, { vector, type: IntrType.EXTERNAL_INTERRUPT, returnRip: s.rip });
    }
    const v = a.highestInterrupt();
    // Shutdown and wait-for-SIPI block external interrupts, even with external-interrupt exiting (SDM 26.6.2). With
    // external-interrupt exiting, RFLAGS.IF does not block external interrupts (SDM Vol. 3C 25.4.1, Event Blocking).
    // Whether STI and MOV-SS blocking still hold the exit back is implementation-specific there; this model holds it.
    if (v !== undefined && s.activity !== 3 && !(nr && s.activity === 2) && (nr && externalInterruptExits(nr.controls)
      ? (s.interruptibility & (Interruptibility.STI | Interruptibility.MOV_SS)) === 0 : interruptsUnblocked(s))) {
      if (nr && externalInterruptExits(nr.controls)) {
        const e = externalInterruptExit(nr.controls, v);
        if (e.acknowledged && apic?.isPostedNotification(v)) {
          // Posted-interrupt processing instead of the VM exit (SDM 29.6), then this boundary is evaluated again.
          a.pendingInterrupts.delete(v);
          apic.processPostedInterrupts();
          return this.boundary(x);
        }
        if (e.acknowledged) a.pendingInterrupts.delete(v);
        return this.exit(e.exit);
      }
      a.pendingInterrupts.delete(v);
      s.activity = 0;
      return this.raise(x, { vector: v, type: IntrType.EXTERNAL_INTERRUPT, returnRip: s.rip });
    }
    return null;
  }

  /** Advance the TSC by `ticks` and count the VMX-preemption timer down (SDM 25.5.1). */
  private tick(x: ExecContext, ticks: bigint): void {
    const s = x.state;
    const before = s.tsc;
    s.tsc = BigInt.asUintN(64, before + ticks);
    const nr = this.nr;
    if (nr && preemptionTimerActive(nr.controls) && this.aux.preemptionTimer > 0n) {
      const dec = preemptionTimerTicks(before, s.tsc, nr.preemptionTimerRate);
      this.aux.preemptionTimer = dec >= this.aux.preemptionTimer ? 0n : this.aux.preemptionTimer - dec;
    }
  }

  private exit(exit: NonRootExit): StepResult {
    // A VM exit ends the operation: a virtualized APIC write it made gets no APIC-write emulation (SDM 29.4.3.2).
    this.nr?.apic?.discardPendingWrite();
    this.aux.mtfPending = false;
    return { kind: 'vmexit', exit };
  }

  // ---- fetch, decode, evaluate, execute ------------------------------------------------------------------

  private fetchDecode(x: ExecContext): DecodedInstr | Fault {
    const s = x.state;
    const rip = s.rip;
    const bitness: 16 | 32 | 64 = s.longMode64 ? 64 : s.segAr[Seg.CS]! & Ar.DB ? 32 : 16;
    let avail = 15;
    let linear: bigint;
    if (s.longMode64) {
      if (!canonical(rip, x.la57)) return exc(13, 0);
      linear = rip;
    } else {
      const limit = BigInt(s.segLimit[Seg.CS]!);
      if (rip > limit) return exc(13, 0);
      const room = limit - rip + 1n;
      if (room < 15n) avail = Number(room);
      linear = (s.segBase[Seg.CS]! + rip) & 0xffff_ffffn;
    }
    const f = this.mem.fetch(linear, avail, { type: 'fetch', user: x.cpl === 3, implicit: false });
    if (!f.ok) return fromGuestFault(f.fault);
    const d = this.cache.decode(f.phys, f.bytes, bitness, rip);
    if (d.ok) return d.instr;
    if (d.reason === 'truncated') {
      if (f.fault) return fromGuestFault(f.fault);
      return exc(13, 0); // ran into the CS limit (or past 15 bytes)
    }
    if (d.reason === 'too-long') return exc(13, 0);
    return exc(6);
  }

  private execute(x: ExecContext): StepResult {
    const s = x.state;
    const instr = this.fetchDecode(x);
    if ('t' in instr) return this.fault(x, instr);
    const nextMask = instr.bitness === 64 ? 0xffff_ffff_ffff_ffffn : instr.bitness === 32 ? 0xffff_ffffn : 0xffffn;
    x.begin((s.rip + BigInt(instr.length)) & nextMask);
    const nr = this.nr;
    if (nr && isExitCapable(instr)) {
      const pre = this.preExit(x, instr);
      if (pre && 'fault' in pre) return this.fault(x, pre.fault);
      const d = evaluateInstruction(instr, s, nr.controls, nr.env, pre?.inputs ?? {});
      if (d.kind === 'exit') return this.exit(d.exit);
      if (d.kind === 'fault') return this.fault(x, d.errorCode === undefined ? exc(d.vector) : exc(d.vector, d.errorCode));
    }
    const row = INSTRUCTION_TABLE.get(instr.name);
    if (!row) return this.unsupported(instr.name, s.rip);
    const tf = (s.rflags & 0x100n) !== 0n;
    const out = row.handler(x, instr);
    return this.complete(x, instr, out, tf);
  }

  /** Work the SDM orders before the exit decision: TSS I/O-permission check; LMSW's memory operand; PLE timing. */
  private preExit(x: ExecContext, instr: DecodedInstr): { fault: Fault } | { inputs: { memSource?: bigint; monitorArmed?: boolean; pauseLoopExceeded?: boolean } } | null {
    const s = x.state;
    if (isIoInstruction(instr)) {
      const a = ioAccessOf(instr, s);
      const f = ioPermissionFault(x, a.port, a.size);
      return f ? { fault: f } : null;
    }
    if (instr.name === 'lmsw' && instr.ops[0]!.kind === 'mem') {
      if (x.cpl > 0) return { fault: exc(13, 0) };
      const v = x.read(instr, 0, 2);
      if (typeof v !== 'bigint') return { fault: v };
      return { inputs: { memSource: v } };
    }
    if (instr.name === 'mwait') return { inputs: { monitorArmed: this.aux.monitorArmed } };
    if (instr.name === 'pause' && this.nr && this.nr.controls.secondary & Secondary.PAUSE_LOOP_EXITING && x.cpl === 0) {
      const a = this.aux;
      const now = s.tsc;
      const c = this.nr.controls;
      if (a.plePrevPause < 0n || now - a.plePrevPause > BigInt(c.pleGap)) a.pleLoopStart = now;
      a.plePrevPause = now;
      return { inputs: { pauseLoopExceeded: now - a.pleLoopStart > BigInt(c.pleWindow) } };
    }
    return null;
  }

  private unsupported(mnemonic: string, rip: bigint): StepResult {
    if (!isKnownGap(mnemonic)) throw new Error(`turtles bug: ${mnemonic} answered unsupported but is not listed in coverage.ts`);
    return { kind: 'unsupported', mnemonic, rip };
  }

  private complete(x: ExecContext, instr: DecodedInstr, out: Outcome, tfBefore: boolean): StepResult {
    const s = x.state;
    if (out === undefined || ('t' in out && (out.t === 'repeat' || out.t === 'halt'))) {
      if (out === undefined || out.t === 'halt') s.rip = x.nextRip;
      if (out !== undefined && out.t === 'halt') s.activity = 1;
      return this.retire(x, tfBefore);
    }
    switch (out.t) {
      case 'fault':
      case 'exit':
        return this.fault(x, out);
      case 'unsupported':
        return this.unsupported(instr.name, s.rip);
      case 'soft-int': {
        const r = this.raise(x, { vector: out.vector, type: out.type, returnRip: x.nextRip, instructionLength: instr.length });
        if (r.kind === 'delivered') {
          this.tick(x, 1n);
          this.aux.retired++;
          s.interruptibility &= ~(Interruptibility.STI | Interruptibility.MOV_SS);
        }
        return r;
      }
      case 'task-switch':
        if (this.nr) return this.exit(taskSwitchExit(out.selector, out.source, instr.length));
        return this.unsupported('(task switch)', s.rip);
    }
  }

  private retire(x: ExecContext, tfBefore: boolean): StepResult {
    const s = x.state;
    const a = this.aux;
    a.retired++;
    this.tick(x, 1n);
    s.interruptibility = (s.interruptibility & ~(Interruptibility.STI | Interruptibility.MOV_SS)) | x.newShadow;
    if (tfBefore && !(x.newShadow & Interruptibility.MOV_SS)) a.pendingDebugTrap |= 1 << 14;
    if (this.nr && mtfEnabled(this.nr.controls)) a.mtfPending = true;
    if (x.trapExit) return this.exit(x.trapExit);
    const apicTrap = this.nr?.apic?.completeOperation();
    if (apicTrap) return this.exit(apicTrap);
    return RETIRED;
  }

  // ---- exceptions ---------------------------------------------------------------------------------------

  /** A fault raised by the current instruction (RIP at the instruction) or a VM exit reported as a fault. */
  private fault(x: ExecContext, f: Fault): StepResult {
    if (f.t === 'exit') {
      // A convertible EPT violation outside event delivery may become a #VE instead of the exit (SDM 25.5.6.1); fault()
      // never runs during event delivery (raise() handles those faults), so only CR0.PE and the area remain to check.
      const nr = this.nr;
      if (f.veConvertible && nr?.veArea && nr.controls.secondary & Secondary.EPT_VIOLATION_VE && convertToVe(f.exit, x.state.cr0, nr.veArea)) {
        return this.raise(x, { vector: VE_VECTOR, type: IntrType.HARDWARE_EXCEPTION, returnRip: x.state.rip });
      }
      // Bit 12 "NMI unblocking due to IRET" is defined for EPT violations (48) and PML-full exits (62), SDM 27.2.1.
      const e = x.iretUnblockedNmi && (f.exit.reason === 48 || f.exit.reason === 62) ? { ...f.exit, qualification: f.exit.qualification | (1n << 12n) } : f.exit;
      return this.exit(e);
    }
    return this.raise(x, {
      vector: f.vector,
      type: IntrType.HARDWARE_EXCEPTION,
      ...(f.errorCode !== undefined ? { errorCode: f.errorCode } : {}),
      ...(f.cr2 !== undefined ? { cr2: f.cr2 } : {}),
      ...(f.vector === 1 ? { dr6: 1 << 13 } : {}),
      returnRip: x.state.rip,
    });
  }

  /**
   * Raise `ev`: in VMX non-root operation the exception bitmap first (unless injected), then delivery
   * through the IDT; a fault during delivery becomes #DF or is handled serially; a fault while delivering
   * #DF is a triple fault. `during` is the event whose delivery raised `ev` (IDT-vectoring information).
   */
  private raise(x: ExecContext, ev: RaisedEvent, during?: RaisedEvent, injected = false): StepResult {
    const s = x.state;
    const nr = this.nr;
    const isException = ev.type === IntrType.HARDWARE_EXCEPTION || ev.type === IntrType.SOFTWARE_EXCEPTION || ev.type === IntrType.PRIVILEGED_SOFTWARE_EXCEPTION;
    if (nr && isException && !injected && exceptionExits(nr.controls, ev.vector, ev.errorCode ?? 0)) {
      let qualification = 0n;
      if (ev.vector === 14 && ev.cr2 !== undefined) qualification = s.longMode64 ? ev.cr2 : ev.cr2 & 0xffff_ffffn;
      if (ev.vector === 1 && ev.dr6 !== undefined) qualification = BigInt(ev.dr6 & 0x1600f);
      const exit = exceptionExit({
        vector: ev.vector, type: ev.type, qualification,
        ...(ev.errorCode !== undefined ? { errorCode: ev.errorCode } : {}),
        ...(ev.instructionLength !== undefined ? { instructionLength: ev.instructionLength } : {}),
        nmiUnblockingIret: x.iretUnblockedNmi,
      });
      // #DF caused by delivery is reported without IDT-vectoring information (SDM 27.2.4).
      return this.exit(during && !(ev.vector === 8 && ev.type === IntrType.HARDWARE_EXCEPTION) ? { ...exit, ...vectoringInfo(during) } : exit);
    }
    if (ev.vector === 14 && ev.type === IntrType.HARDWARE_EXCEPTION && ev.cr2 !== undefined) s.cr2 = ev.cr2;
    if (ev.vector === 1 && ev.type === IntrType.HARDWARE_EXCEPTION && ev.dr6 !== undefined) s.dr[6] = (s.dr[6]! & ~0xe00fn) | BigInt(ev.dr6 & 0xe00f);
    // Accesses to the APIC-access page during delivery report access type 3 (SDM table 27-6).
    if (nr?.apic) nr.apic.eventDelivery = true;
    const out = deliver(x, { vector: ev.vector, type: ev.type, returnRip: ev.returnRip, ...(ev.errorCode !== undefined ? { errorCode: ev.errorCode } : {}) });
    if (nr?.apic) nr.apic.eventDelivery = false;
    switch (out.kind) {
      case 'delivered': {
        s.interruptibility &= ~(Interruptibility.STI | Interruptibility.MOV_SS);
        if (ev.type === IntrType.NMI) s.interruptibility |= Interruptibility.NMI;
        s.activity = 0;
        const record: EventRecord = { vector: ev.vector, type: ev.type, ...(ev.errorCode !== undefined ? { errorCode: ev.errorCode } : {}) };
        if (nr && mtfEnabled(nr.controls) && ev.type !== IntrType.EXTERNAL_INTERRUPT && ev.type !== IntrType.NMI) this.aux.mtfPending = true;
        // A virtualized APIC write by the faulting operation (or by this delivery) is emulated once the event is
        // delivered, before its handler runs (SDM 29.4.3.2); an APIC-write exit then reports the handler's RIP.
        const apicTrap = nr?.apic?.completeOperation();
        if (apicTrap) return this.exit(apicTrap);
        return { kind: 'delivered', event: record };
      }
      case 'exit':
        return this.exit({ ...out.exit, ...vectoringInfo(ev) });
      case 'task-gate':
        if (nr) return this.exit({ ...taskSwitchExit(out.selector, 3), ...vectoringInfo(ev) });
        return this.unsupported('(task switch)', s.rip);
      case 'unsupported':
        return this.unsupported('(event delivery)', s.rip);
      case 'fault': {
        const f = out.fault;
        if (ev.vector === 8 && ev.type === IntrType.HARDWARE_EXCEPTION) return this.tripleFault(x);
        const second: RaisedEvent = {
          vector: f.vector, type: IntrType.HARDWARE_EXCEPTION, returnRip: s.rip,
          ...(f.errorCode !== undefined ? { errorCode: f.errorCode } : {}),
          ...(f.cr2 !== undefined ? { cr2: f.cr2 } : {}),
        };
        if (becomesDoubleFault(ev, second)) {
          return this.raise(x, { vector: 8, type: IntrType.HARDWARE_EXCEPTION, errorCode: 0, returnRip: s.rip }, ev);
        }
        return this.raise(x, second, ev);
      }
    }
  }

  private tripleFault(x: ExecContext): StepResult {
    if (this.nr) return this.exit(tripleFaultExit());
    x.state.activity = 2;
    return { kind: 'shutdown' };
  }
}
