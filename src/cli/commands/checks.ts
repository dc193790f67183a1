// `turtles checks [--json]`: the VM-entry check catalogue from schemas/vmx/entry-checks.json.
// Must not: evaluate checks (that is check-entry).
import type { Command } from 'commander';
import { ENTRY_CHECKS } from '../../cpu/generated/entry-checks.js';
import { writeJsonValue, writeLine } from '../output.js';
import type { SetExitCode } from './index.js';

export function registerChecks(program: Command, _setExit: SetExitCode): void {
  program
    .command('checks')
    .description('print the VM-entry check catalogue (SDM 26.2-26.4), in the order the processor applies it')
    .option('--json', 'print a JSON array of { id, sdm, stage, class, description }')
    .action((opts: { json?: boolean }) => {
      const rows = ENTRY_CHECKS.map((c) => ({ id: c.id, sdm: c.sdm, stage: c.stage, class: c.class, description: c.description, qualification: c.qualification, ref: c.ref }));
      if (opts.json) {
        writeJsonValue(rows);
        return;
      }
      for (const c of rows) writeLine(`${c.id.padEnd(44)} SDM ${c.sdm.padEnd(12)} ${c.class.padEnd(15)} ${c.description}`);
      const byStage = new Map<string, number>();
      for (const c of rows) byStage.set(c.stage, (byStage.get(c.stage) ?? 0) + 1);
      writeLine(`${rows.length} checks: ${[...byStage].map(([s, n]) => `${n} ${s}`).join(', ')}`);
    });
}
