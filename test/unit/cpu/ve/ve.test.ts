// EPT-violation #VE on the reference machine: a convertible EPT violation (suppress-#VE clear in the deciding EPT
// entry) with "EPT-violation #VE", CR0.PE = 1, outside event delivery and a zero busy word becomes vector 20 through
// L2's IDT and fills the VE-information area; otherwise the violation exits (reason 48) as before. Exception bitmap
// bit 20 turns the #VE itself into an exception exit. Expectations from SDM Vol. 3C 25.5.6 (26.5.7 in newer editions).
import { describe, expect, it } from 'vitest';
import { asm16, asm64 } from '../../../../src/asm/index.js';
import { L1_GPA } from '../../../../src/cpu/address.js';
import { Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { L1Layout, type L1Config } from '../../../../src/cpu/l1/config.js';
import { handlerAddress, L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import type { L1Program } from '../../../../src/cpu/l1/machine.js';
import { runConfig, runProgram, SKYLAKE, type Run } from '../machine/helpers.js';

const DATA = L2Layout.DATA;
const DATA_L1 = 0x500_0000n;
const VE_AREA = 0x0106_0000n;
const STOP = { kind: 'stop' as const };
const STOP_AT_HLT = { reason: 12, actions: [STOP] };
/** mov rbx, imm32 (7 bytes), mov rax, [rbx] (3), then the store. */
const STORE_RIP = L2Layout.CODE + 10n;
const CODE = asm64`mov rbx, ${DATA}; mov rax, [rbx]; mov qword ptr [rbx], rax; hlt`;

function config(extra: Partial<L1Config> = {}, secondary = Secondary.ENABLE_EPT | Secondary.EPT_VIOLATION_VE): L1Config {
  return {
    l2: { mode: 'long64', code: CODE },
    controls: { primary: Primary.HLT_EXITING },
    ept: { mappings: [{ l2: DATA, l1: DATA_L1, read: true, write: false, execute: false }] },
    vmcsWrites: [
      [Field.SECONDARY_VM_EXEC_CONTROL, BigInt(secondary)],
      [Field.VE_INFORMATION_ADDRESS, VE_AREA],
      [Field.EPTP_INDEX, 3n],
    ],
    policy: { rules: [{ reason: 48, actions: [STOP] }, { reason: 0, actions: [STOP] }, STOP_AT_HLT] },
    ...extra,
  };
}

function area(run: Run, offset: number, size: 2 | 4 | 8): bigint {
  const a = L1_GPA.of(VE_AREA + BigInt(offset));
  const m = run.machine.memory;
  return size === 8 ? m.readU64(a) : size === 4 ? BigInt(m.readU32(a)) : BigInt(m.readU16(a));
}

/** L1-physical address of EPT12's leaf for `gpa` (4-level, 4-KiB leaves). */
function leafAddress(run: Run, gpa: bigint): bigint {
  let table: bigint = L1Layout.EPT_TABLES;
  let address = 0n;
  for (let level = 4; level >= 1; level--) {
    address = table + ((gpa >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
    table = run.machine.memory.readU64(L1_GPA.of(address)) & 0xf_ffff_ffff_f000n;
  }
  return address;
}

/** The same violation as a VM exit (the control off): its qualification is what the VE area must hold. */
function exitQualification(): bigint {
  const run = runConfig(config({}, Secondary.ENABLE_EPT), { cpu: SKYLAKE });
  expect(run.exits.map((e) => e.exit.exitReason)).toEqual([48]);
  return run.exits[0]!.exit.qualification;
}

describe('EPT-violation #VE (SDM 25.5.6)', () => {
  it('a store to a read-only page becomes #VE: area filled (48, FFFFFFFFh, qualification, GLA, GPA, EPTP index), vector 20 delivered', () => {
    const qualification = exitQualification();
    expect(qualification & 0x18an).toBe(0x18an); // write, readable, GLA valid, final translation
    const run = runConfig(config(), { cpu: SKYLAKE });
    // The #VE handler stub is `hlt`: the only exit is its HLT; no EPT-violation exit.
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(run.exits[0]!.rip).toBe(handlerAddress(20));
    const l2 = run.log.find((o) => o.kind === 'l2-state');
    expect(l2).toMatchObject({ deliveredEvents: ['14/3'] });
    expect(area(run, 0, 4)).toBe(48n);
    expect(area(run, 4, 4)).toBe(0xffff_ffffn);
    expect(area(run, 8, 8)).toBe(qualification);
    expect(area(run, 16, 8)).toBe(DATA);
    expect(area(run, 24, 8)).toBe(DATA);
    expect(area(run, 32, 2)).toBe(3n);
    // A fault without error code: the frame's RIP is the store, RSP moved by exactly 5 qwords.
    const rsp = run.exits[0]!.guest.get(Field.GUEST_RSP)!;
    expect(rsp).toBe(L2Layout.STACK_TOP - 40n);
    expect(run.machine.memory.readU64(L1_GPA.of(L1Layout.L2_BASE + rsp))).toBe(STORE_RIP);
    // The store did not happen.
    expect(run.machine.memory.readU64(L1_GPA.of(DATA_L1))).toBe(0n);
  });

  it('a nonzero busy word at offset 4 makes the violation a VM exit and leaves the area alone', () => {
    const busy = { gpa: VE_AREA + 4n, bytes: new Uint8Array([1, 0, 0, 0]) };
    const run = runConfig(config({ l1Data: [busy] }), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([48]);
    expect(run.exits[0]!.rip).toBe(STORE_RIP);
    expect(run.exits[0]!.exit.guestPhysicalAddress).toBe(DATA);
    expect(area(run, 0, 4)).toBe(0n);
    expect(area(run, 4, 4)).toBe(1n);
  });

  it('suppress-#VE (bit 63) in the leaf that maps the page keeps the VM exit', () => {
    const probe = runConfig(config({}, Secondary.ENABLE_EPT), { cpu: SKYLAKE });
    const leaf = leafAddress(probe, DATA);
    const value = probe.machine.memory.readU64(L1_GPA.of(leaf));
    expect(value & 7n).toBe(1n); // read-only leaf
    // L1 sets bit 63 in its EPT12 leaf right before VMLAUNCH (its setup writes the tables after any l1Data).
    const program: L1Program = (m) => builtinL1(config())(new Proxy(m, {
      get(target, key) {
        if (key === 'vmlaunch') {
          return () => {
            target.writeMemory(L1_GPA.of(leaf), 8, value | (1n << 63n));
            return target.vmlaunch();
          };
        }
        const v: unknown = Reflect.get(target, key);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }));
    const run = runProgram(program, { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([48]);
    expect(run.exits[0]!.exit.qualification).toBe(probe.exits[0]!.exit.qualification);
    expect(area(run, 4, 4)).toBe(0n);
  });

  it('a not-present leaf with bit 63 clear is convertible: #VE with no rights in the qualification', () => {
    const run = runConfig(config({ ept: { mappings: [{ l2: DATA, l1: DATA_L1, read: false, write: false, execute: false }] } }), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([12]);
    expect(run.exits[0]!.rip).toBe(handlerAddress(20));
    // The load (first access) faults: data read, GLA valid, final translation, no rights.
    expect(area(run, 8, 8) & 0xfffn).toBe(0x181n);
    expect(area(run, 24, 8)).toBe(DATA);
  });

  it('exception bitmap bit 20: the #VE exits as exception 20 (hardware, no error code) after the area is written', () => {
    const run = runConfig(config({ exceptionBitmap: 1 << 20 }), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([0]);
    const x = run.exits[0]!;
    expect(x.exit.interruptionInfo).toBe(0x8000_0314);
    expect(x.exit.qualification).toBe(0n);
    expect(x.rip).toBe(STORE_RIP);
    expect(area(run, 4, 4)).toBe(0xffff_ffffn);
    expect(area(run, 0, 4)).toBe(48n);
  });

  it('a violation during event delivery is never converted: exit 48 with IDT-vectoring information', () => {
    // The stack page is read-only: delivering INT 0x21 faults on the push.
    const stackPage = L2Layout.STACK_TOP - 0x1000n;
    const run = runConfig(config({
      l2: { mode: 'long64', code: asm64`int 0x21; hlt` },
      ept: { mappings: [{ l2: stackPage, l1: L1Layout.L2_BASE + stackPage, read: true, write: false, execute: false }] },
    }), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([48]);
    const x = run.exits[0]!.exit;
    expect(x.idtVectoringInfo).toBe(0x8000_0421);
    expect(x.guestPhysicalAddress! >> 12n).toBe(stackPage >> 12n);
    expect(area(run, 4, 4)).toBe(0n);
  });

  it('CR0.PE = 0 (real mode under unrestricted guest) keeps the VM exit', () => {
    const run = runConfig(config({
      l2: { mode: 'real', code: asm16`mov ax, 0x9000; mov ds, ax; mov byte ptr [0], al; hlt` },
    }, Secondary.ENABLE_EPT | Secondary.EPT_VIOLATION_VE | Secondary.UNRESTRICTED_GUEST), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([48]);
    expect(run.exits[0]!.exit.guestPhysicalAddress).toBe(DATA);
    expect(area(run, 4, 4)).toBe(0n);
  });

  it('without the control the same violation exits, whatever the area holds', () => {
    const run = runConfig(config({}, Secondary.ENABLE_EPT), { cpu: SKYLAKE });
    expect(run.exits.map((e) => e.exit.exitReason)).toEqual([48]);
    expect(area(run, 4, 4)).toBe(0n);
  });
});
