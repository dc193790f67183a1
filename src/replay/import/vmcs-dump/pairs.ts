// Tokenizer for the `Name = value` / `name=value` runs that KVM, Xen and QEMU dumps print, so one line form
// accepts the spacing, comma and wrapping variations seen in real logs.
// Must not: know field names; callers map keys to fields. Values stay hex text until the caller converts them.
import { parseHex } from '../../../cpu/u64.js';

export interface Pair {
  /** The key as printed, with an optional `Scope:` prefix joined by ':' (e.g. `CR0:actual`, `VMExit:ilen`). */
  readonly key: string;
  /** Hex digits without 0x; `a|b` for KVM's `SVI|RVI = 00|00`. */
  readonly value: string;
  /** A parenthesised note after the value: Xen's cached register, a symbol, KVM's `effective`. */
  readonly note?: string;
}

export interface ScanResult {
  readonly scope?: string;
  readonly pairs: Pair[];
  /** Text the tokenizer could not read (empty when the whole line was pairs). */
  readonly rest: string;
}

const SCOPE = /^([A-Za-z][A-Za-z0-9]*):\s+(?=[A-Za-z_][\w ]*?\s*=)/;
const KEY = /([A-Za-z][A-Za-z0-9_ |()\-.]*?)\s*=\s*/y;
const HEX = /[0-9a-fA-F]/;

/**
 * Read `key = value` pairs from a line. `maxDigits(key)` caps how many hex digits a value may take (the printf
 * width), which keeps a value and the next key apart when a wrap swallowed the space between them.
 */
export function scanPairs(text: string, maxDigits: (key: string) => number | undefined = () => undefined): ScanResult {
  let s = text.trim();
  let scope: string | undefined;
  const sm = SCOPE.exec(s);
  if (sm) {
    scope = sm[1]!;
    s = s.slice(sm[0].length);
  }
  const pairs: Pair[] = [];
  let pos = 0;
  for (;;) {
    while (pos < s.length && /[\s,]/.test(s[pos]!)) pos++;
    if (pos >= s.length) break;
    KEY.lastIndex = pos;
    const km = KEY.exec(s);
    if (!km) break;
    const bare = km[1]!.trim();
    const key = scope ? `${scope}:${bare}` : bare;
    let p = KEY.lastIndex;
    if (s.startsWith('0x', p) || s.startsWith('0X', p)) p += 2;
    const limit = maxDigits(key) ?? Infinity;
    let value = '';
    while (p < s.length && value.length < limit && HEX.test(s[p]!)) value += s[p++];
    if (value === '') break;
    if (s[p] === '|' && HEX.test(s[p + 1] ?? '')) {
      value += s[p++];
      while (p < s.length && HEX.test(s[p]!)) value += s[p++];
    }
    let note: string | undefined;
    const nm = /^\s*\(([^)]*)\)/.exec(s.slice(p));
    if (nm) {
      note = nm[1]!;
      p += nm[0].length;
    }
    pairs.push(note === undefined ? { key, value } : { key, value, note });
    pos = p;
  }
  return scope === undefined ? { pairs, rest: s.slice(pos).trim() } : { scope, pairs, rest: s.slice(pos).trim() };
}

/** Hex text to bigint (the tokenizer and the line regexes only pass hex digits). */
export function hexValue(digits: string): bigint {
  const v = parseHex(digits);
  if (v === undefined) throw new Error(`turtles bug: "${digits}" reached hexValue but is not hex`);
  return v;
}
