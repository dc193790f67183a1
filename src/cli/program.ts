// The `turtles` program: parses arguments with commander and dispatches to src/cli/commands/*.
// Maps errors to exit codes (0 ok, 1 divergence/failing check, 2 bad input or usage) and one-line messages.
// Must not: contain engine logic, or call process.exit (tests run it in-process).
import { Command, CommanderError } from 'commander';
import { InputError, UsageError, ExitCode } from './errors.js';
import { registerCommands } from './commands/index.js';
import { writeErr } from './output.js';
import { TraceFormatError } from '../replay/format/index.js';
import { TraceIoError } from '../replay/io/trace-file.js';
import { ImportError } from '../replay/import/index.js';

export async function run(argv: string[]): Promise<number> {
  const program = new Command();
  const debug = argv.includes('--debug');
  program
    .name('turtles')
    .description('Replay and verify recorded x86 VM-exit traces for nested Intel VMX')
    .option('--debug', 'print stack traces for errors')
    .exitOverride()
    .configureOutput({ writeErr: (s) => writeErr(s), writeOut: (s) => writeErr(s) });
  let exitCode: number = ExitCode.OK;
  registerCommands(program, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return ExitCode.OK;
      return ExitCode.BAD_INPUT;
    }
    // Bad input from the trace format, the trace I/O layer and the importers: one line naming the file and place.
    if (e instanceof InputError || e instanceof UsageError || e instanceof TraceFormatError || e instanceof TraceIoError || e instanceof ImportError) {
      writeErr(`turtles: ${e.message}`);
      if (debug) writeErr(`${e.stack}`);
      return ExitCode.BAD_INPUT;
    }
    writeErr(`turtles: internal error (a bug in turtles): ${(e as Error).message}`);
    if (debug) writeErr(`${(e as Error).stack}`);
    return 3;
  }
}
