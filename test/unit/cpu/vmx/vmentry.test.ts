// VMLAUNCH / VMRESUME: the basic checks of reference §2.3 (steps 1-6) in order, the outcome classes of §3.0
// (VMfailValid 7/8, entry failures 33/34 with SDM 26.8 semantics), guest-state loading (26.3.2), VM-entry MSR
// loading (26.4), event injection (26.6), and VMX instructions executed in non-root operation (incl. shadowing).
// The entry checks themselves are a stub here: their engine is tested in test/unit/cpu/vmentry.
import { describe, expect, it } from 'vitest';
import { EntryCtl, Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { IntrType, interruptionInfo } from '../../../../src/cpu/exit-info/index.js';
import { Msr, Seg } from '../../../../src/cpu/state.js';
import { flagsPattern } from '../../../../src/cpu/vmx/outcome.js';
import {
  MSR_AREA, SKYLAKE, VMCS_A, VMCS_B, checkerReturning, entered, expectKind, fillGuestAndHost, inVmx, msrEntry, processor,
} from './helpers.js';

const IA32_STAR = 0xc000_0081;

function ready(verdict = checkerReturning({ kind: 'pass' })) {
  const r = inVmx(SKYLAKE, true, { entryChecker: verdict });
  fillGuestAndHost(r.p.currentVmcs!);
  return { ...r, checker: verdict };
}

describe('basic VM-entry checks (reference §2.3 steps 1-6)', () => {
  it('step 1: #UD outside VMX operation, #GP(0) at CPL > 0 (before the current-VMCS check)', () => {
    expect(processor().p.vmlaunch()).toEqual({ kind: 'fault', vector: 6 });
    const { p } = inVmx(SKYLAKE, false);
    p.state.segAr[Seg.SS] = 0xc0f3;
    expect(p.vmresume()).toEqual({ kind: 'fault', vector: 13, errorCode: 0 });
  });

  it('step 2: VMfailInvalid without a current VMCS', () => {
    const { p } = inVmx(SKYLAKE, false);
    expect(p.vmlaunch()).toEqual({ kind: 'vmfail-invalid' });
    expect(p.vmresume()).toEqual({ kind: 'vmfail-invalid' });
    expect(flagsPattern(p.state.rflags)).toBe('fail-invalid');
  });

  it('step 3: VMfailInvalid when the current VMCS is a shadow VMCS', () => {
    const { p, mem, checker } = ready();
    mem.write(VMCS_B, 4, BigInt(SKYLAKE.vmcsRevision) | 0x8000_0000n);
    expectKind(p.vmclear(VMCS_B), 'vmsucceed');
    expectKind(p.vmptrld(VMCS_B), 'vmsucceed');
    expect(p.vmlaunch()).toEqual({ kind: 'vmfail-invalid' });
    expect(checker.calls).toBe(0);
  });

  it('step 4: VMfailValid(26) with blocking by MOV SS, ahead of the launch-state checks', () => {
    const { p } = ready();
    p.state.interruptibility = 0x2;
    expect(p.vmresume()).toEqual({ kind: 'vmfail-valid', error: 26 });
    expect(p.currentVmcs!.get(Field.VM_INSTRUCTION_ERROR)).toBe(26n);
  });

  it('step 5: VMLAUNCH of a launched VMCS → VMfailValid(4); step 6: VMRESUME of a clear one → VMfailValid(5)', () => {
    const { p, checker } = ready();
    expect(p.vmresume()).toEqual({ kind: 'vmfail-valid', error: 5 });
    expect(checker.calls).toBe(0);
    expectKind(p.vmlaunch(), 'vm-entry');
    expectKind(p.vmExit({ reason: 10, instructionLength: 2 }, p.guest!), 'host');
    expect(p.vmlaunch()).toEqual({ kind: 'vmfail-valid', error: 4 });
    expect(flagsPattern(p.state.rflags)).toBe('fail-valid');
    expectKind(p.vmresume(), 'vm-entry');
  });
});

describe('entry-check verdicts (reference §3.0 classes 2-5)', () => {
  it('controls → VMfailValid(7), host state → VMfailValid(8): nothing loaded, launch state unchanged', () => {
    for (const error of [7, 8] as const) {
      const { p } = ready(checkerReturning({ kind: 'vmfail', error, checkId: 'X' }));
      const rip = p.state.rip;
      expect(p.vmlaunch()).toEqual({ kind: 'vmfail-valid', error });
      expect(p.state.rip).toBe(rip);
      expect(p.nonRoot).toBe(false);
      expect(p.launchState(VMCS_A)).toBe('clear');
    }
  });

  it('guest state → exit 33 with bit 31: only reason and qualification written, host state and exit MSR-load list loaded', () => {
    const { p, mem } = ready(checkerReturning({ kind: 'entry-failure', exitReason: 33, qualification: 4n, checkId: 'G-LINK' }));
    const v = p.currentVmcs!;
    v.set32(Field.VM_EXIT_INTR_INFO, 0x1234);
    v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, interruptionInfo(13, IntrType.HARDWARE_EXCEPTION, true));
    v.set(Field.GUEST_RIP, 0x5555n);
    v.set(Field.VM_EXIT_MSR_STORE_ADDR, MSR_AREA);
    v.set32(Field.VM_EXIT_MSR_STORE_COUNT, 1);
    msrEntry(mem, MSR_AREA, 0, Msr.IA32_SYSENTER_CS, 0xaaaan);
    v.set(Field.VM_EXIT_MSR_LOAD_ADDR, MSR_AREA + 0x100n);
    v.set32(Field.VM_EXIT_MSR_LOAD_COUNT, 1);
    msrEntry(mem, MSR_AREA + 0x100n, 0, IA32_STAR, 0x1234_5678n);
    p.state.gpr[0] = 0x77n;
    p.state.interruptibility = 0x8;
    const out = p.vmlaunch();
    expect(out).toEqual({ kind: 'entry-failure-exit', exitReason: 0x8000_0021, qualification: 4n, checkId: 'G-LINK' });
    expect(v.get(Field.VM_EXIT_REASON)).toBe(0x8000_0021n);
    expect(v.get(Field.EXIT_QUALIFICATION)).toBe(4n);
    expect(v.get(Field.VM_EXIT_INTR_INFO)).toBe(0x1234n);
    expect(v.get(Field.VM_ENTRY_INTR_INFO_FIELD) >> 31n).toBe(1n); // valid bit not cleared
    expect(v.get(Field.GUEST_RIP)).toBe(0x5555n); // guest state not saved
    expect(mem.read(MSR_AREA + 8n, 8)).toBe(0xaaaan); // no MSR store
    expect(p.launchState(VMCS_A)).toBe('clear');
    expect(p.state.rip).toBe(0xffff_8000_0000_1000n);
    expect(p.state.rflags).toBe(0x2n);
    expect(p.state.gpr[0]).toBe(0x77n);
    expect(p.state.msr(IA32_STAR)).toBe(0x1234_5678n);
    expect(p.state.interruptibility).toBe(0x8); // NMI blocking is what it was before VM entry
    expect(p.nonRoot).toBe(false);
  });

  it('MSR loading reported by the checks → exit 34: entries before the failing one stay loaded', () => {
    const { p, mem } = ready(checkerReturning({ kind: 'entry-failure', exitReason: 34, qualification: 2n, checkId: 'M-RSV' }));
    const v = p.currentVmcs!;
    v.set(Field.VM_ENTRY_MSR_LOAD_ADDR, MSR_AREA);
    v.set32(Field.VM_ENTRY_MSR_LOAD_COUNT, 2);
    msrEntry(mem, MSR_AREA, 0, IA32_STAR, 0x4242n);
    msrEntry(mem, MSR_AREA, 1, Msr.IA32_LSTAR, 0x9999n, 1);
    expect(p.vmlaunch()).toEqual({ kind: 'entry-failure-exit', exitReason: 0x8000_0022, qualification: 2n, checkId: 'M-RSV' });
    expect(p.state.msr(IA32_STAR)).toBe(0x4242n);
    expect(p.state.msr(Msr.IA32_LSTAR)).toBe(0n);
    expect(p.launchState(VMCS_A)).toBe('clear');
  });

  it('an MSR-load failure found while loading (FS base, x2APIC range, microcode, capacity) → exit 34 with its index', () => {
    const cases: [number, bigint][] = [[Msr.IA32_FS_BASE, 1n], [0x808, 1n], [Msr.IA32_BIOS_UPDT_TRIG, 1n], [Msr.IA32_SMM_MONITOR_CTL, 0n]];
    for (const [index, value] of cases) {
      const { p, mem } = ready();
      const v = p.currentVmcs!;
      v.set(Field.VM_ENTRY_MSR_LOAD_ADDR, MSR_AREA);
      v.set32(Field.VM_ENTRY_MSR_LOAD_COUNT, 3);
      msrEntry(mem, MSR_AREA, 0, IA32_STAR, 1n);
      msrEntry(mem, MSR_AREA, 1, Msr.IA32_LSTAR, 2n);
      msrEntry(mem, MSR_AREA, 2, index, value);
      const out = p.vmlaunch();
      expect(out, `MSR ${index.toString(16)}`).toMatchObject({ kind: 'entry-failure-exit', exitReason: 0x8000_0022, qualification: 3n });
      expect(p.state.msr(Msr.IA32_LSTAR)).toBe(2n);
    }
  });

  it('a WRMSR that would fault fails the entry at that index', () => {
    const r = inVmx(SKYLAKE, true, { entryChecker: checkerReturning({ kind: 'pass' }), wrmsrFaults: (i) => i === Msr.IA32_LSTAR });
    fillGuestAndHost(r.p.currentVmcs!);
    r.p.currentVmcs!.set(Field.VM_ENTRY_MSR_LOAD_ADDR, MSR_AREA);
    r.p.currentVmcs!.set32(Field.VM_ENTRY_MSR_LOAD_COUNT, 1);
    msrEntry(r.mem, MSR_AREA, 0, Msr.IA32_LSTAR, 5n);
    expect(r.p.vmlaunch()).toMatchObject({ kind: 'entry-failure-exit', qualification: 1n });
  });
});

describe('successful VM entry (SDM 26.3.2, 26.4, 26.6)', () => {
  it('loads guest state over the root state; unswitched registers carry over', () => {
    const { p, entry } = entered(SKYLAKE, (v) => {
      v.set(Field.GUEST_CR0, 0x8000_0031n | (1n << 30n)); // CD is never modified by VM entry
      v.set(Field.GUEST_DR7, 0xf400n | 0x3n);
      v.set32(Field.GUEST_ES_AR_BYTES, 0x1_0000 | 0xf00); // unusable with reserved AR bits
      v.set(Field.GUEST_ES_BASE, 0xffff_ffff_1234_0000n);
      v.set(Field.GUEST_FS_BASE, 0x7000_0000n);
      v.set32(Field.GUEST_SYSENTER_CS, 0x10);
      v.set32(Field.GUEST_INTERRUPTIBILITY_INFO, 0x1);
      v.set32(Field.GUEST_ACTIVITY_STATE, 1);
    });
    const g = entry.guest;
    expect(entry.instruction).toBe('vmlaunch');
    expect(p.launchState(VMCS_A)).toBe('launched');
    expect(p.nonRoot).toBe(true);
    expect(g.cr0).toBe(0x8000_0031n);
    expect(g.cr3).toBe(0x5000n);
    expect(g.dr[7]).toBe(0x2403n); // bits 12, 15:14 forced 0, bit 10 forced 1, GD (13) kept
    expect(g.rip).toBe(0x40_1000n);
    expect(g.gpr[4]).toBe(0x40_8000n);
    expect(g.rflags).toBe(0x202n);
    expect(g.segAr[Seg.ES]).toBe(0x1_0000);
    expect(g.segBase[Seg.ES]).toBe(0x1234_0000n);
    expect(g.segBase[Seg.FS]).toBe(0x7000_0000n);
    expect(g.msr(Msr.IA32_FS_BASE)).toBe(0x7000_0000n);
    expect(g.msr(Msr.IA32_SYSENTER_CS)).toBe(0x10n);
    expect(g.efer & 0x500n).toBe(0x500n); // LMA and LME from "IA-32e mode guest"
    expect(g.interruptibility).toBe(0x1);
    expect(g.activity).toBe(1);
    expect(entry.injected).toBeUndefined();
    expect(entry.pendingMtf).toBe(false);
  });

  it('loads the entry MSR list into the guest', () => {
    const { entry } = entered(SKYLAKE, (v, mem) => {
      v.set(Field.VM_ENTRY_MSR_LOAD_ADDR, MSR_AREA);
      v.set32(Field.VM_ENTRY_MSR_LOAD_COUNT, 2);
      msrEntry(mem, MSR_AREA, 0, IA32_STAR, 0x11n);
      msrEntry(mem, MSR_AREA, 1, Msr.IA32_EFER, 0x0n); // WRMSR cannot clear LMA
    });
    expect(entry.guest.msr(IA32_STAR)).toBe(0x11n);
    expect(entry.guest.efer).toBe(0x400n);
  });

  it('injects a hardware exception with error code: active state, no STI/MOV-SS blocking', () => {
    const { entry } = entered(SKYLAKE, (v) => {
      v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, interruptionInfo(14, IntrType.HARDWARE_EXCEPTION, true));
      v.set32(Field.VM_ENTRY_EXCEPTION_ERROR_CODE, 0x6);
      v.set32(Field.GUEST_INTERRUPTIBILITY_INFO, 0x9);
      v.set32(Field.GUEST_ACTIVITY_STATE, 1);
    });
    expect(entry.injected).toEqual({ vector: 14, type: IntrType.HARDWARE_EXCEPTION, errorCode: 6 });
    expect(entry.guest.activity).toBe(0);
    expect(entry.guest.interruptibility).toBe(0x8);
  });

  it('software interrupts carry the VM-entry instruction length; type 7 vector 0 makes an MTF exit pending', () => {
    const soft = entered(SKYLAKE, (v) => {
      v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, interruptionInfo(0x80, IntrType.SOFTWARE_INTERRUPT));
      v.set32(Field.VM_ENTRY_INSTRUCTION_LEN, 2);
    });
    expect(soft.entry.injected).toEqual({ vector: 0x80, type: IntrType.SOFTWARE_INTERRUPT, instructionLength: 2 });
    const mtf = entered(SKYLAKE, (v) => {
      v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, interruptionInfo(0, IntrType.OTHER_EVENT));
      v.set32(Field.GUEST_ACTIVITY_STATE, 1);
    });
    expect(mtf.entry.injected).toBeUndefined();
    expect(mtf.entry.pendingMtf).toBe(true);
    expect(mtf.entry.guest.activity).toBe(1); // not vectoring: activity from the VMCS
  });

  it('loads PDPTEs for a PAE guest from memory without EPT, from the VMCS with EPT; reports the preemption timer', () => {
    const pae = (ept: boolean) =>
      entered(SKYLAKE, (v, mem) => {
        v.set32(Field.VM_ENTRY_CONTROLS, v.lo(Field.VM_ENTRY_CONTROLS) & ~EntryCtl.IA32E_MODE_GUEST);
        v.set32(Field.GUEST_CS_AR_BYTES, 0xc09b);
        v.set(Field.GUEST_CR3, 0x7020n);
        mem.write(0x7020n, 8, 0x1001n);
        mem.write(0x7028n, 8, 0x2001n);
        v.set(Field.GUEST_PDPTR0, 0xa001n);
        v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, 0x16 | Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
        v.set32(Field.VMX_PREEMPTION_TIMER_VALUE, 1000);
        if (ept) {
          v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS);
          v.set32(Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT);
        }
      });
    const noEpt = pae(false);
    expect(noEpt.entry.pdptes).toEqual([0x1001n, 0x2001n, 0n, 0n]);
    expect(noEpt.entry.guest.efer & 0x500n).toBe(0n);
    expect(noEpt.entry.preemptionTimer).toBe(1000);
    expect(pae(true).entry.pdptes).toEqual([0xa001n, 0n, 0n, 0n]);
  });
});

describe('VMX instructions in VMX non-root operation (reference §2.2 P2)', () => {
  it('cause VM exits with their basic reasons, after the #UD checks on guest state', () => {
    const { p } = entered();
    expect(p.vmclear(VMCS_B)).toEqual({ kind: 'vm-exit', reason: 19 });
    expect(p.vmptrld(VMCS_B)).toEqual({ kind: 'vm-exit', reason: 21 });
    expect(p.vmptrst()).toEqual({ kind: 'vm-exit', reason: 22 });
    expect(p.vmlaunch()).toEqual({ kind: 'vm-exit', reason: 20 });
    expect(p.vmresume()).toEqual({ kind: 'vm-exit', reason: 24 });
    expect(p.vmxoff()).toEqual({ kind: 'vm-exit', reason: 26 });
    expect(p.vmxon(0x1000n)).toEqual({ kind: 'vm-exit', reason: 27 });
    expect(p.invept(2n, 0n)).toEqual({ kind: 'vm-exit', reason: 50 });
    expect(p.invvpid(2n, 0n)).toEqual({ kind: 'vm-exit', reason: 53 });
    expect(p.vmread(BigInt(Field.GUEST_RIP), 64)).toEqual({ kind: 'vm-exit', reason: 23 });
    expect(p.vmwrite(BigInt(Field.GUEST_RIP), 0n, 64)).toEqual({ kind: 'vm-exit', reason: 25 });
    p.guest!.segAr[Seg.SS] = 0xc0f3; // CPL 3 in the guest: the exit still comes first
    expect(p.vmcall()).toEqual({ kind: 'vm-exit', reason: 18 });
    p.guest!.segAr[Seg.CS] = 0xc0fb; // compatibility mode: #UD before the exit, except VMCALL
    expect(p.vmclear(VMCS_B)).toEqual({ kind: 'fault', vector: 6 });
    expect(p.vmcall()).toEqual({ kind: 'vm-exit', reason: 18 });
  });

  it('VMREAD/VMWRITE with VMCS shadowing access the shadow VMCS unless the bitmap bit is set', () => {
    const SHADOW = 0x5000n;
    const BITMAP = 0x6000n;
    const { p, mem } = entered(SKYLAKE, (v, m) => {
      m.map(SHADOW).map(BITMAP);
      m.write(SHADOW, 4, BigInt(SKYLAKE.vmcsRevision) | 0x8000_0000n);
      v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS);
      v.set32(Field.SECONDARY_VM_EXEC_CONTROL, Secondary.VMCS_SHADOWING);
      v.set(Field.VMCS_LINK_POINTER, SHADOW);
      v.set(Field.VMREAD_BITMAP, BITMAP);
      v.set(Field.VMWRITE_BITMAP, BITMAP);
    });
    const guestRip = BigInt(Field.GUEST_RIP); // 0x681e: byte 0xd03, bit 6
    expect(p.vmwrite(guestRip, 0xbeefn, 64)).toEqual({ kind: 'vmsucceed' });
    expect(flagsPattern(p.guest!.rflags)).toBe('succeed');
    expect(p.vmread(guestRip, 64)).toEqual({ kind: 'vmsucceed', value: 0xbeefn });
    expect(p.currentVmcs!.get(Field.GUEST_RIP)).toBe(0x40_1000n); // the ordinary VMCS is untouched
    mem.write(BITMAP + 0xd03n, 1, 0x40n);
    expect(p.vmread(guestRip, 64)).toEqual({ kind: 'vm-exit', reason: 23 });
    expect(p.vmread(0x8000n, 64)).toEqual({ kind: 'vm-exit', reason: 23 });
    expect(p.vmread(0x6c40n, 64)).toEqual({ kind: 'vmfail-valid', error: 12 });
    expect(p.currentVmcs!.get(Field.VM_INSTRUCTION_ERROR)).toBe(12n);
    expect(flagsPattern(p.guest!.rflags)).toBe('fail-valid');
    p.currentVmcs!.set(Field.VMCS_LINK_POINTER, 0xffff_ffff_ffff_ffffn);
    expect(p.vmwrite(BigInt(Field.GUEST_RSP), 1n, 64)).toEqual({ kind: 'vmfail-invalid' });
    expect(flagsPattern(p.guest!.rflags)).toBe('fail-invalid');
  });
});
