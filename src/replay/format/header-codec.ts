// TraceHeader ↔ protobuf Header record. The header travels once per file, outside the chunks, with its own CRC.
// Must not: know the file framing; errors are TraceFormatError ('invalid-event' on encode, 'bad-record' on decode).
import $protobuf from 'protobufjs/minimal.js';
import { pb, type PbHeader } from './pb.js';
import { fromLongBits, toLongBits } from './long.js';
import { TraceFormatError } from './errors.js';
import { L0_PROFILES, TRACE_KINDS, type Provenance, type TraceHeader } from './events.js';

const U64_MAX = 0xffff_ffff_ffff_ffffn;

export function encodeHeader(h: TraceHeader, formatVersion: number, file: string): Uint8Array {
  const bad = (what: string): TraceFormatError => new TraceFormatError('invalid-event', file, {}, `header: ${what}`);
  const u64 = (x: bigint, what: string) => {
    if (typeof x !== 'bigint' || x < 0n || x > U64_MAX) throw bad(`${what} must be a bigint in [0, 2^64)`);
    return toLongBits(x);
  };
  const u32 = (x: number, what: string): number => {
    if (!Number.isInteger(x) || x < 0 || x > 0xffff_ffff) throw bad(`${what} must be an integer in [0, 2^32)`);
    return x;
  };
  const profile = L0_PROFILES.indexOf(h.l0Profile);
  const kind = TRACE_KINDS.indexOf(h.kind);
  if (profile < 0) throw bad(`unknown L0 profile ${String(h.l0Profile)}`);
  if (kind < 0) throw bad(`unknown trace kind ${String(h.kind)}`);
  const msg: PbHeader = { formatVersion, producer: h.producer, l0Profile: profile, kind };
  if (h.cpu) {
    const idx = [...h.cpu.vmxMsrs.keys()].sort((a, b) => a - b);
    msg.cpu = { id: h.cpu.id, vmxMsrs: idx.map((i) => ({ index: u32(i, 'MSR index'), value: u64(h.cpu!.vmxMsrs.get(i)!, `MSR 0x${i.toString(16)}`) })) };
  }
  if (h.seed !== undefined) msg.seed = u64(h.seed, 'seed');
  if (h.provenance) {
    const p = h.provenance;
    msg.provenance = { sourceFormat: p.sourceFormat, sourceName: p.sourceName, description: p.description, assumptions: [...p.assumptions] };
    if (p.counts) {
      const reasons = Object.keys(p.counts.skipped).sort();
      msg.provenance.counts = {
        lines: u32(p.counts.lines, 'lines'), mapped: u32(p.counts.mapped, 'mapped'),
        skipped: reasons.map((r) => ({ reason: r, count: u32(p.counts!.skipped[r]!, `count of ${r}`) })),
      };
    }
  }
  if (h.scenario) msg.scenario = { format: h.scenario.format, name: h.scenario.name, json: h.scenario.json };
  return pb.Header.encode(msg).finish();
}

/** Decode a header record; `offset` is where it starts in the file (for messages). */
export function decodeHeader(bytes: Uint8Array, file: string, offset: number): { header: TraceHeader; formatVersion: number } {
  const bad = (what: string): TraceFormatError => new TraceFormatError('bad-record', file, { offset }, `header record: ${what}`);
  let m: ReturnType<typeof pb.Header.decode>;
  try {
    const reader = $protobuf.Reader.create(bytes);
    reader.discardUnknown = false;
    m = pb.Header.decode(reader);
  } catch (e) {
    throw bad(`does not decode (${(e as Error).message})`);
  }
  const hasUnknown = (o: unknown): boolean => (o as { $unknowns?: unknown } | null | undefined)?.$unknowns !== undefined;
  const nested = [m, m.cpu, m.provenance, m.provenance?.counts, m.scenario, ...(m.cpu?.vmxMsrs ?? []), ...(m.provenance?.counts?.skipped ?? [])];
  if (nested.some(hasUnknown)) throw bad('has fields this format version does not define');
  const l0Profile = L0_PROFILES[m.l0Profile ?? 0];
  const kind = TRACE_KINDS[m.kind ?? 0];
  if (l0Profile === undefined) throw bad(`unknown L0 profile ${m.l0Profile}`);
  if (kind === undefined) throw bad(`unknown trace kind ${m.kind}`);
  const header: { -readonly [K in keyof TraceHeader]: TraceHeader[K] } = { producer: m.producer ?? '', l0Profile, kind };
  if (m.cpu) {
    const msrs = new Map<number, bigint>();
    for (const x of m.cpu.vmxMsrs ?? []) {
      if (msrs.has(x.index ?? 0)) throw bad(`MSR 0x${(x.index ?? 0).toString(16)} listed twice`);
      msrs.set(x.index ?? 0, x.value == null ? 0n : fromLongBits(x.value));
    }
    header.cpu = { id: m.cpu.id ?? '', vmxMsrs: msrs };
  }
  if (m.seed != null) header.seed = fromLongBits(m.seed);
  if (m.provenance) {
    const p = m.provenance;
    const prov: { -readonly [K in keyof Provenance]: Provenance[K] } = {
      sourceFormat: p.sourceFormat ?? '', sourceName: p.sourceName ?? '', description: p.description ?? '', assumptions: [...(p.assumptions ?? [])],
    };
    if (p.counts) {
      const seen = new Set<string>();
      const entries: [string, number][] = [];
      for (const r of p.counts.skipped ?? []) {
        if (seen.has(r.reason ?? '')) throw bad(`skip reason "${r.reason}" listed twice`);
        seen.add(r.reason ?? '');
        entries.push([r.reason ?? '', r.count ?? 0]);
      }
      // fromEntries defines own properties, so no reason text (not even "__proto__") can touch the prototype.
      prov.counts = { lines: p.counts.lines ?? 0, mapped: p.counts.mapped ?? 0, skipped: Object.fromEntries(entries) };
    }
    header.provenance = prov;
  }
  if (m.scenario) header.scenario = { format: m.scenario.format ?? '', name: m.scenario.name ?? '', json: m.scenario.json ?? '' };
  return { header, formatVersion: m.formatVersion ?? 0 };
}
