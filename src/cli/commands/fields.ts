// `turtles fields [--json]`: the VMCS field table from schemas/vmx/fields.json.
// Must not: compute anything beyond formatting the generated table.
import type { Command } from 'commander';
import { VMCS_FIELDS } from '../../cpu/generated/vmcs-fields.js';
import { writeLine, writeJsonValue } from '../output.js';
import type { SetExitCode } from './index.js';

export function fieldRows() {
  return VMCS_FIELDS.map((f) => ({
    name: f.name,
    encoding: '0x' + f.encoding.toString(16).padStart(8, '0'),
    width: f.width,
    type: f.type,
    index: f.index,
    access: f.access,
    feature: f.feature,
    kvmVmcs12: f.kvmVmcs12,
    source: f.source,
  }));
}

export function registerFields(program: Command, _setExit: SetExitCode): void {
  program
    .command('fields')
    .description('print the VMCS field table (SDM Appendix B)')
    .option('--json', 'print a JSON array')
    .action((opts: { json?: boolean }) => {
      const rows = fieldRows();
      if (opts.json) {
        writeJsonValue(rows);
        return;
      }
      writeLine(`${'encoding'.padEnd(11)} ${'width'.padEnd(8)} ${'type'.padEnd(15)} name`);
      for (const r of rows) {
        writeLine(`${r.encoding.padEnd(11)} ${r.width.padEnd(8)} ${r.type.padEnd(15)} ${r.name}${r.source === 'sdm' ? '  (SDM only)' : ''}`);
      }
      writeLine(`${rows.length} fields (${rows.filter((r) => r.source === 'linux').length} in Linux enum vmcs_field, ${rows.filter((r) => r.source === 'sdm').length} SDM-only)`);
    });
}
