// EPT12 as L1 builds and changes it: EPT-violation exits with their qualification bits, guest-physical and guest-linear
// addresses (data write to a read-only page, instruction fetch from a non-executable page, a guest paging-structure
// read from a page L1 unmapped then INVEPT), misconfigurations, the change taking effect after INVEPT, and the EPT
// accessed/dirty flags L1 finds in its tables. Expectations from SDM 27.2.1 (Table 27-7) and 28.2.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { L1_GPA } from '../../../../src/cpu/address.js';
import { decodeEptViolationQualification } from '../../../../src/cpu/ept/qualification.js';
import { Primary } from '../../../../src/cpu/generated/controls.js';
import { L1Layout } from '../../../../src/cpu/l1/config.js';
import { L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { runConfig } from '../machine/helpers.js';

const DATA = 0x9_0000n;
const STOP_AT_HLT = { reason: 12, actions: [{ kind: 'stop' as const }] };

describe('EPT violations L1 sees (SDM 28.2.3.2, 27.2.1)', () => {
  it('write to a read-only page: bits 1 (write), 3 (readable), 7 and 8; GPA and GLA of the access; fixed by L1 with INVEPT', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`mov rbx, ${DATA}; mov rax, [rbx]; mov rax, 0x1122; mov qword ptr [rbx+8], rax; hlt` },
      controls: { primary: Primary.HLT_EXITING },
      ept: { mappings: [{ l2: DATA, l1: 0x500_0000n, read: true, write: false, execute: false }] },
      policy: {
        rules: [
          { reason: 48, actions: [{ kind: 'ept-protect', l2: DATA, read: true, write: true, execute: false }, { kind: 'invept', type: 1 }] },
          STOP_AT_HLT,
        ],
      },
    });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([48, 12]);
    const v = run.exits[0]!.exit;
    expect(v.qualification).toBe((1n << 1n) | (1n << 3n) | (1n << 7n) | (1n << 8n));
    const d = decodeEptViolationQualification(v.qualification);
    expect(d.ok).toBe(true);
    expect(v.guestPhysicalAddress).toBe(DATA + 8n);
    expect(v.guestLinearAddress).toBe(DATA + 8n);
    // Fault-like: RIP at the faulting store; after the fix it completes and writes L1 memory where EPT12 maps it.
    expect(run.exits[0]!.rip).toBe(run.exits[1]!.rip - 4n);
    expect(run.machine.memory.readU64(L1_GPA.of(0x500_0008n))).toBe(0x1122n);
    // The INVEPT L1 issued named its EPTP and succeeded.
    const invept = run.log.find((o) => o.kind === 'vmx-instruction' && o.instruction === 'invept');
    expect(invept).toMatchObject({ outcome: 'vmsucceed', operands: [1n, L1Layout.EPT_TABLES | 0x1en] });
  });

  it('fetch from a page mapped without execute: bits 2 (fetch), 3, 4 (readable, writable), 7, 8; GLA = GPA = RIP', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`nop; hlt` },
      controls: { primary: Primary.HLT_EXITING },
      ept: { mappings: [{ l2: L2Layout.CODE, l1: L1Layout.L2_BASE + L2Layout.CODE, read: true, write: true, execute: false }] },
      policy: { rules: [{ reason: 48, actions: [{ kind: 'stop' }] }] },
    });
    expect(run.exits).toHaveLength(1);
    const v = run.exits[0]!.exit;
    expect(v.exitReason).toBe(48);
    expect(v.qualification).toBe((1n << 2n) | (1n << 3n) | (1n << 4n) | (1n << 7n) | (1n << 8n));
    expect(v.guestPhysicalAddress).toBe(L2Layout.CODE);
    expect(v.guestLinearAddress).toBe(L2Layout.CODE);
    expect(run.exits[0]!.rip).toBe(L2Layout.CODE);
  });

  it('L1 unmaps the page holding L2 paging structures and INVEPTs: the next walk faults on the paging-structure read (bit 8 = 0, no rights)', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`vmcall; nop; hlt` },
      controls: { primary: Primary.HLT_EXITING },
      ept: {},
      policy: {
        rules: [
          // The page directory of L2's identity map (CR3 = 0x200000: PML4, PDPT at +0x1000, PD at +0x2000).
          { reason: 18, actions: [{ kind: 'ept-unmap', l2: 0x20_2000n }, { kind: 'invept', type: 2 }, { kind: 'skip' }] },
          STOP_AT_HLT,
        ],
      },
    });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([18, 48, 12]);
    const v = run.exits[1]!.exit;
    // A data read of a paging-structure entry (bit 0) with the linear address valid (bit 7) but not the final access.
    expect(v.qualification).toBe(1n | (1n << 7n));
    expect(v.guestPhysicalAddress).toBe(0x20_2000n);
    expect(v.guestLinearAddress).toBe(L2Layout.CODE + 3n);
    // The default handling maps the page back (and re-injects nothing): L2 continues to its HLT.
    expect(run.exits[2]!.rip).toBe(L2Layout.CODE + 4n);
  });

  it('a write-only EPT12 entry is a misconfiguration (exit 49 with the GPA), not a violation', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`mov rbx, ${DATA}; mov rax, [rbx]; hlt` },
      controls: { primary: Primary.HLT_EXITING },
      ept: { mappings: [{ l2: DATA, l1: 0x500_0000n, read: false, write: true, execute: false }] },
    });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([49]);
    expect(run.exits[0]!.exit.guestPhysicalAddress).toBe(DATA);
  });

  it('with EPT accessed/dirty flags, L1 finds A set on every walked entry and D on the leaf L2 wrote', () => {
    const run = runConfig({
      l2: { mode: 'long64', code: asm64`mov rbx, ${DATA}; mov rax, [rbx+0x1000]; mov qword ptr [rbx], rax; hlt` },
      controls: { primary: Primary.HLT_EXITING },
      ept: { accessedDirty: true },
      policy: { rules: [STOP_AT_HLT] },
    });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    const eptp = run.log.find((o) => o.kind === 'vmx-instruction' && o.instruction === 'vmwrite' && o.operands[0] === 0x201an);
    expect(eptp).toMatchObject({ operands: [0x201an, L1Layout.EPT_TABLES | 0x5en] });
    // Walk EPT12 in L1 memory for the two data pages.
    const mem = run.machine.memory;
    const leaf = (gpa: bigint) => {
      let table: bigint = L1Layout.EPT_TABLES;
      let e = 0n;
      for (let level = 4; level >= 1; level--) {
        e = mem.readU64(L1_GPA.of(table + ((gpa >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n));
        expect((e >> 8n) & 1n, `A at level ${level}`).toBe(1n);
        table = e & 0xf_ffff_ffff_f000n;
      }
      return e;
    };
    expect((leaf(DATA) >> 9n) & 1n).toBe(1n);
    expect((leaf(DATA + 0x1000n) >> 9n) & 1n).toBe(0n);
  });
});
