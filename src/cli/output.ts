// Writing results: JSON with a schemaVersion, plain text, and progress only when stderr is a terminal.
// Must not: decide results; commands hand it finished values.

export const SCHEMA_VERSION = 1;

/** JSON.stringify that writes bigint as a 0x-prefixed hex string (the JSON outputs' convention for 64-bit values). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v), 2);
}

export function writeJson(value: object): void {
  process.stdout.write(toJson({ schemaVersion: SCHEMA_VERSION, ...value }) + '\n');
}

export function writeLine(text = ''): void {
  process.stdout.write(text + '\n');
}

export function progressEnabled(): boolean {
  return Boolean(process.stderr.isTTY) && !process.env['CI'];
}
