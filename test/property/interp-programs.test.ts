// Whole L2 programs (shared arbitrary: ALU work, memory accesses, exit-causing instructions) run under a VMCS that
// makes every exit-causing instruction of the mix exit, with a minimal "VMM" that skips the exiting instruction:
// (1) VM exits happen exactly at the exit-causing lines, in order, with their reasons and lengths;
// (2) the same program and seed give the same exits, registers, memory and port writes (determinism contract).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Pin, Primary, Secondary } from '../../src/cpu/generated/controls.js';
import { ExitReason as R } from '../../src/cpu/generated/exit-reasons.js';
import { assemble } from '../../src/asm/index.js';
import { L2Layout } from '../../src/cpu/interp/index.js';
import { propertyParams } from '../support/property.js';
import { l2ProgramArb, type ExitCase } from '../support/arbitraries/l2-programs.js';
import { machine, vmcsWith } from '../unit/cpu/interp/harness.js';

const EVERYTHING_EXITS = vmcsWith({
  PIN_BASED_VM_EXEC_CONTROL: Pin.NMI_EXITING,
  CPU_BASED_VM_EXEC_CONTROL: Primary.UNCONDITIONAL_IO_EXITING | Primary.RDTSC_EXITING | Primary.RDPMC_EXITING | Primary.MONITOR_EXITING
    | Primary.PAUSE_EXITING | Primary.HLT_EXITING,
  SECONDARY_VM_EXEC_CONTROL: Secondary.WBINVD_EXITING | Secondary.RDRAND_EXITING | Secondary.RDSEED_EXITING,
});

function reasonOf(c: ExitCase): number {
  switch (c.kind) {
    case 'io': return R.IO_INSTRUCTION;
    case 'msr': return c.write ? R.MSR_WRITE : R.MSR_READ;
    case 'rand': return c.seed ? R.RDSEED : R.RDRAND;
    case 'simple': return ({ cpuid: R.CPUID, invd: R.INVD, vmcall: R.VMCALL, rdpmc: R.RDPMC, rdtsc: R.RDTSC, monitor: R.MONITOR_INSTRUCTION, pause: R.PAUSE_INSTRUCTION, wbinvd: R.WBINVD, vmlaunch: R.VMLAUNCH, vmresume: R.VMRESUME, vmxoff: R.VMXOFF } as Record<string, number>)[c.mnemonic]!;
    default: throw new Error(`unexpected case ${c.kind}`);
  }
}

interface RunLog {
  readonly exits: { rip: bigint; reason: number; length: number | undefined }[];
  readonly gpr: bigint[];
  readonly data: string;
  readonly ports: string;
  readonly end: string;
}

function runProgram(lines: readonly string[], seed: number): RunLog {
  const src = [...lines, 'hlt'].join('\n');
  const asm = assemble(src, { bitness: 64, ip: L2Layout.CODE });
  if (!asm.ok) throw new Error(`${asm.error.message}: ${asm.error.text}`);
  const m = machine('long64', asm.bytes, { vmcs: EVERYTHING_EXITS, platform: { seed } });
  m.state.gpr[3] = L2Layout.DATA;
  const exits: RunLog['exits'] = [];
  let end = 'step-limit';
  for (let n = 0; n < 400; n++) {
    const r = m.step();
    if (r.kind === 'vmexit') {
      exits.push({ rip: m.state.rip, reason: r.exit.reason, length: r.exit.instructionLength });
      if (r.exit.reason === R.HLT) { end = 'hlt'; break; }
      m.state.rip += BigInt(r.exit.instructionLength ?? 0); // the VMM emulates nothing and skips the instruction
      continue;
    }
    if (r.kind !== 'retired' && r.kind !== 'delivered') { end = r.kind; break; }
  }
  return {
    exits,
    gpr: [...m.state.gpr],
    data: Buffer.from(m.memory.read(L2Layout.DATA as never, 0x1_0000)).toString('base64'),
    ports: JSON.stringify(m.platform.portWrites),
    end,
  };
}

describe('L2 programs under a VMCS', () => {
  it('exits exactly at the exit-causing lines, in program order', () => {
    fc.assert(
      fc.property(l2ProgramArb, (p) => {
        const asm = assemble([...p.lines, 'hlt'].join('\n'), { bitness: 64, ip: L2Layout.CODE });
        if (!asm.ok) throw new Error(asm.error.message);
        const log = runProgram(p.lines, 1);
        expect(log.end).toBe('hlt');
        const expected = [...p.exits.map((c) => reasonOf(c)), R.HLT];
        expect(log.exits.map((e) => e.reason)).toEqual(expected);
        // Each exit is at the start of the line that caused it, with that line's length.
        const exitLines = asm.listing.filter((l, i) => i === asm.listing.length - 1 || p.exits.some((c) => c.text === p.lines[i]));
        expect(log.exits.map((e) => [e.rip, e.length])).toEqual(exitLines.map((l) => [l.ip, l.bytes.length]));
      }),
      propertyParams({ numRuns: 80 }),
    );
  });

  it('same program and seed: same exits, registers, memory and port writes', () => {
    fc.assert(
      fc.property(l2ProgramArb, fc.integer({ min: 0, max: 1000 }), (p, seed) => {
        expect(runProgram(p.lines, seed)).toEqual(runProgram(p.lines, seed));
      }),
      propertyParams({ numRuns: 40 }),
    );
  });
});
