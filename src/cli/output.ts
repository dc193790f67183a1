// Writing results: JSON with a schemaVersion, plain text, and progress only when stderr is a terminal.
// All CLI output goes through the sink here so tests can run commands in-process and read what they print.
// Must not: decide results; commands hand it finished values.

export const SCHEMA_VERSION = 1;

export interface OutputSink {
  out(text: string): void;
  err(text: string): void;
  isTTY: boolean;
}

const processSink: OutputSink = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  get isTTY() {
    return Boolean(process.stderr.isTTY) && !process.env['CI'];
  },
};

let sink: OutputSink = processSink;

/** Replace the sink (tests); returns the previous one. */
export function setOutputSink(next: OutputSink | null): OutputSink {
  const prev = sink;
  sink = next ?? processSink;
  return prev;
}

/** JSON.stringify that writes bigint as a 0x-prefixed hex string (the JSON outputs' convention for 64-bit values). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v), 2);
}

/** A JSON document with schemaVersion first. */
export function writeJson(value: object): void {
  sink.out(toJson({ schemaVersion: SCHEMA_VERSION, ...value }) + '\n');
}

/** A bare JSON value (arrays such as `fields --json`). */
export function writeJsonValue(value: unknown): void {
  sink.out(toJson(value) + '\n');
}

export function writeLine(text = ''): void {
  sink.out(text + '\n');
}

export function writeErr(text: string): void {
  sink.err(text.endsWith('\n') ? text : text + '\n');
}

/** Progress lines only on a terminal, never when piped or in CI. */
export function progress(text: string): void {
  if (sink.isTTY) sink.err(`\r${text}`);
}
