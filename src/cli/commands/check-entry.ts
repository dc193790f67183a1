// `turtles check-entry <file> [--cpu <preset>] [--json]`: reads one VMCS state (turtles JSON, KVM dump_vmcs or Xen
// vmcs_dump_vcpu text), runs every VM-entry check (SDM 26.2-26.4) and prints each failing check with its fields.
// Exit 0 when no check fails, 1 when one does, 2 on bad input. Must not: contain check or parsing logic (those are
// src/cpu/vmentry and src/replay/import/vmcs-dump); it only chooses the CPU model and formats the report.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CpuModel, DEFAULT_CPU_MODEL, cpuModelIds, findCpuModel } from '../../cpu/cpu-model.js';
import { runEntryChecks, type EntryCheckFailure, type EntryCheckReport, type EntryEnvironment } from '../../cpu/vmentry/index.js';
import { parseVmcsDump, readQwordMemory, type ParsedVmcsDump } from '../../replay/import/vmcs-dump/index.js';
import { controlsProven, impliedHostIa32e, widenForProvenControls } from '../../replay/import/vmcs-dump/facts.js';
import { ExitCode, InputError, UsageError } from '../errors.js';
import { writeJson, writeLine } from '../output.js';
import type { SetExitCode } from './index.js';

const FORMAT_NAMES: Record<string, string> = {
  'kvm-dump-vmcs': 'KVM dump_vmcs',
  'xen-vmcs-dump': 'Xen vmcs_dump_vcpu',
  'turtles-json': 'turtles JSON (turtles.vmcs.v1)',
};

interface CpuChoice {
  model: CpuModel;
  /** How the model was chosen, for the report. */
  how: string;
  widened: string[];
}

function presetOrThrow(id: string, where: () => InputError | UsageError): CpuModel {
  const m = findCpuModel(id);
  if (!m) throw where();
  return m;
}

function chooseCpu(parsed: ParsedVmcsDump, file: string, text: string, cliCpu: string | undefined): CpuChoice {
  const presets = cpuModelIds().join(', ');
  if (cliCpu !== undefined) {
    const m = presetOrThrow(cliCpu, () => new UsageError(`unknown CPU preset "${cliCpu}" for --cpu; presets: ${presets}`));
    return { model: m, how: '--cpu', widened: [] };
  }
  let base = findCpuModel(DEFAULT_CPU_MODEL)!;
  let how = 'default';
  if (parsed.cpu !== undefined) {
    const line = text.slice(0, Math.max(text.search(/"cpu"\s*:/), 0)).split('\n').length;
    base = presetOrThrow(parsed.cpu, () => new InputError(`${file}:${line}`, `a CPU preset id in "cpu" (${presets}); found "${parsed.cpu}"`));
    how = 'from the file';
  }
  const proven = controlsProven(parsed.derived);
  if (!proven) return { model: base, how, widened: [] };
  const w = widenForProvenControls(base.data, parsed.vmcs, proven, parsed.derived.exit?.failedEntry === false);
  if (w.changes.length === 0) return { model: base, how: `${how}; ${proven}, and the preset already allows what it used`, widened: [] };
  return { model: new CpuModel(w.data), how: `${how}, widened because ${proven}`, widened: w.changes };
}

function hex(v: bigint, digits: number): string {
  return '0x' + v.toString(16).padStart(digits, '0');
}

function fieldLine(parsed: ParsedVmcsDump, encoding: string): string {
  const line = parsed.fieldLines.get(Number(encoding));
  return line === undefined ? '' : `  [line ${line}]`;
}

function outcomeOf(f: EntryCheckFailure): string {
  switch (f.class) {
    case 'vmfail-valid-7':
      return 'VMfailValid, VM-instruction error 7 (invalid control field)';
    case 'vmfail-valid-8':
      return 'VMfailValid, VM-instruction error 8 (invalid host-state field)';
    case 'exit-33':
      return `VM-entry failure, exit reason 33 (invalid guest state), qualification ${f.qualification ?? 0n}`;
    case 'exit-34':
      return `VM-entry failure, exit reason 34 (MSR loading), qualification ${f.qualification ?? 0n}`;
  }
}

function printText(file: string, parsed: ParsedVmcsDump, cpu: CpuChoice, host: { value: boolean | undefined; why: string }, report: EntryCheckReport): void {
  const d = parsed.derived;
  writeLine(`check-entry ${file}`);
  writeLine(`  format:  ${FORMAT_NAMES[parsed.format] ?? parsed.format}${d.layout.length > 1 ? ` (${d.layout.slice(1).join(', ')})` : ''}; ${parsed.vmcs.values.size} fields from ${parsed.lines} lines${parsed.unmapped.length ? `; ${parsed.unmapped.length} lines not part of the VMCS state` : ''}`);
  writeLine(`  cpu:     ${cpu.model.data.id} (${cpu.how})`);
  for (const c of cpu.widened) writeLine(`           widened ${c}`);
  writeLine(`  host in IA-32e mode: ${host.value === undefined ? 'unknown' : host.value ? 'yes' : 'no'} (${host.why})`);
  if (d.exit) writeLine(`  the dump states: exit reason ${hex(d.exit.reason, 8)}${d.exit.failedEntry ? ` (VM-entry failure, basic reason ${d.exit.basic})` : ` (basic reason ${d.exit.basic}: the entry succeeded)`}`);
  if (d.efer) writeLine(`  EFER ${hex(d.efer.value, 16)} on line ${d.efer.line} is ${d.efer.source === 'msr-load-list' ? "Xen's guest MSR load list" : `KVM's "(${d.efer.source})" value`}, not the GUEST_IA32_EFER field`);
  writeLine('');
  for (const f of report.failures) {
    writeLine(`FAIL ${f.id}  SDM ${f.sdm}  ${f.stage}  ${f.class}`);
    for (const x of f.fields) writeLine(`     ${x.name} (${x.encoding}) = ${hex(x.value, 0)}${fieldLine(parsed, x.encoding)}`);
    writeLine(`     ${f.detail}`);
  }
  if (report.failures.length) writeLine('');
  const ne = report.notEvaluated.length;
  const first = report.failures[0];
  if (first) {
    writeLine(`${report.failures.length} check${report.failures.length === 1 ? '' : 's'} failed, ${report.evaluatedCount - report.failures.length} passed, ${ne} not evaluated (the state does not show what they need)`);
    writeLine(`the processor stops at the first: ${first.id} -> ${outcomeOf(first)}`);
  } else {
    writeLine(`all ${report.evaluatedCount} evaluated checks passed; ${ne} not evaluated (the state does not show what they need)`);
  }
}

export function registerCheckEntry(program: Command, setExit: SetExitCode): void {
  program
    .command('check-entry')
    .description('run every VM-entry check (SDM 26.2-26.4) on one VMCS state: turtles JSON (docs/vmcs-json.md), KVM dump_vmcs or Xen vmcs_dump_vcpu text')
    .argument('<file>', 'the VMCS state')
    .option('--cpu <preset>', `CPU model preset (${cpuModelIds().join(', ')}); default: the file's "cpu", else ${DEFAULT_CPU_MODEL} widened to the controls the dump proves were accepted`)
    .option('--json', 'print { schemaVersion, outcome, failures, notEvaluated, ... } instead of text')
    .action((file: string, opts: { cpu?: string; json?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? 'error';
        throw new InputError(file, `a readable file (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code})`);
      }
      const r = parseVmcsDump(text, file);
      if (!r.ok) throw new InputError(`${r.error.file}:${r.error.line}`, r.error.expected);
      const parsed = r.value;
      const cpu = chooseCpu(parsed, file, text, opts.cpu);
      const host = parsed.hostIa32e !== undefined ? { value: parsed.hostIa32e, why: 'from the file' } : impliedHostIa32e(parsed.vmcs, parsed.format === 'turtles-json' ? undefined : controlsProven(parsed.derived));
      const env: EntryEnvironment = { cpu: cpu.model };
      if (host.value !== undefined) env.hostIa32e = host.value;
      const memory = parsed.memory;
      if (memory && memory.size > 0) env.readPhys = (addr, size) => readQwordMemory(memory, addr, size);
      const report = runEntryChecks(parsed.vmcs, env, 'all');
      if (opts.json) {
        writeJson({
          outcome: report.failures.length ? 'fail' : 'pass',
          failures: report.failures.map((f) => ({ id: f.id, sdm: f.sdm, stage: f.stage, class: f.class, fields: f.fields, qualification: f.qualification, detail: f.detail })),
          notEvaluated: report.notEvaluated,
          evaluatedCount: report.evaluatedCount,
          input: {
            file,
            format: parsed.format,
            layout: parsed.derived.layout,
            cpu: cpu.model.data.id,
            cpuChoice: cpu.how,
            cpuWidened: cpu.widened,
            hostIa32e: host.value ?? null,
            statedExitReason: parsed.derived.exit?.reason ?? null,
            unmapped: parsed.unmapped,
          },
        });
      } else {
        printText(file, parsed, cpu, host, report);
      }
      setExit(report.failures.length ? ExitCode.DIVERGENCE : ExitCode.OK);
    });
}
