// Registers every subcommand on the commander program. Add one line per command module.
// Must not: implement commands itself.
import type { Command } from 'commander';
import { registerFields } from './fields.js';
import { registerChecks } from './checks.js';
import { registerCheckEntry } from './check-entry.js';
import { registerImport } from './import.js';
import { registerStats } from './stats.js';
import { registerReplay } from './replay.js';
import { registerRecord } from './record.js';

export type SetExitCode = (code: number) => void;

export function registerCommands(program: Command, setExit: SetExitCode): void {
  registerFields(program, setExit);
  registerChecks(program, setExit);
  registerCheckEntry(program, setExit);
  registerImport(program, setExit);
  registerStats(program, setExit);
  registerReplay(program, setExit);
  registerRecord(program, setExit);
}
