// VM exits (SDM 27.1-27.7): exit-information recording, guest-state saving, the MSR-store list (abort 1), the SDM
// host-state load rules (27.5.1-27.5.5, not KVM's N14 deviations), the host MSR-load list (abort 4), aborts 2 and 6,
// and the abort indicator at offset 4 of the current VMCS region.
import { describe, expect, it } from 'vitest';
import { EntryCtl, ExitCtl, Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { IntrType, interruptionInfo } from '../../../../src/cpu/exit-info/index.js';
import { Ar, Msr, Seg } from '../../../../src/cpu/state.js';
import { MSR_AREA, SKYLAKE, VMCS_A, entered, expectKind, msrEntry, processor } from './helpers.js';

const IA32_STAR = 0xc000_0081;

describe('VM exit: exit information (SDM 27.2)', () => {
  it('vmExit outside non-root operation is a turtles bug', () => {
    const { p } = processor();
    expect(() => p.vmExit({ reason: 10 }, p.state)).toThrow(/turtles bug/);
  });

  it('records reason, qualification, addresses, interruption/IDT-vectoring info and error codes, instruction fields', () => {
    const { p } = entered();
    const v = p.currentVmcs!;
    v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, interruptionInfo(3, IntrType.SOFTWARE_EXCEPTION));
    v.set32(Field.VM_EXIT_INTR_ERROR_CODE, 0x5a5a);
    const out = p.vmExit(
      {
        reason: 0, qualification: 0xdead_b000n, guestLinearAddress: 0x1234n, guestPhysicalAddress: 0x5678n, busLock: true,
        interruptionInfo: interruptionInfo(14, IntrType.HARDWARE_EXCEPTION, true), interruptionErrorCode: 2,
        idtVectoringInfo: interruptionInfo(0x20, IntrType.EXTERNAL_INTERRUPT), idtVectoringErrorCode: 9,
        instructionLength: 3, instructionInfo: 0x42,
      },
      p.guest!,
    );
    expectKind(out, 'host');
    expect(v.get(Field.VM_EXIT_REASON)).toBe(0x0400_0000n);
    expect(v.get(Field.EXIT_QUALIFICATION)).toBe(0xdead_b000n);
    expect(v.get(Field.GUEST_LINEAR_ADDRESS)).toBe(0x1234n);
    expect(v.get(Field.GUEST_PHYSICAL_ADDRESS)).toBe(0x5678n);
    expect(v.get(Field.VM_EXIT_INTR_INFO)).toBe(0x8000_0b0en);
    expect(v.get(Field.VM_EXIT_INTR_ERROR_CODE)).toBe(2n);
    expect(v.get(Field.IDT_VECTORING_INFO_FIELD)).toBe(0x8000_0020n);
    expect(v.get(Field.IDT_VECTORING_ERROR_CODE)).toBe(0n); // no error code valid: field left alone
    expect(v.get(Field.VM_EXIT_INSTRUCTION_LEN)).toBe(3n);
    expect(v.get(Field.VMX_INSTRUCTION_INFO)).toBe(0x42n);
    expect(v.get(Field.VM_ENTRY_INTR_INFO_FIELD)).toBe(0x603n); // valid bit cleared on every VM exit
  });

  it('writes invalid interruption/IDT-vectoring info and qualification 0 when the exit defines none', () => {
    const { p } = entered();
    const v = p.currentVmcs!;
    v.set32(Field.VM_EXIT_INTR_INFO, 0x8000_0b0e);
    v.set32(Field.IDT_VECTORING_INFO_FIELD, 0x8000_0020);
    v.set(Field.EXIT_QUALIFICATION, 7n);
    v.set(Field.GUEST_LINEAR_ADDRESS, 0x99n);
    expectKind(p.vmExit({ reason: 10, instructionLength: 2 }, p.guest!), 'host');
    expect(v.get(Field.VM_EXIT_REASON)).toBe(10n);
    expect(v.get(Field.VM_EXIT_INTR_INFO)).toBe(0n);
    expect(v.get(Field.IDT_VECTORING_INFO_FIELD)).toBe(0n);
    expect(v.get(Field.EXIT_QUALIFICATION)).toBe(0n);
    expect(v.get(Field.GUEST_LINEAR_ADDRESS)).toBe(0x99n);
  });
});

describe('VM exit: saving guest state (SDM 27.3)', () => {
  it('saves registers, segments (AR reserved bits cleared, unusable rules), activity and interruptibility', () => {
    const { p } = entered();
    const g = p.guest!;
    g.rip = 0x40_2000n;
    g.gpr[4] = 0x40_7ff8n;
    g.rflags = 0x246n;
    g.cr3 = 0x6000n;
    g.segAr[Seg.DS] = 0x1_0000 | 0x0f00 | 0x93;
    g.segBase[Seg.DS] = 0x1_0000_1000n;
    g.segAr[Seg.LDTR] = 0x1_0000;
    g.segBase[Seg.LDTR] = 0x0000_8000_0000_0000n;
    g.dr[7] = 0x401n;
    g.setMsr(Msr.IA32_SYSENTER_CS, 0xffff_0000_0000_0008n);
    g.interruptibility = 0x8;
    g.activity = 1;
    g.pendingDebugExceptions = 0x4000n;
    expectKind(p.vmExit({ reason: 12, instructionLength: 1 }, g), 'host');
    const v = p.currentVmcs!;
    expect(v.get(Field.GUEST_RIP)).toBe(0x40_2000n);
    expect(v.get(Field.GUEST_RSP)).toBe(0x40_7ff8n);
    expect(v.get(Field.GUEST_RFLAGS)).toBe(0x246n);
    expect(v.get(Field.GUEST_CR3)).toBe(0x6000n);
    expect(v.get(Field.GUEST_DS_AR_BYTES)).toBe(0x1_0093n);
    expect(v.get(Field.GUEST_DS_BASE)).toBe(0x1000n);
    expect(v.get(Field.GUEST_LDTR_BASE)).toBe(0xffff_8000_0000_0000n);
    expect(v.get(Field.GUEST_DR7)).toBe(0x401n);
    expect(v.get(Field.GUEST_SYSENTER_CS)).toBe(8n);
    expect(v.get(Field.GUEST_INTERRUPTIBILITY_INFO)).toBe(8n);
    expect(v.get(Field.GUEST_ACTIVITY_STATE)).toBe(1n);
    expect(v.get(Field.GUEST_PENDING_DBG_EXCEPTIONS)).toBe(0x4000n);
  });

  it('updates "IA-32e mode guest" from EFER.LMA; saves EFER/PAT only with their save controls', () => {
    const { p } = entered(SKYLAKE, (v) => v.set32(Field.VM_EXIT_CONTROLS, v.lo(Field.VM_EXIT_CONTROLS) | ExitCtl.SAVE_IA32_EFER));
    const v = p.currentVmcs!;
    v.set(Field.GUEST_IA32_PAT, 0x1111n);
    const g = p.guest!;
    g.efer = 0x100n; // LME without LMA: the guest left IA-32e mode
    g.setMsr(Msr.IA32_PAT, 0x0606n);
    expectKind(p.vmExit({ reason: 10, instructionLength: 2 }, g), 'host');
    expect(v.lo(Field.VM_ENTRY_CONTROLS) & EntryCtl.IA32E_MODE_GUEST).toBe(0);
    expect(v.get(Field.GUEST_IA32_EFER)).toBe(0x100n);
    expect(v.get(Field.GUEST_IA32_PAT)).toBe(0x1111n);
  });

  it('saves the preemption timer (0 on its own expiry) and the PDPTEs with EPT under PAE paging', () => {
    const { p } = entered(SKYLAKE, (v) => {
      v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, 0x16 | Pin.ACTIVATE_VMX_PREEMPTION_TIMER);
      v.set32(Field.VM_EXIT_CONTROLS, v.lo(Field.VM_EXIT_CONTROLS) | ExitCtl.SAVE_VMX_PREEMPTION_TIMER_VALUE);
      v.set32(Field.VMX_PREEMPTION_TIMER_VALUE, 500);
      v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, Primary.ACTIVATE_SECONDARY_CONTROLS);
      v.set32(Field.SECONDARY_VM_EXEC_CONTROL, Secondary.ENABLE_EPT);
    });
    const g = p.guest!;
    expectKind(p.vmExit({ reason: 10, preemptionTimer: 123 }, g), 'host');
    expect(p.currentVmcs!.get(Field.VMX_PREEMPTION_TIMER_VALUE)).toBe(123n);
    expectKind(p.vmresume(), 'vm-entry');
    const g2 = p.guest!;
    g2.efer = 0n; // PAE paging guest now
    expectKind(p.vmExit({ reason: 52, pdptes: [1n, 2n, 3n, 4n] }, g2), 'host');
    const v = p.currentVmcs!;
    expect(v.get(Field.VMX_PREEMPTION_TIMER_VALUE)).toBe(0n);
    expect([v.get(Field.GUEST_PDPTR0), v.get(Field.GUEST_PDPTR3)]).toEqual([1n, 4n]);
  });
});

describe('VM exit: MSR store (27.4) and VMX abort 1', () => {
  it('stores guest MSR values (TSC from the counter) into the list', () => {
    const { p, mem } = entered(SKYLAKE, (v, m) => {
      v.set(Field.VM_EXIT_MSR_STORE_ADDR, MSR_AREA);
      v.set32(Field.VM_EXIT_MSR_STORE_COUNT, 2);
      msrEntry(m, MSR_AREA, 0, IA32_STAR, 0n);
      msrEntry(m, MSR_AREA, 1, Msr.IA32_TSC, 0n);
    });
    p.guest!.setMsr(IA32_STAR, 0xabcn);
    p.guest!.tsc = 0x1_0000n;
    expectKind(p.vmExit({ reason: 10 }, p.guest!), 'host');
    expect(mem.read(MSR_AREA + 8n, 8)).toBe(0xabcn);
    expect(mem.read(MSR_AREA + 24n, 8)).toBe(0x1_0000n);
  });

  it('an x2APIC-range, SMBASE or reserved-bit entry aborts with indicator 1 written at offset 4; the processor shuts down', () => {
    for (const [index, reserved] of [[0x802, 0], [Msr.IA32_SMBASE, 0], [IA32_STAR, 1]] as const) {
      const { p, mem } = entered(SKYLAKE, (v, m) => {
        v.set(Field.VM_EXIT_MSR_STORE_ADDR, MSR_AREA);
        v.set32(Field.VM_EXIT_MSR_STORE_COUNT, 1);
        msrEntry(m, MSR_AREA, 0, index, 0n, reserved);
      });
      expect(p.vmExit({ reason: 10 }, p.guest!)).toEqual({ kind: 'vmx-abort', indicator: 1 });
      expect(mem.read(VMCS_A + 4n, 4)).toBe(1n);
      expect(p.shutdown).toBe(true);
      expect(() => p.vmptrst()).toThrow(/turtles bug/);
    }
  });

  it('an RDMSR that would fault aborts with indicator 1', () => {
    const { p } = entered(SKYLAKE, (v, m) => {
      v.set(Field.VM_EXIT_MSR_STORE_ADDR, MSR_AREA);
      v.set32(Field.VM_EXIT_MSR_STORE_COUNT, 1);
      msrEntry(m, MSR_AREA, 0, 0x1234, 0n);
    }, { rdmsrFaults: (i) => i === 0x1234 });
    expect(p.vmExit({ reason: 10 }, p.guest!)).toEqual({ kind: 'vmx-abort', indicator: 1 });
  });
});

describe('VM exit: loading host state (SDM 27.5)', () => {
  it('loads control registers with the SDM exceptions', () => {
    const { p } = entered(SKYLAKE, (v) => {
      v.set(Field.HOST_CR0, 0x8000_0031n | (1n << 30n) | (1n << 16n)); // CD ignored, WP loaded
      v.set(Field.HOST_CR3, 0xff00_0000_0000_7000n); // bits beyond MAXPHYADDR (39) are cleared
      v.set(Field.HOST_CR4, 0x2000n); // PAE forced by host address-space size
    });
    p.guest!.cr0 = 0x8000_0031n | (1n << 29n); // NW set in the guest survives
    expectKind(p.vmExit({ reason: 10 }, p.guest!), 'host');
    expect(p.state.cr0).toBe(0x8000_0031n | (1n << 29n) | (1n << 16n));
    expect(p.state.cr3).toBe(0x7000n);
    expect(p.state.cr4).toBe(0x2020n);
  });

  it('loads segments: CS L from host address-space size, null selectors unusable, bases sign-extended, LDTR unusable', () => {
    const { p } = entered(SKYLAKE, (v) => {
      v.set32(Field.HOST_DS_SELECTOR, 0);
      v.set32(Field.HOST_SS_SELECTOR, 0);
      v.set(Field.HOST_FS_BASE, 0x0000_8000_0000_1000n);
      v.set(Field.HOST_GS_BASE, 0x1000n);
      v.set(Field.HOST_TR_BASE, 0x0000_9000_0000_0000n);
      v.set(Field.HOST_GDTR_BASE, 0x0000_a000_0000_0000n);
      v.set(Field.HOST_IDTR_BASE, 0x2000n);
      v.set32(Field.HOST_IA32_SYSENTER_CS, 0x10);
      v.set(Field.HOST_IA32_SYSENTER_EIP, 0x0000_8000_0000_0000n);
    });
    const g = p.guest!;
    g.gpr[0] = 0x1234n; // GPRs other than RSP are not touched by VM exits
    g.dr[7] = 0x4ffn;
    g.setMsr(Msr.IA32_DEBUGCTL, 3n);
    expectKind(p.vmExit({ reason: 10 }, g), 'host');
    const h = p.state;
    expect(h.segAr[Seg.CS]).toBe(11 | Ar.S | Ar.P | Ar.G | Ar.L);
    expect(h.segLimit[Seg.CS]).toBe(0xffff_ffff);
    expect(h.segAr[Seg.DS]! & Ar.UNUSABLE).toBe(Ar.UNUSABLE);
    expect(h.segAr[Seg.SS]! & Ar.UNUSABLE).toBe(Ar.UNUSABLE);
    expect(h.cpl).toBe(0);
    expect(h.segAr[Seg.ES]).toBe(3 | Ar.S | Ar.P | Ar.DB | Ar.G);
    expect(h.segBase[Seg.FS]).toBe(0xffff_8000_0000_1000n);
    expect(h.segBase[Seg.GS]).toBe(0x1000n);
    expect(h.segBase[Seg.TR]).toBe(0xffff_9000_0000_0000n);
    expect(h.segLimit[Seg.TR]).toBe(0x67);
    expect(h.segAr[Seg.TR]).toBe(11 | Ar.P);
    expect(h.segSel[Seg.LDTR]).toBe(0);
    expect(h.segAr[Seg.LDTR]).toBe(Ar.UNUSABLE);
    expect(h.gdtrBase).toBe(0xffff_a000_0000_0000n);
    expect([h.gdtrLimit, h.idtrLimit]).toEqual([0xffff, 0xffff]);
    expect(h.msr(Msr.IA32_SYSENTER_CS)).toBe(0x10n);
    expect(h.msr(Msr.IA32_SYSENTER_EIP)).toBe(0xffff_8000_0000_0000n);
    expect(h.dr[7]).toBe(0x400n);
    expect(h.msr(Msr.IA32_DEBUGCTL)).toBe(0n);
    expect(h.rip).toBe(0xffff_8000_0000_1000n);
    expect(h.gpr[4]).toBe(0xffff_8000_0000_8000n);
    expect(h.rflags).toBe(0x2n);
    expect(h.gpr[0]).toBe(0x1234n);
    expect(h.longMode64).toBe(true);
    expect([h.activity, h.interruptibility, h.pendingDebugExceptions]).toEqual([0, 0, 0n]);
  });

  it('EFER: loaded with "load IA32_EFER", else LMA = LME = host address-space size; PAT/PERF_GLOBAL_CTRL/BNDCFGS per controls', () => {
    const { p } = entered(SKYLAKE, (v) => {
      v.set32(Field.VM_EXIT_CONTROLS, v.lo(Field.VM_EXIT_CONTROLS) | ExitCtl.LOAD_IA32_EFER | ExitCtl.LOAD_IA32_PAT | ExitCtl.CLEAR_IA32_BNDCFGS | ExitCtl.LOAD_IA32_PERF_GLOBAL_CTRL);
      v.set(Field.HOST_IA32_EFER, 0xd01n);
      v.set(Field.HOST_IA32_PAT, 0x0007_0406_0007_0406n);
      v.set(Field.HOST_IA32_PERF_GLOBAL_CTRL, 0xfn);
    });
    p.guest!.efer = 0x500n;
    p.guest!.setMsr(Msr.IA32_BNDCFGS, 0x1001n);
    expectKind(p.vmExit({ reason: 10 }, p.guest!), 'host');
    expect(p.state.efer).toBe(0xd01n);
    expect(p.state.msr(Msr.IA32_PAT)).toBe(0x0007_0406_0007_0406n);
    expect(p.state.msr(Msr.IA32_PERF_GLOBAL_CTRL)).toBe(0xfn);
    expect(p.state.msr(Msr.IA32_BNDCFGS)).toBe(0n);
    const q = entered();
    q.p.guest!.efer = 0x401n; // SCE kept, LMA/LME forced to 1
    expectKind(q.p.vmExit({ reason: 10 }, q.p.guest!), 'host');
    expect(q.p.state.efer).toBe(0x501n);
  });

  it('NMI blocking survives the exit only without virtual NMIs', () => {
    const real = entered();
    real.p.guest!.interruptibility = 0x9;
    expectKind(real.p.vmExit({ reason: 10 }, real.p.guest!), 'host');
    expect(real.p.state.interruptibility).toBe(0x8);
    const virt = entered(SKYLAKE, (v) => v.set32(Field.PIN_BASED_VM_EXEC_CONTROL, 0x16 | Pin.NMI_EXITING | Pin.VIRTUAL_NMIS));
    virt.p.guest!.interruptibility = 0x8;
    expectKind(virt.p.vmExit({ reason: 10 }, virt.p.guest!), 'host');
    expect(virt.p.state.interruptibility).toBe(0);
  });

  it('a 32-bit host (host address-space size 0): CS.D/B set, CR4.PCIDE cleared, EFER.LMA/LME cleared', () => {
    const { p } = entered(SKYLAKE, (v) => {
      v.set32(Field.VM_EXIT_CONTROLS, v.lo(Field.VM_EXIT_CONTROLS) & ~ExitCtl.HOST_ADDRESS_SPACE_SIZE);
      v.set(Field.HOST_CR4, 0x2000n | (1n << 17n));
    });
    p.guest!.efer = 0n; // guest not in IA-32e mode, or this would be abort 6
    expectKind(p.vmExit({ reason: 10 }, p.guest!), 'host');
    expect(p.state.segAr[Seg.CS]).toBe(11 | Ar.S | Ar.P | Ar.G | Ar.DB);
    expect(p.state.cr4 & (1n << 17n)).toBe(0n);
    expect(p.state.efer & 0x500n).toBe(0n);
  });

  it('VMX abort 6: the processor was in IA-32e mode and the host address-space size is 0', () => {
    const { p, mem } = entered(SKYLAKE, (v) => v.set32(Field.VM_EXIT_CONTROLS, v.lo(Field.VM_EXIT_CONTROLS) & ~ExitCtl.HOST_ADDRESS_SPACE_SIZE));
    expect(p.vmExit({ reason: 10 }, p.guest!)).toEqual({ kind: 'vmx-abort', indicator: 6 });
    expect(mem.read(VMCS_A + 4n, 4)).toBe(6n);
  });

  it('VMX abort 2: a PAE-paging host whose PDPTEs have reserved bits set', () => {
    const { p, mem } = entered(SKYLAKE, (v, m) => {
      v.set32(Field.VM_EXIT_CONTROLS, v.lo(Field.VM_EXIT_CONTROLS) & ~ExitCtl.HOST_ADDRESS_SPACE_SIZE);
      v.set(Field.HOST_CR3, 0x7000n);
      m.write(0x7008n, 8, 0x3001n | (1n << 5n));
    });
    p.guest!.efer = 0n;
    expect(p.vmExit({ reason: 10 }, p.guest!)).toEqual({ kind: 'vmx-abort', indicator: 2 });
    expect(mem.read(VMCS_A + 4n, 4)).toBe(2n);
  });
});

describe('VM exit: host MSR load (27.6) and VMX abort 4', () => {
  it('loads the list after the host state (overriding it), failing entries abort with 4', () => {
    const ok = entered(SKYLAKE, (v, m) => {
      v.set(Field.VM_EXIT_MSR_LOAD_ADDR, MSR_AREA);
      v.set32(Field.VM_EXIT_MSR_LOAD_COUNT, 2);
      msrEntry(m, MSR_AREA, 0, IA32_STAR, 0x77n);
      msrEntry(m, MSR_AREA, 1, Msr.IA32_SYSENTER_CS, 0x33n);
    });
    expectKind(ok.p.vmExit({ reason: 10 }, ok.p.guest!), 'host');
    expect(ok.p.state.msr(IA32_STAR)).toBe(0x77n);
    expect(ok.p.state.msr(Msr.IA32_SYSENTER_CS)).toBe(0x33n);
    for (const index of [Msr.IA32_GS_BASE, 0x830, Msr.IA32_SMM_MONITOR_CTL]) {
      const bad = entered(SKYLAKE, (v, m) => {
        v.set(Field.VM_EXIT_MSR_LOAD_ADDR, MSR_AREA);
        v.set32(Field.VM_EXIT_MSR_LOAD_COUNT, 1);
        msrEntry(m, MSR_AREA, 0, index, 0n);
      });
      expect(bad.p.vmExit({ reason: 10 }, bad.p.guest!)).toEqual({ kind: 'vmx-abort', indicator: 4 });
      expect(bad.mem.read(VMCS_A + 4n, 4)).toBe(4n);
    }
  });
});
