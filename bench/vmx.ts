// Benchmarks of the VMX processor: VMREAD and VMWRITE (register forms, 64-bit mode) and a VMRESUME → VM exit round
// trip on validVmcs with the real entry checks. Baselines, measured in the same run: the raw Vmcs get/set the
// instructions wrap, and the two CpuState copies any entry/exit pair must make.
// Must not: be imported by src/ (it reads the clock); src/cpu/vmx is clock-free.
import { performance } from 'node:perf_hooks';
import { DEFAULT_CPU_MODEL, findCpuModel } from '../src/cpu/cpu-model.js';
import { Field } from '../src/cpu/generated/vmcs-fields.js';
import { CpuState, Seg } from '../src/cpu/state.js';
import { slotFields } from '../src/cpu/vmcs.js';
import { validVmcs } from '../src/cpu/vmentry/index.js';
import type { VmxPhysicalAccess } from '../src/cpu/vmx/physical.js';
import { VmxProcessor } from '../src/cpu/vmx/processor.js';

export interface BenchResult { name: string; opsPerSecond: number; baselineOpsPerSecond: number }

/** Runs `fn` in rounds of 1000 until `ms` milliseconds have passed; returns calls per second. */
function measure(fn: () => number, ms: number): number {
  let calls = 0, sink = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 1000; i++) sink += fn();
    calls += 1000;
    now = performance.now();
  }
  if (sink === -1) process.stdout.write(''); // keep `sink` observable so the loop is not optimised away
  return calls / ((now - start) / 1000);
}

/** Byte-granular sparse memory: enough for the VMXON and VMCS regions the benchmark touches. */
class BenchMemory implements VmxPhysicalAccess {
  private readonly bytes = new Map<bigint, number>();
  read(addr: bigint, size: 1 | 2 | 4 | 8): bigint | undefined {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) {
      const b = this.bytes.get(addr + BigInt(i));
      if (b === undefined) return undefined;
      v = (v << 8n) | BigInt(b);
    }
    return v;
  }
  write(addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): boolean {
    for (let i = 0; i < size; i++) this.bytes.set(addr + BigInt(i), Number((value >> BigInt(8 * i)) & 0xffn));
    return true;
  }
}

const VMXON_PTR = 0x10_0000n;
const VMCS_PTR = 0x10_1000n;

function rootState(): CpuState {
  const s = new CpuState();
  s.cr0 = 0x8005_0033n;
  s.cr4 = 0x26e0n;
  s.efer = 0xd01n;
  s.segSel[Seg.CS] = 0x10;
  s.segAr[Seg.CS] = 0xa09b;
  s.segLimit[Seg.CS] = 0xffff_ffff;
  s.segBase[Seg.CS] = 0n;
  for (const seg of [Seg.SS, Seg.DS, Seg.ES, Seg.FS, Seg.GS]) {
    s.segSel[seg] = 0x18;
    s.segAr[seg] = 0xc093;
    s.segLimit[seg] = 0xffff_ffff;
  }
  return s;
}

/** A processor in VMX root operation whose current VMCS holds validVmcs(cpu), written field by field. */
function prepared(): VmxProcessor {
  const cpu = findCpuModel(DEFAULT_CPU_MODEL);
  if (!cpu) throw new Error(`turtles bug: no preset ${DEFAULT_CPU_MODEL}`);
  const mem = new BenchMemory();
  for (let a = 0n; a < 0x2000n; a += 8n) mem.write(VMXON_PTR + a, 8, 0n);
  mem.write(VMXON_PTR, 4, BigInt(cpu.vmcsRevision));
  mem.write(VMCS_PTR, 4, BigInt(cpu.vmcsRevision));
  const p = new VmxProcessor({ cpu, memory: mem, state: rootState() });
  const ok = (o: { kind: string }, what: string) => {
    if (o.kind !== 'vmsucceed') throw new Error(`turtles bug: bench setup ${what} gave ${o.kind}`);
  };
  ok(p.vmxon(VMXON_PTR), 'VMXON');
  ok(p.vmclear(VMCS_PTR), 'VMCLEAR');
  ok(p.vmptrld(VMCS_PTR), 'VMPTRLD');
  const valid = validVmcs(cpu);
  for (const f of slotFields()) {
    if (cpu.fieldSupported(f.encoding) && f.type !== 'read-only data') ok(p.vmwrite(BigInt(f.encoding), valid.get(f.encoding), 64), `VMWRITE ${f.name}`);
  }
  return p;
}

export function benchVmx(durationMs = 1000): BenchResult[] {
  const p = prepared();
  const vmcs = p.currentVmcs!;
  const RIP = BigInt(Field.GUEST_RIP);
  let n = 0n;

  const vmread = (): number => (p.vmread(RIP, 64).kind === 'vmsucceed' ? 1 : 0);
  const rawRead = (): number => Number(vmcs.get(Field.GUEST_RIP) & 1n);
  const vmwrite = (): number => (p.vmwrite(RIP, (n = (n + 1n) & 0xffffn), 64).kind === 'vmsucceed' ? 1 : 0);
  const rawWrite = (): number => {
    vmcs.set(Field.GUEST_RIP, (n = (n + 1n) & 0xffffn));
    return 1;
  };

  const launched = p.vmlaunch();
  if (launched.kind !== 'vm-entry') throw new Error(`turtles bug: bench VMLAUNCH gave ${launched.kind}`);
  if (p.vmExit({ reason: 10, instructionLength: 2 }, launched.guest).kind !== 'host') throw new Error('turtles bug: bench VM exit failed');
  const roundTrip = (): number => {
    const e = p.vmresume();
    if (e.kind !== 'vm-entry') throw new Error(`turtles bug: bench VMRESUME gave ${e.kind}`);
    return p.vmExit({ reason: 10, instructionLength: 2 }, e.guest).kind === 'host' ? 1 : 0;
  };
  const copies = (): number => {
    const g = p.state.clone();
    return g.clone().cpl;
  };

  const out: BenchResult[] = [];
  for (const [name, fn, base] of [
    ['VMREAD (register, 64-bit)', vmread, rawRead],
    ['VMWRITE (register, 64-bit)', vmwrite, rawWrite],
    ['VMRESUME → VM exit round trip (validVmcs, real entry checks)', roundTrip, copies],
  ] as const) {
    measure(fn, durationMs / 4); // warm-up
    measure(base, durationMs / 4);
    out.push({ name, opsPerSecond: measure(fn, durationMs), baselineOpsPerSecond: measure(base, durationMs) });
  }
  return out;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  for (const r of benchVmx()) {
    process.stdout.write(`${r.name}: ${Math.round(r.opsPerSecond).toLocaleString('en-US')} ops/s (baseline ${Math.round(r.baselineOpsPerSecond).toLocaleString('en-US')} ops/s)\n`);
  }
}
