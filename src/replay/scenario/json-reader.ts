// Checked reading of untrusted JSON values for the scenario parser: each accessor takes a value and its JSON path
// ("$.l1.policy.rules[2].actions[0]") and either returns the typed value or throws a one-line ScenarioError
// naming the source, the path and what was expected. Must not: know the scenario schema (parse.ts does).
import { ScenarioError } from './types.js';

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const HEX64 = /^0x[0-9a-fA-F]{1,16}$/;

export type JsonObject = { readonly [key: string]: unknown };

/** A short rendering of a JSON value for "got …" in messages. */
function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

export function keyPath(path: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

export class JsonReader {
  constructor(readonly source: string) {}

  fail(path: string, expected: string, got?: unknown): never {
    throw new ScenarioError(this.source, path, arguments.length >= 3 ? `expected ${expected}, got ${shown(got)}` : expected);
  }

  /** An object whose keys are all in `allowed`; `required` ones must be present. */
  object(v: unknown, path: string, allowed: readonly string[], required: readonly string[] = []): JsonObject {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'an object', v);
    const o = v as JsonObject;
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.fail(keyPath(path, k), `no such member (allowed here: ${allowed.join(', ')})`);
    }
    for (const k of required) if (o[k] === undefined) this.fail(keyPath(path, k), `a required member "${k}"`);
    return o;
  }

  array(v: unknown, path: string, max = 1 << 20): readonly unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'an array', v);
    if (v.length > max) this.fail(path, `an array of at most ${max} items, got ${v.length}`);
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, 'a string', v);
    return v;
  }

  boolean(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail(path, 'true or false', v);
    return v;
  }

  oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(path, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
    return v as T;
  }

  /** An integer in [min, max] given as a JSON number, or as a "0x…" hex string when `hexOk`. */
  int(v: unknown, path: string, min: number, max: number, hexOk = true): number {
    let n: number | undefined;
    if (typeof v === 'number' && Number.isInteger(v)) n = v;
    else if (hexOk && typeof v === 'string' && /^0x[0-9a-fA-F]{1,8}$/.test(v)) n = Number.parseInt(v.slice(2), 16);
    const range = `[${min}, ${max < 2 ** 31 ? max : `0x${max.toString(16)}`}]`;
    if (n === undefined) this.fail(path, `an integer in ${range}${hexOk ? ' (number or "0x…" hex string)' : ''}`, v);
    if (n < min || n > max) this.fail(path, `an integer in ${range}`, v);
    return n;
  }

  u32(v: unknown, path: string): number {
    return this.int(v, path, 0, 0xffff_ffff);
  }

  /** A 64-bit value: a "0x…" hex string of at most 16 digits (JSON numbers cannot hold 64 bits exactly). */
  u64(v: unknown, path: string): bigint {
    if (typeof v !== 'string' || !HEX64.test(v)) this.fail(path, 'a 64-bit value as a "0x…" hex string of 1-16 digits', v);
    const x = BigInt(v);
    if (x > U64_MAX) this.fail(path, 'a value below 2^64', v);
    return x;
  }

  /** Bytes as hex digits; spaces between bytes are allowed. Returned lowercase without separators. */
  hexBytes(v: unknown, path: string, maxBytes: number): string {
    const s = this.string(v, path).replace(/\s+/g, '').toLowerCase();
    if (!/^([0-9a-f]{2})*$/.test(s)) this.fail(path, 'hex bytes (pairs of hex digits, spaces allowed between bytes)', v);
    if (s.length / 2 > maxBytes) this.fail(path, `at most ${maxBytes} bytes, got ${s.length / 2}`);
    return s;
  }
}

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
