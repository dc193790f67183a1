// Benchmarks of the L2 interpreter: interpreted instructions per second on a mixed 64-bit program (ALU work,
// memory accesses, a loop) and VM exits per second on a program of exit-causing instructions under a VMCS.
// Baseline, measured in the same run: iced-x86's raw decode rate over the same bytes (one Decoder, decodeOut).
// Must not: be imported by src/ (it reads the clock); src/cpu/interp is clock-free.
import { performance } from 'node:perf_hooks';
import { Decoder, Instruction } from 'iced-x86';
import { L2_GPA, type L2Gpa } from '../src/cpu/address.js';
import { PhysicalMemory } from '../src/cpu/memory.js';
import { CpuState } from '../src/cpu/state.js';
import { Vmcs } from '../src/cpu/vmcs.js';
import { Field } from '../src/cpu/generated/vmcs-fields.js';
import { Primary } from '../src/cpu/generated/controls.js';
import { assembleOrThrow } from '../src/asm/index.js';
import {
  DeterministicPlatform, DirectGuestMemory, Interpreter, L2Layout, buildL2Environment, makeNonRootRuntime,
} from '../src/cpu/interp/index.js';

export interface BenchResult { name: string; opsPerSecond: number; baselineOpsPerSecond: number }

const MIXED = `
  mov rbx, 0x90000
  mov ecx, 1000000
top:
  mov rax, [rbx + 8]
  add rax, rcx
  xor rdx, rax
  mov [rbx + 16], rdx
  shl rax, 3
  imul r8, rax, 7
  cmp r8, rdx
  cmovb rdx, r8
  push rax
  pop rsi
  dec ecx
  jnz top
  hlt`;

/** Exit-causing instructions, all exiting under the VMCS below (CPUID/I/O/RDMSR/RDTSC/HLT). */
const EXITING = 'cpuid; out 0x80, al; mov ecx, 0x10; rdmsr; rdtsc; in al, dx; hlt';

function setup(source: string, vmcs: Vmcs | null): { interp: Interpreter; state: CpuState; bytes: Uint8Array } {
  const memory = new PhysicalMemory<L2Gpa>({ space: 'L2Gpa' });
  const state = new CpuState();
  const bytes = assembleOrThrow(source, 64, L2Layout.CODE);
  buildL2Environment(state, { mode: 'long64', memory, space: L2_GPA, code: bytes });
  const env = { readPhysByte: (a: bigint) => memory.readU8(L2_GPA.of(a)), insOutsInfo: true };
  const nonRoot = vmcs ? makeNonRootRuntime(vmcs, env, { preemptionTimerRate: 0 }) : null;
  const interp = new Interpreter({ mem: new DirectGuestMemory(state, memory, L2_GPA, { maxPhysAddr: 46 }), platform: new DeterministicPlatform(), nonRoot });
  return { interp, state, bytes };
}

function timed(ms: number, body: () => number): number {
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    ops += body();
    now = performance.now();
  }
  return ops / ((now - start) / 1000);
}

/** Raw iced-x86 decode rate over `bytes` (repeated), the floor an interpreter built on it starts from. */
function decodeBaseline(bytes: Uint8Array, ms: number): number {
  const copies = Math.max(1, Math.floor(65536 / bytes.length));
  const big = new Uint8Array(bytes.length * copies);
  for (let i = 0; i < copies; i++) big.set(bytes, i * bytes.length);
  const d = new Decoder(64, big, 0);
  const ins = new Instruction();
  try {
    return timed(ms, () => {
      d.position = 0;
      let n = 0;
      while (d.canDecode) {
        d.decodeOut(ins);
        n++;
      }
      return n;
    });
  } finally {
    ins.free();
    d.free();
  }
}

export function benchInterp(durationMs = 1000): BenchResult[] {
  const mixed = setup(MIXED, null);
  const mixedRate = timed(durationMs, () => {
    const r = mixed.interp.run(mixed.state, 20_000);
    if (r.last.kind !== 'retired' && r.last.kind !== 'delivered') {
      mixed.state.rip = L2Layout.CODE;
      mixed.state.activity = 0;
    }
    return r.steps;
  });
  const vmcs = new Vmcs();
  vmcs.set(Field.CPU_BASED_VM_EXEC_CONTROL, BigInt(Primary.UNCONDITIONAL_IO_EXITING | Primary.RDTSC_EXITING | Primary.HLT_EXITING));
  const exiting = setup(EXITING, vmcs);
  const start = exiting.state.clone();
  const exitRate = timed(durationMs, () => {
    let exits = 0;
    for (let i = 0; i < 1000; i++) {
      const r = exiting.interp.step(exiting.state);
      if (r.kind === 'vmexit') {
        exits++;
        // The VMM's part of the round trip: skip the instruction and resume.
        exiting.state.rip += BigInt(r.exit.instructionLength ?? 0);
        if (exiting.state.rip >= L2Layout.CODE + BigInt(exiting.bytes.length)) exiting.state.rip = start.rip;
      }
    }
    return exits;
  });
  return [
    { name: 'interpreter: mixed L2 program (instructions/s; baseline iced-x86 decodes/s)', opsPerSecond: mixedRate, baselineOpsPerSecond: decodeBaseline(mixed.bytes, durationMs) },
    { name: 'interpreter: exit-causing L2 program under a VMCS (VM exits/s; baseline iced-x86 decodes/s)', opsPerSecond: exitRate, baselineOpsPerSecond: decodeBaseline(exiting.bytes, durationMs) },
  ];
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  for (const r of benchInterp()) {
    process.stdout.write(`${r.name}: ${Math.round(r.opsPerSecond).toLocaleString('en-US')} (baseline ${Math.round(r.baselineOpsPerSecond).toLocaleString('en-US')})\n`);
  }
}
