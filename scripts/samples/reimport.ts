// `npm run reimport`: regenerate the bundled imported traces (traces/imported/manifest.json) by running
// `turtles import <source> -o <trace>` in-process for each, and say which ones changed.
// Must not: run anything but the import command; an importer change that alters a trace shows up in the golden test.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run } from '../../src/cli/program.js';
import { setOutputSink } from '../../src/cli/output.js';

export interface ImportedTrace {
  readonly trace: string;
  readonly source: string;
}

export function loadImportedTraces(root: string): ImportedTrace[] {
  return (JSON.parse(readFileSync(join(root, 'traces/imported/manifest.json'), 'utf8')) as { traces: ImportedTrace[] }).traces;
}

/** Import `source` to `out` (relative to `root`, or absolute); returns the exit code and what the command printed. */
export async function reimport(root: string, source: string, out: string): Promise<{ code: number; text: string }> {
  let text = '';
  const prev = setOutputSink({ out: (t) => void (text += t), err: (t) => void (text += t), isTTY: false });
  try {
    return { code: await run(['import', resolve(root, source), '-o', resolve(root, out)]), text };
  } finally {
    setOutputSink(prev);
  }
}

if (process.argv[1]?.endsWith('/reimport.js')) {
  const root = join(import.meta.dirname, '../../..');
  let failed = 0;
  for (const t of loadImportedTraces(root)) {
    const before = existsSync(join(root, t.trace)) ? readFileSync(join(root, t.trace)) : undefined;
    const r = await reimport(root, t.source, t.trace);
    const after = r.code === 0 ? readFileSync(join(root, t.trace)) : undefined;
    const state = r.code !== 0 ? `FAILED (exit ${r.code})` : before === undefined ? 'created' : before.equals(after!) ? 'unchanged' : 'CHANGED';
    if (r.code !== 0) failed++;
    process.stdout.write(`${state.padEnd(18)} ${t.trace}${r.code !== 0 ? `\n${r.text}` : ''}\n`);
  }
  process.exitCode = failed ? 1 : 0;
}
