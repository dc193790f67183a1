// One check per row of schemas/nested/reflection.json (L0-owned rows stay in L0; control rows reflect exactly when
// vmcs12 sets the controls; unconditional rows always reflect), plus the helper predicates of §6.3.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Field } from '../../../src/cpu/generated/vmcs-fields.js';
import { CONTROL_GROUPS, Primary, Secondary } from '../../../src/cpu/generated/controls.js';
import { Vmcs } from '../../../src/cpu/vmcs.js';
import { validVmcs } from '../../../src/cpu/vmentry/valid-state.js';
import { decideReflection } from '../../../src/nested/reflect/decide.js';
import { quietL0Policy, type HardwareExit, type L0ExitPolicy, type ReflectionContext } from '../../../src/nested/reflect/types.js';
import { kvmProfile, sdmProfile, type L0Profile } from '../../../src/nested/profile.js';
import { L1_MODEL, PageMemory } from '../../support/arbitraries/vmcs12.js';

const root = join(import.meta.dirname, '../../..');
const json = JSON.parse(readFileSync(join(root, 'schemas/nested/reflection.json'), 'utf8')) as {
  reasons: { reason: number; name: string; l0Wants: { rule: string; predicate: string }; l1Wants: { rule: string; predicate: string; controls?: string[] } }[];
};

const exitOf = (reason: number, more: Partial<HardwareExit> = {}): HardwareExit => ({
  reason, qualification: 0n, intrInfo: 0, intrErrorCode: 0, idtVectoringInfo: 0, idtVectoringErrorCode: 0, instructionLength: 0, instructionInfo: 0,
  guestLinearAddress: 0n, guestPhysicalAddress: 0n, ...more,
});

function ctx(opts: { gpr?: Record<number, bigint>; mem?: PageMemory; l0?: Partial<L0ExitPolicy>; profile?: L0Profile; xss?: bigint } = {}): ReflectionContext {
  const mem = opts.mem ?? new PageMemory();
  return {
    profile: opts.profile ?? sdmProfile(), l0: { ...quietL0Policy(), ...opts.l0 }, l2Gpr: (r) => opts.gpr?.[r] ?? 0n,
    l2Msr: (i) => (i === 0xda0 ? (opts.xss ?? 0n) : 0n), readL1Memory: mem.read,
  };
}

function setControl(v: Vmcs, id: string, on: boolean): void {
  const g = CONTROL_GROUPS.find((x) => x.bits.some((b) => b.id === id))!;
  const bit = g.bits.find((b) => b.id === id)!.bit;
  const field = { pin: Field.PIN_BASED_VM_EXEC_CONTROL, primary: Field.CPU_BASED_VM_EXEC_CONTROL, secondary: Field.SECONDARY_VM_EXEC_CONTROL, exit: Field.VM_EXIT_CONTROLS, entry: Field.VM_ENTRY_CONTROLS }[g.group as 'pin']!;
  v.set32(field, on ? v.lo(field) | (1 << bit) : v.lo(field) & ~(1 << bit));
  if (g.group === 'secondary' && on) v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) | Primary.ACTIVATE_SECONDARY_CONTROLS);
}

describe('reflection rows', () => {
  for (const row of json.reasons) {
    it(`${row.reason} ${row.name}: ${row.l0Wants.predicate} / ${row.l1Wants.predicate}`, () => {
      const v12 = validVmcs(L1_MODEL);
      if (row.l0Wants.predicate === 'always') {
        expect(decideReflection(exitOf(row.reason), v12, ctx())).toEqual({ reflect: false, rule: row.l0Wants.rule, handledBy: 'L0' });
        return;
      }
      const p = row.l1Wants.predicate;
      if (p === 'always' || p === 'never') {
        expect(decideReflection(exitOf(row.reason), v12, ctx())).toEqual({ reflect: p === 'always', rule: row.l1Wants.rule, handledBy: p === 'always' ? 'L1' : 'L0' });
      } else if (p === 'allControls' || p === 'anyControl') {
        const controls = row.l1Wants.controls!;
        for (const c of controls) setControl(v12, c, true);
        expect(decideReflection(exitOf(row.reason), v12, ctx())).toEqual({ reflect: true, rule: row.l1Wants.rule, handledBy: 'L1' });
        for (const c of controls) {
          setControl(v12, c, false);
          const d = decideReflection(exitOf(row.reason), v12, ctx());
          expect(d.reflect, `without ${c}`).toBe(p === 'anyControl' && controls.length > 1 && controls.some((o) => o !== c));
          setControl(v12, c, true);
        }
      } else {
        // Helper predicates: covered case by case below; the row must at least decide under its own rule id.
        expect(decideReflection(exitOf(row.reason), v12, ctx()).rule).toBe(row.l1Wants.rule);
      }
    });
  }
});

describe('exceptions (§6.3.4)', () => {
  const pf = (ec: number) => exitOf(0, { intrInfo: 0x8000_0b0e, intrErrorCode: ec });
  it('NMI, #MC, #VE stay in L0; #PF/#DB/#BP/#AC follow L0 policy first', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(Field.EXCEPTION_BITMAP, 0xffff_ffff);
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0202 }), v12, ctx()).handledBy).toBe('L0');
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0312 }), v12, ctx()).handledBy).toBe('L0');
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0314 }), v12, ctx()).handledBy).toBe('L0');
    expect(decideReflection(pf(0), v12, ctx({ l0: { needsPfIntercept: true } })).rule).toBe('l0.exception-nmi');
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0301 }), v12, ctx({ l0: { hostSingleStepOrHwBreakpoints: true } })).handledBy).toBe('L0');
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0603 }), v12, ctx({ l0: { hostSwBreakpoints: true } })).handledBy).toBe('L0');
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0b11 }), v12, ctx({ l0: { guestCannotReceiveAc: true } })).handledBy).toBe('L0');
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0306 }), v12, ctx()).reflect).toBe(true);
  });
  it('other vectors follow the vmcs12 exception bitmap', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(Field.EXCEPTION_BITMAP, 1 << 13);
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0b0d }), v12, ctx()).reflect).toBe(true);
    expect(decideReflection(exitOf(0, { intrInfo: 0x8000_0306 }), v12, ctx()).reflect).toBe(false);
  });
  it('#PF: EB[14] XOR ((ec & MASK) ≠ MATCH); kvm compares only bits 15:0 (N19)', () => {
    const v12 = validVmcs(L1_MODEL);
    v12.set32(Field.EXCEPTION_BITMAP, 1 << 14);
    v12.set32(Field.PAGE_FAULT_ERROR_CODE_MASK, 0x8000_0001);
    v12.set32(Field.PAGE_FAULT_ERROR_CODE_MATCH, 0x1);
    expect(decideReflection(pf(0x1), v12, ctx()).reflect).toBe(true);
    expect(decideReflection(pf(0x0), v12, ctx()).reflect).toBe(false);
    expect(decideReflection(pf(0x8000_0001), v12, ctx()).reflect).toBe(false);
    expect(decideReflection(pf(0x8000_0001), v12, ctx({ profile: kvmProfile() })).reflect).toBe(true);
    v12.set32(Field.EXCEPTION_BITMAP, 0);
    expect(decideReflection(pf(0x0), v12, ctx()).reflect).toBe(true);
    expect(decideReflection(pf(0x1), v12, ctx()).reflect).toBe(false);
  });
});

describe('CR access (§6.3.1)', () => {
  const v12 = (): Vmcs => {
    const v = validVmcs(L1_MODEL);
    v.set(Field.CR0_GUEST_HOST_MASK, 0x9n); // TS, PE
    v.set(Field.CR0_READ_SHADOW, 0x8n); // TS=1, PE=0
    v.set(Field.CR4_GUEST_HOST_MASK, 0x2000n);
    v.set(Field.CR4_READ_SHADOW, 0x2000n);
    return v;
  };
  const cr = (q: number) => exitOf(28, { qualification: BigInt(q) });
  it('MOV to CR0/CR4 compares the source register with the shadow under the mask', () => {
    expect(decideReflection(cr(0 | (3 << 8)), v12(), ctx({ gpr: { 3: 0x8n } })).reflect).toBe(false);
    expect(decideReflection(cr(0 | (3 << 8)), v12(), ctx({ gpr: { 3: 0x9n } })).reflect).toBe(true);
    expect(decideReflection(cr(4 | (1 << 8)), v12(), ctx({ gpr: { 1: 0x2020n } })).reflect).toBe(false);
    expect(decideReflection(cr(4 | (1 << 8)), v12(), ctx({ gpr: { 1: 0x20n } })).reflect).toBe(true);
  });
  it('CR3/CR8 loads and stores follow the controls; CLTS and LMSW the TS/PE rules', () => {
    const v = v12();
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, (v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) | Primary.CR3_LOAD_EXITING | Primary.CR8_STORE_EXITING) & ~(Primary.CR3_STORE_EXITING | Primary.CR8_LOAD_EXITING));
    expect(decideReflection(cr(3), v, ctx()).reflect).toBe(true);
    expect(decideReflection(cr(3 | 0x10), v, ctx()).reflect).toBe(false);
    expect(decideReflection(cr(8), v, ctx()).reflect).toBe(false);
    expect(decideReflection(cr(8 | 0x10), v, ctx()).reflect).toBe(true);
    expect(decideReflection(cr(0x20), v, ctx()).reflect).toBe(true); // CLTS with TS owned and shadow TS=1
    v.set(Field.CR0_READ_SHADOW, 0n);
    expect(decideReflection(cr(0x20), v, ctx()).reflect).toBe(false);
    expect(decideReflection(cr(0x30 | (0x1 << 16)), v, ctx()).reflect).toBe(true); // LMSW setting PE while PE owned, shadow PE=0
    expect(decideReflection(cr(0x30 | (0x0 << 16)), v, ctx()).reflect).toBe(false);
    expect(decideReflection(cr(0x30 | (0x8 << 16)), v, ctx()).reflect).toBe(true); // TS differs from shadow
  });
});

describe('I/O, MSR, VMREAD/VMWRITE, MTF, ENCLS, XSAVES, SEAMCALL', () => {
  it('I/O: bitmaps byte by byte, port wrap beyond 0xFFFF, unreadable bitmap reflects, no bitmaps → unconditional exiting', () => {
    const v = validVmcs(L1_MODEL);
    const mem = new PageMemory();
    const a = new Uint8Array(4096);
    a[0x80 >> 3] = 1 << (0x81 & 7);
    mem.map(v.get(Field.IO_BITMAP_A), a);
    mem.map(v.get(Field.IO_BITMAP_B), new Uint8Array(4096));
    const io = (port: number, size: number) => exitOf(30, { qualification: BigInt((size - 1) | (port << 16)) });
    expect(decideReflection(io(0x80, 1), v, ctx({ mem })).reflect).toBe(false);
    expect(decideReflection(io(0x80, 2), v, ctx({ mem })).reflect).toBe(true);
    expect(decideReflection(io(0xffff, 2), v, ctx({ mem })).reflect).toBe(true);
    expect(decideReflection(io(0x9000, 1), v, ctx({ mem })).reflect).toBe(false);
    expect(decideReflection(io(0x80, 1), v, ctx({ mem: new PageMemory() })).reflect).toBe(true);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & ~Primary.USE_IO_BITMAPS);
    expect(decideReflection(io(0x80, 1), v, ctx({ mem })).reflect).toBe(false);
  });
  it('MSR: read/write halves, high range, out-of-range and unreadable reflect, immediate forms use the qualification', () => {
    const v = validVmcs(L1_MODEL);
    const mem = new PageMemory();
    const bm = new Uint8Array(4096);
    bm[2048 + 1024 + (0x100 >> 3)] = 1; // write of 0xC0000100 (FS_BASE)
    mem.map(v.get(Field.MSR_BITMAP), bm);
    const rd = (m: number) => decideReflection(exitOf(31), v, ctx({ mem, gpr: { 1: BigInt(m) } })).reflect;
    const wr = (m: number) => decideReflection(exitOf(32), v, ctx({ mem, gpr: { 1: BigInt(m) } })).reflect;
    expect(rd(0xc000_0100)).toBe(false);
    expect(wr(0xc000_0100)).toBe(true);
    expect(rd(0x4000_0000)).toBe(true);
    expect(decideReflection(exitOf(85, { qualification: 0xc000_0100n }), v, ctx({ mem })).reflect).toBe(true);
    expect(decideReflection(exitOf(84, { qualification: 0xc000_0100n }), v, ctx({ mem })).reflect).toBe(false);
    expect(decideReflection(exitOf(31), v, ctx({ gpr: { 1: 0x10n } })).reflect).toBe(true);
  });
  it('VMREAD/VMWRITE: shadowing off reflects; otherwise the bitmap bit of the encoding (≥ 2^15 reflects)', () => {
    const v = validVmcs(L1_MODEL);
    const mem = new PageMemory();
    const rb = new Uint8Array(4096);
    rb[0x6800 >> 3] = 1; // GUEST_CR0
    mem.map(0x14000n, rb);
    mem.map(0x15000n, new Uint8Array(4096));
    v.set(Field.VMREAD_BITMAP, 0x14000n);
    v.set(Field.VMWRITE_BITMAP, 0x15000n);
    const vmx = (reason: number, enc: bigint) => decideReflection(exitOf(reason, { instructionInfo: (2 << 28) >>> 0 }), v, ctx({ mem, gpr: { 2: enc } })).reflect;
    expect(vmx(23, 0x6800n)).toBe(true);
    v.set32(Field.SECONDARY_VM_EXEC_CONTROL, v.lo(Field.SECONDARY_VM_EXEC_CONTROL) | Secondary.VMCS_SHADOWING);
    expect(vmx(23, 0x6800n)).toBe(true);
    expect(vmx(23, 0x6802n)).toBe(false);
    expect(vmx(25, 0x6800n)).toBe(false);
    expect(vmx(25, 0x1_0000n)).toBe(true);
  });
  it('MTF: the control or a pending MTF injection', () => {
    const v = validVmcs(L1_MODEL);
    expect(decideReflection(exitOf(37), v, ctx()).reflect).toBe(false);
    v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0700);
    expect(decideReflection(exitOf(37), v, ctx()).reflect).toBe(true);
    v.set32(Field.VM_ENTRY_INTR_INFO_FIELD, 0);
    v.set32(Field.CPU_BASED_VM_EXEC_CONTROL, v.lo(Field.CPU_BASED_VM_EXEC_CONTROL) | Primary.MONITOR_TRAP_FLAG);
    expect(decideReflection(exitOf(37), v, ctx()).reflect).toBe(true);
  });
  it('ENCLS: SGX exposed, control, bitmap bit min(EAX, 63)', () => {
    const v = validVmcs(L1_MODEL);
    v.set32(Field.SECONDARY_VM_EXEC_CONTROL, v.lo(Field.SECONDARY_VM_EXEC_CONTROL) | Secondary.ENABLE_ENCLS_EXITING);
    v.set(Field.ENCLS_EXITING_BITMAP, (1n << 63n) | 4n);
    const encls = (eax: bigint, sgx: boolean) => decideReflection(exitOf(60), v, ctx({ gpr: { 0: eax }, l0: { sgxExposedToL1: sgx } })).reflect;
    expect(encls(2n, true)).toBe(true);
    expect(encls(1n, true)).toBe(false);
    expect(encls(100n, true)).toBe(true);
    expect(encls(2n, false)).toBe(false);
  });
  it('XSAVES: enabled and XSS ∩ bitmap ≠ 0', () => {
    const v = validVmcs(L1_MODEL);
    v.set32(Field.SECONDARY_VM_EXEC_CONTROL, v.lo(Field.SECONDARY_VM_EXEC_CONTROL) | Secondary.ENABLE_XSAVES_XRSTORS);
    v.set(Field.XSS_EXIT_BITMAP, 0x100n);
    expect(decideReflection(exitOf(63), v, ctx({ xss: 0x100n })).reflect).toBe(true);
    expect(decideReflection(exitOf(64), v, ctx({ xss: 0x200n })).reflect).toBe(false);
  });
  it('SEAMCALL/TDCALL: unconditional on hardware, #UD in L2 under kvm (N7)', () => {
    const v = validVmcs(L1_MODEL);
    expect(decideReflection(exitOf(76), v, ctx()).reflect).toBe(true);
    expect(decideReflection(exitOf(77), v, ctx({ profile: kvmProfile() }))).toEqual({ reflect: false, rule: 'l1.tdcall', handledBy: 'L0' });
  });
  it('VMCALL: the Hyper-V TLB-flush hypercall stays in L0', () => {
    expect(decideReflection(exitOf(18), validVmcs(L1_MODEL), ctx({ l0: { hypervTlbFlushHypercall: true } })).rule).toBe('l0.vmcall');
  });
});
