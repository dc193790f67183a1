// Runs the bundled samples of traces/samples.json through the turtles program in-process and compares each
// JSON report with its expected file (golden). Shared by `npm start`, `npm run accept` and the golden test.
// Must not: decide results itself; the expected files are the record of what turtles said when accepted.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/cli/program.js';
import { setOutputSink } from '../../src/cli/output.js';

export interface Sample {
  name: string;
  args: string[];
  expected: string;
  expectedExit: number;
}

export interface SampleOutcome {
  sample: Sample;
  exitCode: number;
  text: string;
  json: string;
  expectedJson: string | null;
  matches: boolean;
  stderr: string;
}

async function capture(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const prev = setOutputSink({ out: (t) => void (out += t), err: (t) => void (err += t), isTTY: false });
  try {
    return { code: await run(args), out, err };
  } finally {
    setOutputSink(prev);
  }
}

export function loadSamples(root: string): Sample[] {
  const doc = JSON.parse(readFileSync(join(root, 'traces/samples.json'), 'utf8')) as { samples: Sample[] };
  return doc.samples;
}

/** Run every sample from `root` (the repository root; sample paths are relative to it). */
export async function runSamples(root: string, opts: { accept?: boolean } = {}): Promise<SampleOutcome[]> {
  const cwd = process.cwd();
  process.chdir(root);
  try {
    const outcomes: SampleOutcome[] = [];
    for (const sample of loadSamples(root)) {
      const text = await capture(sample.args);
      const json = await capture([...sample.args, '--json']);
      const expectedPath = join(root, sample.expected);
      if (opts.accept) writeFileSync(expectedPath, json.out);
      const expectedJson = existsSync(expectedPath) ? readFileSync(expectedPath, 'utf8') : null;
      outcomes.push({
        sample,
        exitCode: json.code,
        text: text.out,
        json: json.out,
        expectedJson,
        matches: expectedJson === json.out && json.code === sample.expectedExit && text.code === json.code,
        stderr: text.err + json.err,
      });
    }
    return outcomes;
  } finally {
    process.chdir(cwd);
  }
}
