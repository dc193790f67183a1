// Runs the turtles program in-process and captures what it prints, for CLI tests.
import { run } from '../../src/cli/program.js';
import { setOutputSink } from '../../src/cli/output.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const prev = setOutputSink({ out: (t) => void (stdout += t), err: (t) => void (stderr += t), isTTY: false });
  try {
    const code = await run(args);
    return { code, stdout, stderr };
  } finally {
    setOutputSink(prev);
  }
}
