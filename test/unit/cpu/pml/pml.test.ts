// Page-modification logging on the reference machine: which guest-physical pages are logged (EPT leaf dirty flags
// going 0 → 1, guest paging-structure pages included because EPT A/D makes those accesses writes), in which order and
// at which index, and the page-modification log-full exit (reason 62) when a flag must be set with the index outside
// 0–511 — also for an accessed flag alone. Expectations from SDM Vol. 3C 29.3.6 and 29.3.5.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { L1_GPA } from '../../../../src/cpu/address.js';
import { Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { L1Layout, type L1Policy } from '../../../../src/cpu/l1/config.js';
import { L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { runConfig, SKYLAKE } from '../machine/helpers.js';
import { PML_PAGE, pmlConfig, STOP_AT_HLT } from '../../../support/pml-config.js';

/** L1 empties the log's room (index FFFFh) at L2's VMCALL and stops at the log-full exit or at HLT. */
const EMPTY_LOG_AT_VMCALL: L1Policy = {
  rules: [
    { reason: 18, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_PML_INDEX, value: 0xffffn }, { kind: 'skip' }] },
    { reason: 62, actions: [{ kind: 'stop' }] },
    STOP_AT_HLT,
  ],
};

const DATA = L2Layout.DATA;
/** Guest paging structures of the 'long64' environment: PML4, PDPT, PD (2-MiB pages). */
const PML4 = 0x20_0000n;
const PDPT = 0x20_1000n;
const PD = 0x20_2000n;


function logEntry(run: ReturnType<typeof runConfig>, index: number): bigint {
  return run.machine.memory.readU64(L1_GPA.of(PML_PAGE + BigInt(index) * 8n));
}

/** The EPT12 leaf L1 built for an L2-physical page (4-level, 4-KiB leaves). */
function eptLeaf(run: ReturnType<typeof runConfig>, gpa: bigint): bigint {
  let table: bigint = L1Layout.EPT_TABLES;
  let e = 0n;
  for (let level = 4; level >= 1; level--) {
    e = run.machine.memory.readU64(L1_GPA.of(table + ((gpa >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n));
    table = e & 0xf_ffff_ffff_f000n;
  }
  return e;
}

describe('page-modification logging (SDM 29.3.6)', () => {
  it('logs each page whose EPT dirty flag goes 0 → 1, 4-KiB aligned, from index 511 down, paging structures first', () => {
    const run = runConfig(pmlConfig(asm64`mov rbx, ${DATA}; mov qword ptr [rbx+0x10], rax; mov qword ptr [rbx+0x1008], rax; mov qword ptr [rbx+0x18], rax; hlt`, 511n), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    // The first fetch walks PML4 → PDPT → PD: with EPT A/D those reads are EPT writes that dirty each page. The code
    // page is only read (no entry); the two data pages are logged in store order, the repeated store logs nothing.
    expect([511, 510, 509, 508, 507].map((i) => logEntry(run, i))).toEqual([PML4, PDPT, PD, DATA, DATA + 0x1000n]);
    expect(logEntry(run, 506)).toBe(0n);
    expect(run.exits[0]!.guest.get(Field.GUEST_PML_INDEX)).toBe(506n);
    expect((eptLeaf(run, DATA) >> 9n) & 1n).toBe(1n);
    expect((eptLeaf(run, L2Layout.CODE) >> 9n) & 1n).toBe(0n);
  });

  it('an accessed flag that needs setting with the index at FFFFh is a log-full exit: reason 62, qualification 0, RIP at the instruction', () => {
    // Index 2 logs the three paging-structure pages (2, 1, 0) and wraps to FFFFh; the code page's accessed flag is
    // next, so the very first instruction fetch exits with RIP at it. L1 resets the index and resumes.
    const run = runConfig(pmlConfig(asm64`mov rbx, ${DATA}; mov qword ptr [rbx], rax; hlt`, 2n, {
      policy: { rules: [{ reason: 62, actions: [{ kind: 'vmwrite', encoding: Field.GUEST_PML_INDEX, value: 511n }] }, STOP_AT_HLT] },
    }), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([62, 12]);
    const full = run.exits[0]!;
    expect(full.exit.qualification).toBe(0n);
    expect(full.rip).toBe(L2Layout.CODE);
    expect(full.exit.instructionLength).toBe(0);
    expect(full.guest.get(Field.GUEST_PML_INDEX)).toBe(0xffffn);
    expect([2, 1, 0].map((i) => logEntry(run, i))).toEqual([PML4, PDPT, PD]);
    // After the reset: the data page at 511, nothing else.
    expect(logEntry(run, 511)).toBe(DATA);
    expect(run.exits[1]!.guest.get(Field.GUEST_PML_INDEX)).toBe(510n);
  });

  it('a store whose page is not yet dirty with the index at FFFFh exits 62 before writing memory or the dirty flag', () => {
    const l1Data = DATA + L1Layout.L2_BASE;
    const run = runConfig(pmlConfig(asm64`mov rbx, ${DATA}; mov rax, [rbx]; mov eax, 0x55; mov qword ptr [rbx], rax; hlt`, 4n, {
      policy: { rules: [{ reason: 62, actions: [{ kind: 'stop' }] }, STOP_AT_HLT] },
    }), { cpu: SKYLAKE });
    // Index 4: the paging structures take 4, 3, 2; the read of DATA sets only A; the store's dirty flag takes 1.
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect([4, 3, 2, 1].map((i) => logEntry(run, i))).toEqual([PML4, PDPT, PD, DATA]);
    expect(run.exits[0]!.guest.get(Field.GUEST_PML_INDEX)).toBe(0n);
    expect(run.machine.memory.readU64(L1_GPA.of(l1Data))).toBe(0x55n);

    // L1 empties the log room at a VMCALL after the read; the store then needs the dirty flag and exits 62.
    const full = runConfig(pmlConfig(asm64`mov rbx, ${DATA}; mov rax, [rbx]; vmcall; mov eax, 0x55; mov qword ptr [rbx], rax; hlt`, 511n, {
      policy: EMPTY_LOG_AT_VMCALL,
    }), { cpu: SKYLAKE });
    expect(full.exits.map((e) => e.exit.exitReason)).toEqual([18, 62]);
    // mov rbx, imm32 (sign-extended, 7 bytes), mov rax, [rbx] (3), vmcall (3), mov eax, imm32 (5): the store is at +18.
    expect(full.exits[1]!.rip).toBe(L2Layout.CODE + 18n);
    expect(full.exits[1]!.exit.qualification).toBe(0n);
    expect(full.exits[1]!.guest.get(Field.GUEST_PML_INDEX)).toBe(0xffffn);
    expect(full.machine.memory.readU64(L1_GPA.of(l1Data))).toBe(0n);
    expect((eptLeaf(full, DATA) >> 8n) & 3n).toBe(1n); // A from the read, no D
  });

  it('without EPT A/D (EPTP[6] = 0) no flag is ever set, so nothing is logged and the log never fills', () => {
    const run = runConfig(pmlConfig(asm64`mov rbx, ${DATA}; mov qword ptr [rbx], rax; hlt`, 0xffffn, { ept: {} }), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(run.exits[0]!.guest.get(Field.GUEST_PML_INDEX)).toBe(0xffffn);
  });

  it('a log-full event during an IRET that unblocked NMIs sets qualification bit 12 (SDM 27.2.1)', () => {
    // The IRET frame sits on a page nothing has touched: popping it needs that page's EPT accessed flag. L1 empties the
    // log at the VMCALL first, so the IRET (after vmcall, 3 bytes, and mov rsp, imm32, 7) is what exits.
    const frame = DATA + 0x2000n;
    const hltAt = L2Layout.CODE + 12n;
    const frameBytes = new Uint8Array(40);
    const view = new DataView(frameBytes.buffer);
    [hltAt, 0x08n, 0x2n, L2Layout.STACK_TOP, 0x10n].forEach((v, i) => view.setBigUint64(i * 8, v, true));
    const iret = (interruptibility: bigint) => runConfig(pmlConfig(asm64`vmcall; mov rsp, ${frame}; iretq; hlt`, 511n, {
      l2: { mode: 'long64', code: asm64`vmcall; mov rsp, ${frame}; iretq; hlt`, data: [{ gpa: frame, bytes: frameBytes }] },
      vmcsWrites: [
        [Field.SECONDARY_VM_EXEC_CONTROL, BigInt(Secondary.ENABLE_EPT | Secondary.ENABLE_PML)],
        [Field.PML_ADDRESS, PML_PAGE],
        [Field.GUEST_PML_INDEX, 511n],
        [Field.GUEST_INTERRUPTIBILITY_INFO, interruptibility],
      ],
      policy: EMPTY_LOG_AT_VMCALL,
    }), { cpu: SKYLAKE });
    const blocked = iret(8n);
    expect(blocked.exits.map((e) => e.exit.exitReason)).toEqual([18, 62]);
    expect(blocked.exits[1]!.rip).toBe(L2Layout.CODE + 10n);
    expect(blocked.exits[1]!.exit.qualification).toBe(1n << 12n);
    const open = iret(0n);
    expect(open.exits.map((e) => e.exit.exitReason)).toEqual([18, 62]);
    expect(open.exits[1]!.exit.qualification).toBe(0n);
  });
});
