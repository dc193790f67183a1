// APIC virtualization on the reference machine under the built-in L1: APIC-access exits (44) with their
// qualification, virtualized reads and writes against the virtual-APIC page, TPR-below-threshold (43), APIC-write
// (56) and EOI-induced (45) trap-like exits, virtual-interrupt delivery, self-IPIs, x2APIC MSR virtualization and
// posted-interrupt processing. Expectations from SDM Vol. 3C 29.1–29.6, 27.2.1 (table 27-6), 27.2.5, not the code.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { L1_GPA } from '../../../../src/cpu/address.js';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { ExitCtl, Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { handlerAddress, L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { L1Layout, type L1Config } from '../../../../src/cpu/l1/config.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { runConfig, show, type Run, type RunOptions } from '../machine/helpers.js';

/** L2-physical (= linear, identity-mapped) page L2 uses as its xAPIC page. */
const APIC = 0xa_0000n;
const VAPIC = L1Layout.VIRTUAL_APIC;
const PI_DESC = 0x0100_e000n;
const STOP_AT_HLT = { reason: 12, actions: [{ kind: 'stop' as const }] };
const HLT_EXIT = 12;

/** The model that offers every APIC-virtualization control (kvm-l1 lacks APIC-register virtualization, VID and
 * posted interrupts). */
const XEON = findCpuModel('intel-xeon-platinum-8160')!;

interface Setup {
  readonly code: Uint8Array;
  readonly ept?: boolean;
  readonly primary?: number;
  readonly secondary?: number;
  readonly pin?: number;
  readonly exit?: number;
  readonly rflags?: bigint;
  readonly tprThreshold?: number;
  /** Dwords preset on the virtual-APIC page, by offset. */
  readonly vapic?: readonly (readonly [offset: number, value: number])[];
  readonly writes?: readonly (readonly [encoding: number, value: bigint])[];
  readonly l1Data?: L1Config['l1Data'];
  readonly msrBitmap?: L1Config['msrBitmap'];
}

function dwords(entries: readonly (readonly [number, number])[]): Uint8Array {
  const page = new Uint8Array(4096);
  const dv = new DataView(page.buffer);
  for (const [o, v] of entries) dv.setUint32(o, v >>> 0, true);
  return page;
}

function run(s: Setup, opts: RunOptions = {}): Run {
  const apicAccess = s.ept ? L1Layout.L2_BASE + APIC : APIC;
  const config: L1Config = {
    l2: { mode: 'long64', code: s.code, gprs: [[3, APIC]], ...(s.rflags !== undefined ? { rflags: s.rflags } : {}) },
    ...(s.ept ? { ept: {} } : {}),
    controls: {
      primary: Primary.HLT_EXITING | (s.primary ?? Primary.USE_TPR_SHADOW),
      secondary: s.secondary ?? Secondary.VIRTUALIZE_APIC_ACCESSES,
      ...(s.pin !== undefined ? { pin: s.pin } : {}),
      ...(s.exit !== undefined ? { exit: s.exit } : {}),
    },
    ...(s.tprThreshold !== undefined ? { tprThreshold: s.tprThreshold } : {}),
    ...(s.msrBitmap ? { msrBitmap: s.msrBitmap } : {}),
    l1Data: [{ gpa: VAPIC, bytes: dwords(s.vapic ?? []) }, ...(s.l1Data ?? [])],
    vmcsWrites: [[Field.APIC_ACCESS_ADDR, apicAccess], ...(s.writes ?? [])],
    policy: { rules: [STOP_AT_HLT] },
    maxExits: 1,
  };
  return runConfig(config, { cpu: XEON, ...opts });
}

function firstExit(r: Run) {
  expect(r.exits.length, show(r.result)).toBeGreaterThan(0);
  return r.exits[0]!;
}

function l1Dword(r: Run, addr: bigint): number {
  return r.machine.memory.readU32(L1_GPA.of(addr));
}

function l2State(r: Run): Extract<Observation, { kind: 'l2-state' }> {
  const s = r.log.find((o): o is Extract<Observation, { kind: 'l2-state' }> => o.kind === 'l2-state');
  expect(s).toBeDefined();
  return s!;
}

/** RIP after the instructions `text` (they start at L2Layout.CODE). */
const at = (text: string) => L2Layout.CODE + BigInt(asm64`${text}`.length);
const VID = Secondary.VIRTUAL_INTERRUPT_DELIVERY;
const VID_PIN = Pin.EXTERNAL_INTERRUPT_EXITING;

describe('APIC-access VM exits (SDM 29.4, table 27-6)', () => {
  it.each([false, true])('a read the controls do not virtualize exits with offset and type 0, fault-like, no instruction length (EPT %s)', (ept) => {
    const pre = 'nop';
    const r = run({ code: asm64`nop; mov eax, [rbx + 0x30]; hlt`, ept, primary: 0 });
    const e = firstExit(r);
    expect(e.exit.exitReason).toBe(44);
    expect(e.exit.qualification).toBe(0x030n);
    expect(e.exit.instructionLength).toBe(0);
    expect(e.exit.idtVectoringInfo >>> 31).toBe(0);
    expect(e.rip).toBe(at(pre));
  });

  it('a write that is not virtualized exits with type 1 (data write)', () => {
    const r = run({ code: asm64`mov dword [rbx + 0x380], eax; hlt` });
    const e = firstExit(r);
    expect([e.exit.exitReason, e.exit.qualification]).toEqual([44, 0x1380n]);
    expect(e.rip).toBe(L2Layout.CODE);
  });

  it('an instruction fetch from the APIC-access page exits with type 2 and the fetch offset', () => {
    const r = run({ code: asm64`lea rax, [rbx + 0x123]; jmp rax` });
    const e = firstExit(r);
    expect([e.exit.exitReason, e.exit.qualification]).toEqual([44, 0x2123n]);
    expect(e.rip).toBe(APIC + 0x123n);
  });

  it('a stack push during INT n delivery exits with type 3, IDT-vectoring information and the INT length', () => {
    const r = run({ code: asm64`lea rsp, [rbx + 0x100]; int 0x80; hlt` });
    const e = firstExit(r);
    expect(e.exit.exitReason).toBe(44);
    // The first push of the 64-bit frame is SS at RSP - 8 (RSP aligned to 16).
    expect(e.exit.qualification).toBe(0x30f8n);
    expect(e.exit.idtVectoringInfo).toBe((0x8000_0000 | (4 << 8) | 0x80) >>> 0);
    expect(e.exit.instructionLength).toBe(2);
  });

  it('8-byte reads and reads straddling a 16-byte slot exit even for the TPR', () => {
    const wide = firstExit(run({ code: asm64`mov rax, [rbx + 0x80]; hlt` }));
    expect([wide.exit.exitReason, wide.exit.qualification]).toEqual([44, 0x080n]);
    const straddle = firstExit(run({ code: asm64`mov eax, [rbx + 0x82]; hlt` }));
    expect([straddle.exit.exitReason, straddle.exit.qualification]).toEqual([44, 0x082n]);
  });
});

describe('virtualized reads (SDM 29.4.2)', () => {
  it('with a TPR shadow, a VTPR read returns the virtual-APIC page and does not exit', () => {
    const r = run({ code: asm64`mov eax, [rbx + 0x80]; hlt`, vapic: [[0x80, 0x5a]] });
    const e = firstExit(r);
    expect(e.exit.exitReason).toBe(HLT_EXIT);
    expect(l2State(r).detail.get('rax')).toBe(0x5an);
  });

  it('APIC-register virtualization reads other registers (APIC ID, IRR) from the page; PPR still exits', () => {
    const ok = run({ code: asm64`mov eax, [rbx + 0x20]; mov ecx, [rbx + 0x210]; hlt`, secondary: Secondary.VIRTUALIZE_APIC_ACCESSES | Secondary.APIC_REGISTER_VIRTUALIZATION, vapic: [[0x20, 0x0300_0000], [0x210, 0x8000_0001]] });
    expect(firstExit(ok).exit.exitReason).toBe(HLT_EXIT);
    expect(l2State(ok).detail.get('rax')).toBe(0x0300_0000n);
    expect(l2State(ok).detail.get('rcx')).toBe(0x8000_0001n);
    const ppr = run({ code: asm64`mov eax, [rbx + 0xa0]; hlt`, secondary: Secondary.VIRTUALIZE_APIC_ACCESSES | Secondary.APIC_REGISTER_VIRTUALIZATION });
    expect([firstExit(ppr).exit.exitReason, firstExit(ppr).exit.qualification]).toEqual([44, 0x0a0n]);
  });
});

describe('virtualized writes and APIC-write emulation (SDM 29.4.3, 29.1.2)', () => {
  it('a VTPR write below the TPR threshold: the write lands on the virtual-APIC page, then a trap-like exit 43', () => {
    const code = 'mov dword [rbx + 0x80], 0x12345630';
    const r = run({ code: asm64`${code}; hlt`, tprThreshold: 5, vapic: [[0x80, 0x60]] });
    const e = firstExit(r);
    expect([e.exit.exitReason, e.exit.qualification]).toEqual([43, 0n]);
    expect(e.rip).toBe(at(code));
    // APIC-write emulation clears bytes 3:1 of VTPR.
    expect(l1Dword(r, VAPIC + 0x80n)).toBe(0x30);
  });

  it('the TPR-threshold exit also follows VM entry when "virtualize APIC accesses" allows threshold > VTPR', () => {
    const r = run({ code: asm64`nop; hlt`, tprThreshold: 5, vapic: [[0x80, 0x20]] });
    const e = firstExit(r);
    expect(e.exit.exitReason).toBe(43);
    expect(e.rip).toBe(L2Layout.CODE);
  });

  it('APIC-register virtualization: a TMICT write is stored, then an APIC-write exit with the page offset (trap-like)', () => {
    const code = 'mov dword [rbx + 0x380], 0x1000';
    const r = run({ code: asm64`${code}; hlt`, secondary: Secondary.VIRTUALIZE_APIC_ACCESSES | Secondary.APIC_REGISTER_VIRTUALIZATION });
    const e = firstExit(r);
    expect([e.exit.exitReason, e.exit.qualification]).toEqual([56, 0x380n]);
    expect(e.rip).toBe(at(code));
    expect(l1Dword(r, VAPIC + 0x380n)).toBe(0x1000);
  });

  it('an ICR-high write is virtualized without an exit (bytes 2:0 cleared)', () => {
    const r = run({ code: asm64`mov dword [rbx + 0x310], 0xff123456; hlt`, secondary: Secondary.VIRTUALIZE_APIC_ACCESSES | Secondary.APIC_REGISTER_VIRTUALIZATION });
    expect(firstExit(r).exit.exitReason).toBe(HLT_EXIT);
    expect(l1Dword(r, VAPIC + 0x310n)).toBe(0xff00_0000);
  });
});

describe('EOI virtualization and virtual-interrupt delivery (SDM 29.1.4, 29.2)', () => {
  const vid = { secondary: Secondary.VIRTUALIZE_APIC_ACCESSES | VID, pin: VID_PIN };
  // SVI = 31H with VISR[31H] set (offset 110H bit 17).
  const inService = { writes: [[Field.GUEST_INTR_STATUS, 0x3100n]] as [number, bigint][], vapic: [[0x110, 1 << 17]] as [number, number][] };

  it('an EOI write with the EOI-exit bit set: VISR cleared, SVI 0, then EOI-induced exit 45 with the vector', () => {
    const code = 'mov dword [rbx + 0xb0], 0';
    const r = run({ code: asm64`${code}; hlt`, ...vid, ...inService, writes: [...inService.writes, [Field.EOI_EXIT_BITMAP0, 1n << 0x31n]] });
    const e = firstExit(r);
    expect([e.exit.exitReason, e.exit.qualification]).toEqual([45, 0x31n]);
    expect(e.rip).toBe(at(code));
    expect(e.guest.get(Field.GUEST_INTR_STATUS)).toBe(0n);
    expect(l1Dword(r, VAPIC + 0x110n)).toBe(0);
  });

  it('an EOI write without the EOI-exit bit completes without exit and re-virtualizes the PPR', () => {
    const r = run({ code: asm64`mov dword [rbx + 0xb0], 0; hlt`, ...vid, writes: [[Field.GUEST_INTR_STATUS, 0x3100n]], vapic: [[0x110, 1 << 17], [0x80, 0x10]] });
    expect(firstExit(r).exit.exitReason).toBe(HLT_EXIT);
    expect(l1Dword(r, VAPIC + 0xa0n)).toBe(0x10);
  });

  it('a pending virtual interrupt (RVI 41H > VPPR) is delivered through the IDT when IF = 1: VISR/SVI set, VIRR/RVI cleared', () => {
    const r = run({ code: asm64`nop; hlt`, ...vid, rflags: 0x200n, writes: [[Field.GUEST_INTR_STATUS, 0x41n]], vapic: [[0x220, 1 << 1]] });
    const e = firstExit(r);
    expect(e.exit.exitReason).toBe(HLT_EXIT);
    expect(e.rip).toBe(handlerAddress(0x41));
    expect(l2State(r).deliveredEvents).toEqual(['41/0']);
    expect(e.guest.get(Field.GUEST_INTR_STATUS)).toBe(0x4100n);
    expect(l1Dword(r, VAPIC + 0x220n)).toBe(0);
    expect(l1Dword(r, VAPIC + 0x120n)).toBe(1 << 1);
    expect(l1Dword(r, VAPIC + 0xa0n)).toBe(0x40);
  });

  it('no delivery while VTPR masks the vector (RVI[7:4] ≤ VPPR[7:4]) or while IF = 0', () => {
    const masked = run({ code: asm64`nop; hlt`, ...vid, rflags: 0x200n, writes: [[Field.GUEST_INTR_STATUS, 0x41n]], vapic: [[0x220, 1 << 1], [0x80, 0x40]] });
    expect(firstExit(masked).rip).toBe(L2Layout.CODE + 1n);
    const cli = run({ code: asm64`nop; hlt`, ...vid, writes: [[Field.GUEST_INTR_STATUS, 0x41n]], vapic: [[0x220, 1 << 1]] });
    expect(firstExit(cli).rip).toBe(L2Layout.CODE + 1n);
  });

  it('lowering the VTPR with MOV CR8 unmasks the interrupt (TPR virtualization evaluates instead of exiting)', () => {
    const code = 'xor eax, eax; mov cr8, rax';
    const r = run({ code: asm64`${code}; hlt`, ...vid, rflags: 0x200n, tprThreshold: 0xf, writes: [[Field.GUEST_INTR_STATUS, 0x41n]], vapic: [[0x220, 1 << 1], [0x80, 0x40]] });
    const e = firstExit(r);
    expect(e.exit.exitReason).toBe(HLT_EXIT);
    expect(e.rip).toBe(handlerAddress(0x41));
  });

  it('a self-IPI through ICR low is virtualized (VIRR, RVI) and delivered; another ICR value gives an APIC-write exit', () => {
    const self = run({ code: asm64`mov dword [rbx + 0x300], 0x40051; hlt`, ...vid, rflags: 0x200n });
    expect(firstExit(self).rip).toBe(handlerAddress(0x51));
    expect(firstExit(self).guest.get(Field.GUEST_INTR_STATUS)).toBe(0x5100n);
    const code = 'mov dword [rbx + 0x300], 0x4051';
    const other = run({ code: asm64`${code}; hlt`, ...vid, rflags: 0x200n });
    expect([firstExit(other).exit.exitReason, firstExit(other).exit.qualification]).toEqual([56, 0x300n]);
    expect(firstExit(other).rip).toBe(at(code));
  });
});

describe('x2APIC MSR virtualization (SDM 29.5)', () => {
  const x2 = { secondary: Secondary.VIRTUALIZE_X2APIC_MODE, msrBitmap: { read: [0x10] } };

  it('WRMSR 808H writes VTPR, then a TPR-below-threshold exit after the instruction; RDMSR 808H reads it back', () => {
    const code = 'mov ecx, 0x808; mov eax, 0x20; xor edx, edx; wrmsr';
    const r = run({ code: asm64`${code}; hlt`, ...x2, tprThreshold: 3, vapic: [[0x80, 0x30]] });
    const e = firstExit(r);
    expect([e.exit.exitReason, e.exit.qualification]).toEqual([43, 0n]);
    expect(e.rip).toBe(at(code));
    expect(l1Dword(r, VAPIC + 0x80n)).toBe(0x20);
    const rd = run({ code: asm64`mov ecx, 0x808; rdmsr; hlt`, ...x2, vapic: [[0x80, 0x70], [0x84, 0x0]] });
    expect(l2State(rd).detail.get('rax')).toBe(0x70n);
  });

  it('WRMSR 808H with bits 63:8 set raises #GP(0) in L2', () => {
    const r = run({ code: asm64`mov ecx, 0x808; mov eax, 0x120; xor edx, edx; wrmsr; hlt`, ...x2 });
    expect(firstExit(r).rip).toBe(handlerAddress(13));
  });

  it('WRMSR 80BH (EOI) with virtual-interrupt delivery: EOI virtualization and the EOI-induced exit', () => {
    const code = 'mov ecx, 0x80b; xor eax, eax; xor edx, edx; wrmsr';
    const r = run({
      code: asm64`${code}; hlt`, secondary: Secondary.VIRTUALIZE_X2APIC_MODE | VID, pin: VID_PIN, msrBitmap: { read: [0x10] },
      writes: [[Field.GUEST_INTR_STATUS, 0x3100n], [Field.EOI_EXIT_BITMAP0, 1n << 0x31n]], vapic: [[0x110, 1 << 17]],
    });
    const e = firstExit(r);
    expect([e.exit.exitReason, e.exit.qualification]).toEqual([45, 0x31n]);
    expect(e.rip).toBe(at(code));
  });
});

describe('posted-interrupt processing (SDM 29.6)', () => {
  const desc = () => {
    const b = new Uint8Array(64);
    const dv = new DataView(b.buffer);
    dv.setUint32(0x61 >> 3 & ~3, 1 << (0x61 & 31), true); // PIR[61H]
    dv.setUint32(32, 1, true); // ON
    return b;
  };
  const posted = (vector: number) => run({
    code: asm64`nop; nop; nop; hlt`, rflags: 0x200n,
    secondary: Secondary.VIRTUALIZE_APIC_ACCESSES | VID, pin: VID_PIN | Pin.PROCESS_POSTED_INTERRUPTS, exit: ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT,
    writes: [[Field.POSTED_INTR_NV, 0xf2n], [Field.POSTED_INTR_DESC_ADDR, PI_DESC]],
    l1Data: [{ gpa: PI_DESC, bytes: desc() }],
  }, { schedule: [{ at: 1, kind: 'interrupt', vector }] });

  it('the notification vector is not an exit: PIR moves to VIRR, ON clears, the virtual interrupt is delivered', () => {
    const r = posted(0xf2);
    const e = firstExit(r);
    expect(e.exit.exitReason).toBe(HLT_EXIT);
    expect(e.rip).toBe(handlerAddress(0x61));
    expect(l1Dword(r, PI_DESC + 32n) & 1).toBe(0);
    expect(l1Dword(r, PI_DESC + 12n)).toBe(0);
    expect(e.guest.get(Field.GUEST_INTR_STATUS)).toBe(0x6100n);
  });

  it('another vector is an ordinary external-interrupt exit', () => {
    const r = posted(0x30);
    const e = firstExit(r);
    expect(e.exit.exitReason).toBe(1);
    expect(e.exit.interruptionInfo).toBe(0x8000_0030);
    expect(l1Dword(r, PI_DESC + 32n) & 1).toBe(1);
  });
});
