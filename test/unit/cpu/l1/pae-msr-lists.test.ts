// The built-in L1 running L2 with 32-bit and PAE paging (with and without EPT: PDPTEs from GUEST_PDPTRn or from
// memory, SDM 26.3.1.6 / 26.3.2.4), and its VM-entry MSR-load, VM-exit MSR-store and VM-exit MSR-load lists (SDM
// 24.7.2, 24.8.2, 26.4, 27.4, 27.6): exact exit information on the reference machine, entry failures with their
// check ids, and the same configurations through checkProgram (reference vs nested machine, sdm profile).
import { describe, expect, it } from 'vitest';
import { asm32, asm64 } from '../../../../src/asm/index.js';
import { L1_GPA, L2_GPA, guestLinear } from '../../../../src/cpu/address.js';
import { CpuModel } from '../../../../src/cpu/cpu-model.js';
import { EntryCtl, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { buildL2Environment, L2Layout, type L2Mode } from '../../../../src/cpu/interp/l2-env.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import { L1Layout, type L1Config } from '../../../../src/cpu/l1/config.js';
import type { L1Program } from '../../../../src/cpu/l1/machine.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { GuestPageTableBuilder } from '../../../../src/cpu/paging/builder.js';
import { Cr0, Cr4, CpuState, Msr } from '../../../../src/cpu/state.js';
import { checkProgram } from '../../../../src/checker/run.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { KVM_L1, runConfig, runProgram, show } from '../machine/helpers.js';

const STOP_AT_HLT = { reason: 12, actions: [{ kind: 'stop' as const }] };
const STOP_AT_EXCEPTION = { reason: 0, actions: [{ kind: 'stop' as const }] };
const PF_INFO = 0x8000_0b0e; // valid, hardware exception, error code delivered, vector 14
const PAGED_MODES = ['paged32', 'pae32'] as const;

function written(log: readonly Observation[], field: number): bigint | undefined {
  const o = log.find((x) => x.kind === 'vmx-instruction' && x.instruction === 'vmwrite' && x.operands[0] === BigInt(field));
  return o && o.kind === 'vmx-instruction' ? o.operands[1] : undefined;
}

function l2States(log: readonly Observation[]): ReadonlyMap<string, bigint>[] {
  return log.filter((o): o is Extract<Observation, { kind: 'l2-state' }> => o.kind === 'l2-state').map((o) => o.detail);
}

/** The environment as the built-in L1 places it (built independently here), to find paging entries in it. */
function env(mode: L2Mode): { memory: PhysicalMemory<ReturnType<typeof L2_GPA.of>>; state: CpuState; builder: GuestPageTableBuilder<ReturnType<typeof L2_GPA.of>> } {
  const memory = new PhysicalMemory({ space: 'L2Gpa' }) as PhysicalMemory<ReturnType<typeof L2_GPA.of>>;
  const state = new CpuState();
  buildL2Environment(state, { mode, memory, space: L2_GPA, code: new Uint8Array(0) });
  const builder = new GuestPageTableBuilder({ mode: mode === 'paged32' ? '32bit' : mode === 'pae32' ? 'pae' : mode === 'long64-la57' ? '5level' : '4level', memory, space: L2_GPA, tableArea: { base: L2Layout.PAGE_TABLES, pages: 16 } });
  return { memory, state, builder };
}

/** `l2.data` replacing the 4-KiB PTE of `linear` with `value` (4 bytes in 32-bit paging, 8 in PAE paging). */
function pteWrite(mode: 'paged32' | 'pae32', linear: bigint, value: bigint): { gpa: bigint; bytes: Uint8Array } {
  const at = env(mode).builder.entryAddress(guestLinear(linear), 1);
  if (at === undefined) throw new Error('test bug: no page table for that address');
  const bytes = new Uint8Array(mode === 'paged32' ? 4 : 8);
  const dv = new DataView(bytes.buffer);
  if (mode === 'paged32') dv.setUint32(0, Number(value), true);
  else dv.setBigUint64(0, value, true);
  return { gpa: at as bigint, bytes };
}

function nestedDivergences(config: L1Config | L1Program): string[] {
  const program = typeof config === 'function' ? config : builtinL1(config);
  const r = checkProgram(program, {}, { cpu: KVM_L1, profile: sdmProfile(), mode: 'all' });
  return r.divergences.filter((d) => d.kind !== 'expected-deviation').map((d) => show(d));
}

describe('L2 environments with 32-bit and PAE paging (buildL2Environment)', () => {
  it('paged32: CR0.PG/WP, CR4.PSE, 4-KiB pages below 4 MiB, 4-MiB pages up to MAPPED, nothing above', () => {
    const e = env('paged32');
    expect(e.state.cr0 & (Cr0.PE | Cr0.PG | Cr0.WP)).toBe(Cr0.PE | Cr0.PG | Cr0.WP);
    expect(e.state.cr4).toBe(Cr4.PSE);
    expect(e.state.efer).toBe(0n);
    expect(e.state.cr3).toBe(L2Layout.PAGE_TABLES);
    const pde = (linear: bigint) => BigInt(e.memory.readU32(L2_GPA.of(e.state.cr3 + (linear >> 22n) * 4n)));
    expect(pde(0n) & 0x80n).toBe(0n); // a page table
    expect(pde(0x40_0000n)).toBe(0x40_0000n | 0x87n); // 4-MiB page: PS | U/S | R/W | P
    expect(pde(L2Layout.MAPPED)).toBe(0n);
    expect(BigInt(e.memory.readU32(e.builder.entryAddress(guestLinear(0x9_0000n), 1)!))).toBe(0x9_0000n | 7n);
  });

  it('pae32: CR4.PAE without IA-32e mode; PDPTE 0 present with no other bit, PDPTEs 1-3 not present', () => {
    const e = env('pae32');
    expect(e.state.cr4).toBe(Cr4.PAE);
    expect(e.state.efer).toBe(0n);
    expect(e.builder.pdptes()).toEqual([L2Layout.PAGE_TABLES + 0x1000n | 1n, 0n, 0n, 0n]);
    const pd = L2Layout.PAGE_TABLES + 0x1000n;
    expect(e.memory.readU64(L2_GPA.of(pd)) & 0x80n).toBe(0n);
    expect(e.memory.readU64(L2_GPA.of(pd + 8n))).toBe(0x20_0000n | 0x87n);
    expect(e.memory.readU64(e.builder.entryAddress(guestLinear(0x1_0000n), 1)!)).toBe(0x1_0000n | 7n);
  });

  it('long64-la57: CR4.LA57 with a 5-level hierarchy (PML5 → PML4 → PDPT → PD of 2-MiB pages)', () => {
    const e = env('long64-la57');
    expect(e.state.cr4).toBe(Cr4.PAE | Cr4.LA57);
    expect(e.builder.entryAddress(guestLinear(0x20_0000n), 2)).toBeDefined();
    expect(e.memory.readU64(e.builder.entryAddress(guestLinear(0x20_0000n), 2)!)).toBe(0x20_0000n | 0x87n);
    expect(env('long64').state.cr4 & Cr4.LA57).toBe(0n);
  });
});

describe('paged L2 under the built-in L1 (with and without EPT)', () => {
  for (const mode of PAGED_MODES) {
    for (const ept of [false, true]) {
      const name = `${mode}, ${ept ? 'EPT' : 'no EPT'}`;
      // Linear 0x1ff000 is remapped to physical 0x90000 (the PTE rewritten through l2.data), 0x1fe000 made read-only:
      // the store through the alias is read back at the identity address; the store to the read-only page is a #PF.
      const code = asm32`mov eax, 1; cpuid; mov dword ptr [0x1ff010], 0xdeadbeef; mov esi, [0x90010]; mov dword ptr [0x1fe000], 1; hlt`;
      const config: L1Config = {
        l2: { mode, code, data: [pteWrite(mode, 0x1f_f000n, 0x9_0000n | 7n), pteWrite(mode, 0x1f_e000n, 0x1f_e000n | 5n)] },
        ...(ept ? { ept: {} } : {}), exceptionBitmap: 1 << 14, controls: { primary: Primary.HLT_EXITING },
        policy: { rules: [STOP_AT_HLT, STOP_AT_EXCEPTION] },
      };

      it(`${name}: VMCS state, CPUID exit, translation through the page tables, #PF with error code and CR2`, () => {
        const run = runConfig(config);
        expect(run.result.status, show(run.result)).toBe('completed');
        const secondary = Number(written(run.log, Field.SECONDARY_VM_EXEC_CONTROL) ?? 0n);
        expect(secondary & Secondary.UNRESTRICTED_GUEST).toBe(0);
        expect(secondary & Secondary.ENABLE_EPT).toBe(ept ? Secondary.ENABLE_EPT : 0);
        expect(Number(written(run.log, Field.VM_ENTRY_CONTROLS)) & EntryCtl.IA32E_MODE_GUEST).toBe(0);
        expect(written(run.log, Field.GUEST_CR4)! & (Cr4.PAE | Cr4.PSE)).toBe(mode === 'pae32' ? Cr4.PAE : Cr4.PSE);
        expect(written(run.log, Field.GUEST_CR0)! & Cr0.PG).toBe(Cr0.PG);
        expect(written(run.log, Field.GUEST_CR3)).toBe(L2Layout.PAGE_TABLES);
        const pdptr0 = written(run.log, Field.GUEST_PDPTR0);
        expect(pdptr0).toBe(mode === 'pae32' && ept ? L2Layout.PAGE_TABLES + 0x1000n | 1n : undefined);

        expect(run.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[10, 5n], [0, 23n]]);
        expect(run.exits[0]!.exit.instructionLength).toBe(2);
        const pf = run.exits[1]!;
        expect(pf.exit.interruptionInfo >>> 0).toBe(PF_INFO);
        expect(pf.exit.interruptionErrorCode).toBe(3); // present, write, supervisor
        expect(pf.exit.qualification).toBe(0x1f_e000n); // CR2 goes to the exit qualification (SDM 27.2.1)
        expect(pf.exit.idtVectoringInfo).toBe(0);
        if (mode === 'pae32' && ept) expect(pf.guest.get(Field.GUEST_PDPTR0)).toBe(L2Layout.PAGE_TABLES + 0x1000n | 1n);
        expect(l2States(run.log)[1]!.get('rsi')).toBe(0xdead_beefn);
      });

      it(`${name}: not-present #PF above the identity map, from CPL 0 (read) and CPL 3 (write)`, () => {
        for (const [user, op, ec] of [[false, 'mov eax, [0x40000008]', 0], [true, 'mov dword ptr [0x40000008], eax', 6]] as const) {
          const run = runConfig({ ...config, l2: { mode, code: asm32`${op}; hlt`, ...(user ? { user: true } : {}) } });
          expect(run.exits.map((e) => [e.exit.exitReason, e.exit.interruptionInfo >>> 0, e.exit.interruptionErrorCode, e.exit.qualification, e.rip]))
            .toEqual([[0, PF_INFO, ec, 0x4000_0008n, L2Layout.CODE]]);
        }
      });

      it(`${name}: the nested machine agrees (sdm profile)`, () => {
        expect(nestedDivergences(config)).toEqual([]);
      });
    }
  }
});

describe('PAE PDPTEs at VM entry (SDM 26.3.1.6: from GUEST_PDPTRn with EPT, from memory at CR3 without)', () => {
  const bad = (L2Layout.PAGE_TABLES + 0x5000n) | 1n | (1n << 5n); // present with reserved bit 5
  const pdpteData = (i: number, v: bigint) => {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, v, true);
    return { gpa: L2Layout.PAGE_TABLES + BigInt(8 * i), bytes };
  };
  const base: L1Config = { l2: { mode: 'pae32', code: asm32`cpuid; hlt` }, controls: { primary: Primary.HLT_EXITING }, policy: { rules: [STOP_AT_HLT] } };

  it('EPT: a reserved bit in GUEST_PDPTR1 fails entry with guest.pdpte.1.reserved (reason 33, qualification 2)', () => {
    const config: L1Config = { ...base, ept: {}, vmcsWrites: [[Field.GUEST_PDPTR1, bad]] };
    const run = runConfig(config);
    expect(run.exits.map((e) => [e.exit.exitReason >>> 0, e.exit.qualification, e.failedCheck])).toEqual([[0x8000_0021, 2n, 'guest.pdpte.1.reserved']]);
    expect(nestedDivergences(config)).toEqual([]);
  });

  it('no EPT: a reserved bit in the PDPTE 2 in memory fails entry with guest.pdpte.2.reserved', () => {
    const config: L1Config = { ...base, l2: { ...base.l2, data: [pdpteData(2, bad)] } };
    const run = runConfig(config);
    expect(run.exits.map((e) => [e.exit.exitReason >>> 0, e.exit.qualification, e.failedCheck])).toEqual([[0x8000_0021, 2n, 'guest.pdpte.2.reserved']]);
    expect(nestedDivergences(config)).toEqual([]);
  });

  it('EPT: a bad PDPTE in memory does not matter when GUEST_PDPTRn are valid (the entry takes the fields)', () => {
    const config: L1Config = { ...base, ept: {}, l2: { ...base.l2, data: [pdpteData(3, bad)] }, vmcsWrites: [[Field.GUEST_PDPTR3, 0n]] };
    const run = runConfig(config);
    expect(written(run.log, Field.GUEST_PDPTR3)).toBe(bad); // the L1 copies memory first, the raw write then fixes it
    expect(run.exits.map((e) => [e.exit.exitReason, e.rip - L2Layout.CODE])).toEqual([[10, 0n], [12, 2n]]);
    expect(nestedDivergences(config)).toEqual([]);
  });
});

describe('MSR lists (SDM 24.7.2, 24.8.2, 26.4, 27.4, 27.6)', () => {
  const L1_LSTAR = 0x1111_0000n, L2_LSTAR = 0x2222_0000n, L2_WRITES = 0x3333_0000n, L1_AFTER = 0x4444_0000n;
  // L2 reads LSTAR and KERNEL_GS_BASE (loaded by the entry list), then writes LSTAR (not exiting: an all-clear MSR
  // bitmap) and halts; the exit stores LSTAR and TSC_AUX, and the exit list gives L1 a new LSTAR.
  const lists: L1Config = {
    l2: { mode: 'long64', code: asm64`mov ecx, 0xc0000082; rdmsr; mov r8, rax; mov ecx, 0xc0000102; rdmsr; mov r9, rax; mov r10, rdx; mov ecx, 0xc0000082; mov eax, ${Number(L2_WRITES)}; xor edx, edx; wrmsr; mov ecx, 0xc0000103; mov eax, 7; wrmsr; hlt` },
    controls: { primary: Primary.HLT_EXITING }, msrBitmap: {}, l1Msrs: [[Msr.IA32_LSTAR, L1_LSTAR]],
    msrLists: {
      entryLoad: [[Msr.IA32_LSTAR, L2_LSTAR], [Msr.IA32_KERNEL_GS_BASE, 0x0000_7654_9abc_def0n]],
      exitStore: [Msr.IA32_LSTAR, Msr.IA32_TSC_AUX],
      exitLoad: [[Msr.IA32_LSTAR, L1_AFTER]],
    },
    policy: { rules: [STOP_AT_HLT] },
  };
  /** The built-in L1, then L1 reads the exit-store list and its own LSTAR. */
  function withReadBack(config: L1Config, out: { stored?: bigint[]; lstar?: bigint }): L1Program {
    return (m) => {
      builtinL1(config)(m);
      out.stored = [0, 1].map((i) => m.readMemory(L1_GPA.of(L1Layout.MSR_EXIT_STORE + BigInt(16 * i) + 8n), 8));
      out.lstar = m.rdmsr(Msr.IA32_LSTAR);
    };
  }

  it('the entry list loads L2 values, the exit-store list stores them, the exit-load list restores L1', () => {
    const out: { stored?: bigint[]; lstar?: bigint } = {};
    const run = runProgram(withReadBack(lists, out));
    expect(written(run.log, Field.VM_ENTRY_MSR_LOAD_COUNT)).toBe(2n);
    expect(written(run.log, Field.VM_ENTRY_MSR_LOAD_ADDR)).toBe(L1Layout.MSR_ENTRY_LOAD);
    expect(written(run.log, Field.VM_EXIT_MSR_STORE_COUNT)).toBe(2n);
    expect(written(run.log, Field.VM_EXIT_MSR_STORE_ADDR)).toBe(L1Layout.MSR_EXIT_STORE);
    expect(written(run.log, Field.VM_EXIT_MSR_LOAD_COUNT)).toBe(1n);
    expect(written(run.log, Field.VM_EXIT_MSR_LOAD_ADDR)).toBe(L1Layout.MSR_EXIT_LOAD);
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    const l2 = l2States(run.log)[0]!;
    expect(l2.get('r8')).toBe(L2_LSTAR);
    expect(l2.get('r9')).toBe(0x9abc_def0n);
    expect(l2.get('r10')).toBe(0x7654n);
    expect(out.stored).toEqual([L2_WRITES, 7n]);
    expect(out.lstar).toBe(L1_AFTER);
  });

  it('the same in a PAE L2 without EPT', () => {
    const config: L1Config = {
      ...lists,
      l2: { mode: 'pae32', code: asm32`mov ecx, 0xc0000082; rdmsr; mov esi, eax; mov ecx, 0xc0000082; mov eax, ${Number(L2_WRITES)}; xor edx, edx; wrmsr; hlt` },
    };
    const out: { stored?: bigint[]; lstar?: bigint } = {};
    const run = runProgram(withReadBack(config, out));
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(l2States(run.log)[0]!.get('rsi')).toBe(L2_LSTAR);
    expect(out.stored![0]).toBe(L2_WRITES);
    expect(out.lstar).toBe(L1_AFTER);
  });

  it('the nested machine agrees (sdm profile), including L1 reading the stored values back', () => {
    const out: { stored?: bigint[]; lstar?: bigint } = {};
    expect(nestedDivergences(withReadBack(lists, out))).toEqual([]);
  });

  for (const [what, entry, check] of [
    ['IA32_FS_BASE', [Msr.IA32_FS_BASE, 0n], 'msr-load.entry.fs-gs-base'],
    ['an x2APIC MSR', [0x808, 0n], 'msr-load.entry.x2apic'],
    ['reserved bits 63:32 set', [Msr.IA32_STAR, 0n, 1], 'msr-load.entry.reserved-bits'],
    ['a value WRMSR refuses (non-canonical LSTAR)', [Msr.IA32_LSTAR, 0x8000_0000_0000_0000n], 'msr-load.entry.wrmsr-fault'],
  ] as const) {
    it(`an entry with ${what} as the 3rd fails entry: reason 34 | 0x80000000, qualification 3 (${check})`, () => {
      const config: L1Config = { ...lists, msrLists: { entryLoad: [[Msr.IA32_LSTAR, L2_LSTAR], [Msr.IA32_TSC_AUX, 1n], entry] } };
      const run = runConfig(config);
      expect(run.exits.map((e) => [e.exit.exitReason >>> 0, e.exit.qualification, e.failedCheck])).toEqual([[0x8000_0022, 3n, check]]);
      expect(nestedDivergences(config)).toEqual([]);
    });
  }
});

describe('5-level L2 (long64-la57)', () => {
  const LA57_CPU = new CpuModel({
    ...KVM_L1.data, id: 'test-kvm-l1-la57', cpuid: { ...KVM_L1.data.cpuid, la57: true },
    vmxMsrs: { ...KVM_L1.data.vmxMsrs, IA32_VMX_CR4_FIXED1: '0x00000000003737ff' },
  });
  // Read as a 4-level hierarchy the same tables would translate the code page elsewhere: the exits and RSI show the walk.
  const config: L1Config = { l2: { mode: 'long64-la57', code: asm64`mov rsi, [0x90000]; cpuid; mov rbx, [0x40000000]; hlt`, data: [{ gpa: 0x9_0000n, bytes: new Uint8Array([0x78, 0x56, 0x34, 0x12]) }] }, exceptionBitmap: 1 << 14, controls: { primary: Primary.HLT_EXITING }, policy: { rules: [STOP_AT_HLT, STOP_AT_EXCEPTION] } };

  it('with CR4.LA57 allowed, L2 runs on its 5-level tables', () => {
    const run = runConfig(config, { cpu: LA57_CPU });
    expect(written(run.log, Field.GUEST_CR4)! & Cr4.LA57).toBe(Cr4.LA57);
    expect(run.exits.map((e) => [e.exit.exitReason, e.exit.qualification, e.rip - L2Layout.CODE])).toEqual([[10, 0n, 8n], [0, 0x4000_0000n, 10n]]);
    expect(l2States(run.log)[0]!.get('rsi')).toBe(0x1234_5678n);
  });

  it('where IA32_VMX_CR4_FIXED1 forbids LA57 the bit is kept and VM entry fails the CR4 check', () => {
    const run = runConfig(config);
    expect(written(run.log, Field.GUEST_CR4)! & Cr4.LA57).toBe(Cr4.LA57);
    expect(run.exits.map((e) => [e.exit.exitReason >>> 0, e.failedCheck])).toEqual([[0x8000_0021, 'guest.cr4.fixed-bits']]);
  });
});
