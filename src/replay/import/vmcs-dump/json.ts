// Reads turtles' documented JSON VMCS state (docs/vmcs-json.md, schemas/vmcs-state.schema.json):
// { "format": "turtles.vmcs.v1", "cpu"?, "hostIa32e"?, "fields": { NAME: "0x…" | safe integer }, "memory"? }.
// Must not: accept a value that lost bits (numbers above 2^53 - 1), an unknown field name or member, or a value
// wider than its field; each is bad input naming the line.
import { PartialVmcs, fieldByName, widthMask } from '../../../cpu/vmcs.js';
import { dumpError, emptyDerived, type ParseResult } from './types.js';

export const VMCS_JSON_FORMAT = 'turtles.vmcs.v1';
const TOP_KEYS = new Set(['format', 'cpu', 'hostIa32e', 'fields', 'memory', 'comment']);
const HEX = /^0x[0-9a-fA-F]{1,16}$/;

/** 1-based line of a character offset. */
function lineAt(text: string, offset: number): number {
  let n = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** Line of the first `"key"` member inside the object that starts after `from` (best effort for messages). */
function memberLine(text: string, key: string, from = 0): number {
  const esc = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`"${esc}"\\s*:`, 'g');
  re.lastIndex = from;
  const m = re.exec(text);
  return m ? lineAt(text, m.index) : 1;
}

function syntaxLine(text: string, message: string): number {
  const lc = /line (\d+) column \d+/.exec(message);
  if (lc) return Number(lc[1]);
  const pos = /position (\d+)/.exec(message);
  if (pos) return lineAt(text, Number(pos[1]));
  return lineAt(text, text.length);
}

function toValue(v: unknown): bigint | string {
  if (typeof v === 'string') return HEX.test(v) ? BigInt(v) : `a hex string "0x…" of 1–16 digits, found "${v}"`;
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : `a non-negative integer up to 2^53 - 1 (write larger values as "0x…" strings), found ${v}`;
  return `a "0x…" string or a number, found ${JSON.stringify(v)}`;
}

export function parseJsonVmcs(text: string, file: string): ParseResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    return dumpError(file, syntaxLine(text, msg), `valid JSON (${msg.replace(/^JSON\.parse: /, '')})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return dumpError(file, 1, 'a JSON object { "format": "turtles.vmcs.v1", "fields": { … } }');
  const o = doc as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!TOP_KEYS.has(k)) return dumpError(file, memberLine(text, k), `one of the members format, cpu, hostIa32e, fields, memory, comment; found unknown member "${k}"`);
  if (o['format'] !== VMCS_JSON_FORMAT) return dumpError(file, memberLine(text, 'format'), `"format": "${VMCS_JSON_FORMAT}"`);
  if (o['cpu'] !== undefined && typeof o['cpu'] !== 'string') return dumpError(file, memberLine(text, 'cpu'), '"cpu": a CPU preset id string');
  if (o['hostIa32e'] !== undefined && typeof o['hostIa32e'] !== 'boolean') return dumpError(file, memberLine(text, 'hostIa32e'), '"hostIa32e": true or false');
  const fields = o['fields'];
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return dumpError(file, memberLine(text, 'fields'), '"fields": an object of VMCS field names to values');
  const fieldsAt = text.search(/"fields"\s*:/);
  const vmcs = new PartialVmcs();
  const fieldLines = new Map<number, number>();
  for (const [name, raw] of Object.entries(fields as Record<string, unknown>)) {
    const line = memberLine(text, name, Math.max(fieldsAt, 0));
    const def = fieldByName(name);
    if (!def) return dumpError(file, line, `a VMCS field name (see \`turtles fields\`); unknown field "${name}"`);
    if (def.access === 'high') return dumpError(file, line, `the full field name ${name.replace(/_HIGH$/, '')} with the whole 64-bit value; "${name}" is the high-half access encoding`);
    const v = toValue(raw);
    if (typeof v === 'string') return dumpError(file, line, `${name}: ${v}`);
    if ((v & widthMask(def.width)) !== v) return dumpError(file, line, `${name}: a value that fits the ${def.width}-bit field, found 0x${v.toString(16)}`);
    vmcs.set(def.encoding, v);
    fieldLines.set(def.encoding, line);
  }
  const memory = new Map<bigint, bigint>();
  const mem = o['memory'];
  if (mem !== undefined) {
    if (typeof mem !== 'object' || mem === null || Array.isArray(mem)) return dumpError(file, memberLine(text, 'memory'), '"memory": an object of "0x<address>": "0x<qword>"');
    const memAt = text.search(/"memory"\s*:/);
    for (const [addr, raw] of Object.entries(mem as Record<string, unknown>)) {
      const line = memberLine(text, addr, Math.max(memAt, 0));
      if (!HEX.test(addr)) return dumpError(file, line, `a memory address "0x…" (1–16 hex digits), found "${addr}"`);
      const a = BigInt(addr);
      if ((a & 7n) !== 0n) return dumpError(file, line, `an 8-byte aligned memory address, found ${addr}`);
      if (typeof raw !== 'string' || !HEX.test(raw)) return dumpError(file, line, `memory ${addr}: a qword "0x…" string (1–16 hex digits)`);
      memory.set(a, BigInt(raw));
    }
  }
  const derived = emptyDerived();
  derived.layout.push(VMCS_JSON_FORMAT);
  const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  const base = { format: 'turtles-json' as const, vmcs, fieldLines, derived, lines, unmapped: [], memory };
  return { ok: true, value: { ...base, ...(o['cpu'] !== undefined ? { cpu: o['cpu'] as string } : {}), ...(o['hostIa32e'] !== undefined ? { hostIa32e: o['hostIa32e'] as boolean } : {}) } };
}

/** Little-endian read of `size` bytes at `addr` from a qword map (8-byte aligned keys); undefined if any byte is missing. */
export function readQwordMemory(memory: ReadonlyMap<bigint, bigint>, addr: bigint, size: 4 | 8): bigint | undefined {
  let v = 0n;
  for (let i = 0; i < size; i++) {
    const a = addr + BigInt(i);
    const q = memory.get(a & ~7n);
    if (q === undefined) return undefined;
    v |= ((q >> ((a & 7n) * 8n)) & 0xffn) << BigInt(8 * i);
  }
  return v;
}
