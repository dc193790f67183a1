// The built-in configurable L1 hypervisor: from an L1Config it sets up the VMCS and L2 (setup.ts), VMLAUNCHes, and
// then loops — read the exit information with VMREADs, apply the policy's actions for the exit reason (or the default
// handling), VMRESUME — until a 'stop' action, a VMfail, a shutdown, L2 stopping, or the exit limit. kvm-unit-tests'
// VMX framework is the model. Must not: use anything but L1Machine (it runs unchanged on the nested machine).
import { L1_GPA } from '../address.js';
import { ExitReason } from '../generated/exit-reasons.js';
import { Pin, Primary, Secondary, ExitCtl } from '../generated/controls.js';
import { Field } from '../generated/vmcs-fields.js';
import { CpuState } from '../state.js';
import { emulateInstruction, type GuestRegisters } from './emulate.js';
import { L1Layout, type ControlField, type L1Action, type L1Config } from './config.js';
import type { Ept12Editor } from './ept12.js';
import type { L1LaunchResult, L1Machine, L1Program } from './machine.js';
import { finalControls, placeL2, policyUses, readCaps, vmcsWrites, writeVmxMemory, type L1Caps } from './setup.js';

/** The exit information L1 reads after each exit to it (SDM 27.2). */
export interface ExitView {
  /** 1-based count of exits to L1 in this run. */
  readonly ordinal: number;
  readonly reason: number;
  readonly basic: number;
  readonly entryFailure: boolean;
  readonly qualification: bigint;
  readonly guestLinearAddress: bigint;
  readonly guestPhysicalAddress: bigint;
  readonly interruptionInfo: number;
  readonly interruptionErrorCode: number;
  readonly idtVectoringInfo: number;
  readonly idtVectoringErrorCode: number;
  readonly instructionLength: number;
  readonly instructionInfo: number;
}

export const DEFAULT_MAX_EXITS = 64;

const CONTROL_FIELD: Record<ControlField, number> = {
  pin: Field.PIN_BASED_VM_EXEC_CONTROL, primary: Field.CPU_BASED_VM_EXEC_CONTROL, secondary: Field.SECONDARY_VM_EXEC_CONTROL,
  exit: Field.VM_EXIT_CONTROLS, entry: Field.VM_ENTRY_CONTROLS, 'exception-bitmap': Field.EXCEPTION_BITMAP,
};

const STOP: readonly L1Action[] = [{ kind: 'stop' }];

/**
 * What the built-in L1 does for an exit no rule matches (a hypervisor that keeps L2 running): instructions are
 * emulated and skipped; exceptions and NMIs are re-injected; acknowledged interrupts are injected (unacknowledged
 * ones: external-interrupt exiting is turned off so L2 takes them), through an interrupt window when L2 cannot take
 * them yet; NMI-window, MTF and timer exits turn their control off; TPR-below-threshold clears the threshold; EPT violations map the page, INVEPT and re-inject; L2's VMFUNC gets #UD;
 * triple fault, task switch, entry failures, EPT misconfigurations and anything else stop.
 */
export function defaultActions(x: ExitView): readonly L1Action[] {
  if (x.entryFailure) return STOP;
  switch (x.basic) {
    case ExitReason.EXCEPTION_NMI:
      return [{ kind: 'reinject' }];
    case ExitReason.EXTERNAL_INTERRUPT:
      return x.interruptionInfo >>> 31 ? [{ kind: 'deliver-interrupt' }]
        : [{ kind: 'set-control', field: 'pin', clear: Pin.EXTERNAL_INTERRUPT_EXITING }];
    case ExitReason.INTERRUPT_WINDOW:
      return [{ kind: 'deliver-interrupt' }];
    case ExitReason.NMI_WINDOW:
      return [{ kind: 'set-control', field: 'primary', clear: Primary.NMI_WINDOW_EXITING }];
    case ExitReason.MONITOR_TRAP_FLAG:
      return [{ kind: 'set-control', field: 'primary', clear: Primary.MONITOR_TRAP_FLAG }];
    case ExitReason.PREEMPTION_TIMER:
      // "Save timer value" without an active timer fails VM entry (SDM 26.2.1.2): clear both.
      return [{ kind: 'set-control', field: 'pin', clear: Pin.ACTIVATE_VMX_PREEMPTION_TIMER },
        { kind: 'set-control', field: 'exit', clear: ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE }];
    case ExitReason.TPR_BELOW_THRESHOLD:
      return [{ kind: 'vmwrite', encoding: Field.TPR_THRESHOLD, value: 0n }];
    case ExitReason.EPT_VIOLATION:
      // The event being delivered when the violation hit (IDT-vectoring information) is delivered again.
      return [{ kind: 'ept-fix' }, { kind: 'invept', type: 2 }, { kind: 'reinject' }];
    case ExitReason.VMFUNC:
      return [{ kind: 'inject', vector: 6, type: 3 }];
    case ExitReason.TRIPLE_FAULT:
    case ExitReason.TASK_SWITCH:
    case ExitReason.EPT_MISCONFIG:
      return STOP;
    default:
      return x.instructionLength > 0 ? [{ kind: 'emulate' }] : STOP;
  }
}

/** The built-in L1 program for `config`. */
export function builtinL1(config: L1Config): L1Program {
  return (m) => new BuiltinL1(m, config).run();
}

class BuiltinL1 implements GuestRegisters {
  readonly msrs = new Map<number, bigint>();
  cr8 = 0n;
  counter = 0;
  caps!: L1Caps;
  private current: bigint = L1Layout.VMCS;
  private readonly launched = new Map<bigint, boolean>();
  private eptp: bigint | undefined;
  private editor: Ept12Editor | undefined;
  private exits = 0;
  private l1: CpuState | undefined;
  /** An acknowledged external interrupt L2 could not take yet. */
  private heldInterrupt: number | undefined;

  constructor(readonly m: L1Machine, private readonly config: L1Config) {}

  run(): void {
    const m = this.m;
    const config = this.config;
    this.caps = readCaps(m);
    const c = finalControls(config, this.caps);
    for (const [i, v] of config.l1Msrs ?? []) m.wrmsr(i, v);
    writeVmxMemory(m, config, this.caps, c);
    const guest = new CpuState();
    const placement = placeL2(m, config, guest);
    this.eptp = placement.eptp;
    this.editor = placement.editor;
    if (this.eptp !== undefined && (config.vmfuncControls ?? 0n) & 1n) m.writeMemory(L1_GPA.of(L1Layout.EPTP_LIST), 8, this.eptp);

    if (m.vmxon(L1_GPA.of(L1Layout.VMXON)).kind !== 'vmsucceed') return;
    const writes = vmcsWrites(config, this.caps, c, m.l1State(), guest, placement);
    const vmcsList = policyUses(config, 'switch-vmcs') ? [L1Layout.VMCS_ALT, L1Layout.VMCS] : [L1Layout.VMCS];
    if (c.secondary & Secondary.VMCS_SHADOWING) m.vmclear(L1_GPA.of(L1Layout.SHADOW_VMCS));
    for (const ptr of vmcsList) {
      m.vmclear(L1_GPA.of(ptr));
      if (m.vmptrld(L1_GPA.of(ptr)).kind !== 'vmsucceed') return this.end();
      for (const [e, v] of writes) m.vmwrite(BigInt(e), v);
    }
    // L2 starts with L1's general-purpose registers (RSP comes from the VMCS).
    const gprs = new Map(config.l2.gprs ?? []);
    for (let r = 0; r < 16; r++) if (r !== 4) m.setGpr(r, gprs.get(r) ?? 0n);
    this.loop();
  }

  private loop(): void {
    const max = this.config.maxExits ?? DEFAULT_MAX_EXITS;
    let r = this.enter();
    for (;;) {
      if (r.kind !== 'vm-exit') {
        if (r.kind === 'vmfail-valid') this.vmread(Field.VM_INSTRUCTION_ERROR);
        if (r.kind === 'shutdown' || r.kind === 'l2-stopped') return;
        return this.end();
      }
      this.exits++;
      this.l1 = undefined;
      const x = this.readExit();
      if (x.entryFailure === false) this.launched.set(this.current, true);
      if (this.exits >= max) return this.end();
      if (!this.handle(x)) return this.end();
      r = this.enter();
    }
  }

  private enter(): L1LaunchResult {
    return this.launched.get(this.current) ? this.m.vmresume() : this.m.vmlaunch();
  }

  private end(): void {
    if (this.config.vmxoffAtEnd ?? true) this.m.vmxoff();
  }

  private readExit(): ExitView {
    const n = (e: number) => Number(this.vmread(e) & 0xffff_ffffn) >>> 0;
    const reason = n(Field.VM_EXIT_REASON);
    return {
      ordinal: this.exits,
      reason,
      basic: reason & 0xffff,
      entryFailure: reason >>> 31 === 1,
      qualification: this.vmread(Field.EXIT_QUALIFICATION),
      guestLinearAddress: this.vmread(Field.GUEST_LINEAR_ADDRESS),
      guestPhysicalAddress: this.vmread(Field.GUEST_PHYSICAL_ADDRESS),
      interruptionInfo: n(Field.VM_EXIT_INTR_INFO),
      interruptionErrorCode: n(Field.VM_EXIT_INTR_ERROR_CODE),
      idtVectoringInfo: n(Field.IDT_VECTORING_INFO_FIELD),
      idtVectoringErrorCode: n(Field.IDT_VECTORING_ERROR_CODE),
      instructionLength: n(Field.VM_EXIT_INSTRUCTION_LEN),
      instructionInfo: n(Field.VMX_INSTRUCTION_INFO),
    };
  }

  /** The actions for this exit: the first matching rule's, else the defaults. */
  private actionsFor(x: ExitView): readonly L1Action[] {
    for (const rule of this.config.policy?.rules ?? []) {
      if (rule.reason !== 'any' && rule.reason !== x.basic) continue;
      const from = rule.from ?? 1;
      if (x.ordinal < from || (rule.count !== undefined && x.ordinal >= from + rule.count)) continue;
      return rule.actions;
    }
    return defaultActions(x);
  }

  /** Run the actions; false = stop. */
  private handle(x: ExitView): boolean {
    for (const a of this.actionsFor(x)) if (!this.act(a, x)) return false;
    return true;
  }

  private act(a: L1Action, x: ExitView): boolean {
    const m = this.m;
    switch (a.kind) {
      case 'stop':
        return false;
      case 'skip':
        this.skip(x);
        return true;
      case 'emulate':
        if (!x.entryFailure && x.instructionLength > 0 && emulateInstruction(this, x)) {
          this.skip(x);
          return true;
        }
        for (const d of defaultActions(x)) if (d.kind === 'emulate' || !this.act(d, x)) return false;
        return true;
      case 'inject': {
        const soft = a.type === 4 || a.type === 5 || a.type === 6;
        this.injectEvent(a.vector, a.type, a.errorCode, a.instructionLength ?? (soft ? x.instructionLength : undefined));
        return true;
      }
      case 'reinject':
        this.reinject(x);
        return true;
      case 'deliver-interrupt':
        this.deliverInterrupt(x);
        return true;
      case 'set-control': {
        const f = CONTROL_FIELD[a.field];
        const v = Number(this.vmread(f) & 0xffff_ffffn);
        this.vmwrite(f, BigInt((((v | (a.set ?? 0)) & ~(a.clear ?? 0)) >>> 0)));
        return true;
      }
      case 'vmwrite':
        this.vmwrite(a.encoding, a.value);
        return true;
      case 'ept-map':
        this.editor?.map(a.l2, a.l1, a.pageSize ?? '4K', { read: a.read ?? true, write: a.write ?? true, execute: a.execute ?? true });
        return true;
      case 'ept-protect':
        this.editor?.protect(a.l2, a.read, a.write, a.execute);
        return true;
      case 'ept-unmap':
        this.editor?.unmap(a.l2);
        return true;
      case 'ept-fix': {
        // Grant every right on the leaf that maps the page; with no leaf, map it at its default L1 page.
        const page = x.guestPhysicalAddress & ~0xfffn;
        if (this.editor && !this.editor.protect(page, true, true, true)) this.editor.map(page, L1Layout.L2_BASE + page, '4K', {});
        return true;
      }
      case 'invept':
        m.invept(BigInt(a.type), a.type === 1 ? (this.eptp ?? 0n) : 0n);
        return true;
      case 'invvpid':
        m.invvpid(BigInt(a.type), this.config.vpid ?? 0, a.linear ?? 0n);
        return true;
      case 'switch-vmcs': {
        m.vmclear(L1_GPA.of(this.current));
        this.launched.set(this.current, false);
        this.current = this.current === L1Layout.VMCS ? L1Layout.VMCS_ALT : L1Layout.VMCS;
        return m.vmptrld(L1_GPA.of(this.current)).kind === 'vmsucceed';
      }
    }
  }

  /** RIP past the instruction; the STI / MOV-SS shadow ends with it (as a CPU retiring it would). */
  private skip(x: ExitView): void {
    const rip = this.vmread(Field.GUEST_RIP);
    this.vmwrite(Field.GUEST_RIP, rip + BigInt(x.instructionLength));
    const intr = this.vmread(Field.GUEST_INTERRUPTIBILITY_INFO);
    if (intr & 3n) this.vmwrite(Field.GUEST_INTERRUPTIBILITY_INFO, intr & ~3n);
  }

  private injectEvent(vector: number, type: number, errorCode: number | undefined, length: number | undefined): void {
    const info = (0x8000_0000 | ((type & 7) << 8) | (vector & 0xff) | (errorCode !== undefined ? 0x800 : 0)) >>> 0;
    this.vmwrite(Field.VM_ENTRY_INTR_INFO_FIELD, BigInt(info));
    if (errorCode !== undefined) this.vmwrite(Field.VM_ENTRY_EXCEPTION_ERROR_CODE, BigInt(errorCode >>> 0));
    if (length !== undefined) this.vmwrite(Field.VM_ENTRY_INSTRUCTION_LEN, BigInt(length));
  }

  private deliverInterrupt(x: ExitView): void {
    if (x.basic === ExitReason.EXTERNAL_INTERRUPT && x.interruptionInfo >>> 31) this.heldInterrupt = x.interruptionInfo & 0xff;
    const primary = Number(this.vmread(Field.CPU_BASED_VM_EXEC_CONTROL) & 0xffff_ffffn);
    const window = (on: boolean) => {
      const v = on ? primary | Primary.INTERRUPT_WINDOW_EXITING : primary & ~Primary.INTERRUPT_WINDOW_EXITING;
      if (v !== primary) this.vmwrite(Field.CPU_BASED_VM_EXEC_CONTROL, BigInt(v >>> 0));
    };
    if (this.heldInterrupt === undefined) return window(false);
    const open = (this.vmread(Field.GUEST_RFLAGS) & 0x200n) !== 0n && (this.vmread(Field.GUEST_INTERRUPTIBILITY_INFO) & 3n) === 0n;
    if (!open) return window(true);
    this.injectEvent(this.heldInterrupt, 0, undefined, undefined);
    this.heldInterrupt = undefined;
    window(false);
  }

  /** Deliver again what the exit interrupted: the IDT-vectoring event, else the exception or NMI the exit reports. */
  private reinject(x: ExitView): void {
    const from = x.idtVectoringInfo >>> 31 ? { info: x.idtVectoringInfo, ec: x.idtVectoringErrorCode }
      : x.basic === ExitReason.EXCEPTION_NMI && x.interruptionInfo >>> 31 ? { info: x.interruptionInfo, ec: x.interruptionErrorCode } : undefined;
    if (!from) return;
    const type = (from.info >>> 8) & 7;
    const soft = type === 4 || type === 5 || type === 6;
    this.injectEvent(from.info & 0xff, type, from.info & 0x800 ? from.ec : undefined, soft ? x.instructionLength : undefined);
  }

  // ---- GuestRegisters ---------------------------------------------------------------------------------------------

  gpr(index: number): bigint {
    if (index === 4) return this.vmread(Field.GUEST_RSP);
    this.l1 ??= this.m.l1State();
    return this.l1.gpr[index]!;
  }

  setGpr(index: number, value: bigint): void {
    if (index === 4) {
      this.vmwrite(Field.GUEST_RSP, value);
      return;
    }
    this.m.setGpr(index, value);
    if (this.l1) this.l1.gpr[index] = BigInt.asUintN(64, value);
  }

  vmread(encoding: number): bigint {
    const r = this.m.vmread(BigInt(encoding));
    return r.kind === 'vmsucceed' ? (r.value ?? 0n) : 0n;
  }

  vmwrite(encoding: number, value: bigint): void {
    this.m.vmwrite(BigInt(encoding), BigInt.asUintN(64, value));
  }
}
