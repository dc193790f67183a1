// Splits ftrace-family text (raw ftrace, trace-cmd report, perf script, author-stripped lines) into records
// {event, payload}: parses line prefixes (trace-formats.md §1), strips mail damage through line-prefix.ts, rejoins
// wrapped records (two-line trace-cmd style, a break after `event:`, soft wraps) and accounts for every line.
// Must not: interpret payloads beyond asking the grammar whether a joined payload now parses.
import { stripLinePrefixes, type PhysicalLine } from '../line-prefix.js';
import type { LineAccount } from './stats.js';

export type PrefixStyle = 'ftrace' | 'perf' | 'perf-top' | 'bare';

export interface TraceRecord {
  /** First physical line (1-based). */
  readonly line: number;
  /** Number of physical lines the record spans. */
  readonly span: number;
  readonly style: PrefixStyle;
  readonly comm?: string;
  readonly pid?: number;
  readonly cpu?: number;
  /** irq-flags column (4 or 5 characters) when present. */
  readonly flags?: string;
  readonly timestamp?: string;
  /** Event name without a subsystem prefix ("kvm_exit"); perf's "kvm:kvm_exit" gives system "kvm". */
  readonly event: string;
  readonly system?: string;
  /** Payload with whitespace runs collapsed and trimmed. */
  readonly payload: string;
  /** The payload as read (joined parts, original spacing). */
  readonly rawPayload: string;
  /** trace-cmd pads the event name to a column: two or more spaces followed `event:`. */
  readonly padded: boolean;
  /** The header named the event but the payload was missing entirely (e.g. a truncated last line). */
  readonly truncated: boolean;
  /** The record was the two-line trace-cmd style (header line, then `event: payload` on the next line). */
  readonly twoLine: boolean;
  /** Source prefixes other than the ftrace header (quote, trace-printk, ...). */
  readonly damage: readonly string[];
}

/** Does this payload parse completely for this event? Used only to decide whether to join wrapped lines. */
export type CompletenessCheck = (event: string, payload: string) => boolean;

/** Grammar hooks for the joiner. */
export interface RecordGrammar {
  readonly complete: CompletenessCheck;
  /** A complete payload that a wrap may still have cut at a field boundary (try longer joins too). */
  readonly extendable?: CompletenessCheck;
}

// comm-pid [cpu] [flags] ts: [event:] rest. The comm may contain spaces and slashes ("CPU 23/KVM"); trace-cmd
// report may add a "(tgid)" column; older trace-cmd has no flags column.
const FTRACE_HEADER =
  /^\s*(?<comm>\S.*?)-(?<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?<cpu>\d{1,4})\]\s+(?:(?<flags>[.a-zA-Z0-9]{4,5})\s+)?(?<ts>\d+\.\d+):(?<rest>.*)$/;
// perf script: comm  pid[/tid] [cpu] ts:  sys:event: payload (pid separated by whitespace, not '-').
const PERF_HEADER = /^\s*(?<comm>\S.*?)\s+(?<pid>\d+)(?:\/\d+)?\s+\[(?<cpu>\d{1,4})\]\s+(?<ts>\d+\.\d+):(?<rest>.*)$/;
// Event names an author-stripped line may start with. Narrow on purpose: prose such as "Note: ..." is not an event.
const EVENT_NAME = /^(?:kvm[a-z0-9_]*|kvmmmu[a-z0-9_]*|tracing_mark_write|bprint|bputs|print)$/;
// `[sys:]event:` then payload, after the header's "ts:".
const EVENT_REST = /^(?<gap>\s*)(?:(?<sys>[a-z_][a-z0-9_]*):)?(?<event>[a-z_][a-z0-9_]*):(?<pad>\s*)(?<payload>.*)$/i;

interface Head {
  style: PrefixStyle;
  comm?: string;
  pid?: number;
  cpu?: number;
  flags?: string;
  timestamp?: string;
  event?: string;
  system?: string;
  payload: string;
  padded: boolean;
  /** A bare word after "ts:" with no colon (a record cut off after its event name). */
  cutEvent?: string;
}

function parseRest(rest: string, h: Omit<Head, 'payload' | 'padded'>): Head {
  const m = EVENT_REST.exec(rest);
  if (m?.groups) {
    const event = m.groups['event']!;
    const system = m.groups['sys'];
    return { ...h, event, ...(system ? { system } : {}), payload: m.groups['payload']!, padded: m.groups['pad']!.length >= 2 };
  }
  const cut = rest.trim();
  if (/^[a-z_][a-z0-9_]*$/i.test(cut)) return { ...h, cutEvent: cut, payload: '', padded: false };
  return { ...h, payload: rest.trim(), padded: false };
}

function num(s: string | undefined): number | undefined {
  return s === undefined ? undefined : Number.parseInt(s, 10);
}

// perf top: "  12.34%  <trace output>" — an aggregate share of samples, with no event name on the line. The
// indent and the two-space column gap keep prose such as "50.5% faster" out.
const PERF_TOP = /^\s+(?<pct>\d{1,3}\.\d+%)\s{2,}(?<payload>\S.*)$/;
// trace-cmd report's preamble and perf top's column header.
const PREAMBLE = /^\s*(?:version = \d+|cpus=\d+|CPU \d+ is empty|Overhead\s+Trace output)\s*$/;

/** Parse the prefix of one (quote-stripped) line; undefined when the line is not a trace record start. */
export function parseHead(text: string): Head | undefined {
  let m = FTRACE_HEADER.exec(text);
  if (m?.groups) {
    const g = m.groups;
    const flags = g['flags'];
    return parseRest(g['rest']!, {
      style: 'ftrace', comm: g['comm']!.trim(), pid: num(g['pid']), cpu: num(g['cpu']), ...(flags ? { flags } : {}), timestamp: g['ts']!,
    });
  }
  m = PERF_HEADER.exec(text);
  if (m?.groups) {
    const g = m.groups;
    const head = parseRest(g['rest']!, { style: 'perf', comm: g['comm']!.trim(), pid: num(g['pid']), cpu: num(g['cpu']), timestamp: g['ts']! });
    // Without "sys:event:" this is not perf output (and a "ts:" alone is too weak a signal).
    return head.event !== undefined && head.system !== undefined ? head : undefined;
  }
  const top = PERF_TOP.exec(text);
  if (top?.groups) return { style: 'perf-top', event: 'perf_top', payload: `${top.groups['pct']} ${top.groups['payload']}`, padded: false };
  const b = EVENT_REST.exec(text);
  if (b?.groups && b.groups['payload'] !== undefined) {
    const event = b.groups['event']!;
    const system = b.groups['sys'];
    if (EVENT_NAME.test(event) && (system === undefined || /^kvm\w*$/.test(system))) {
      return { style: 'bare', event, ...(system ? { system } : {}), payload: b.groups['payload']!, padded: b.groups['pad']!.length >= 2 };
    }
  }
  return undefined;
}

const collapse = (s: string): string => s.replace(/\s+/g, ' ').trim();

interface Line {
  readonly phys: PhysicalLine;
  readonly text: string;
  readonly blank: boolean;
  readonly comment: boolean;
  readonly head?: Head;
}

function classify(raw: string, n: number): Line {
  const phys = stripLinePrefixes(raw, n);
  // A trace_printk record ("... bprint: func: text") loses its ftrace header to the stripper; keep it whole as a
  // bprint record so the text survives for the VMCS-dump importers.
  if (phys.prefixes.includes('trace-printk')) {
    return { phys, text: phys.text, blank: false, comment: false, head: { style: 'ftrace', event: 'bprint', payload: phys.text, padded: false } };
  }
  const text = phys.text;
  const blank = text.trim() === '';
  const comment = !blank && (text.trimStart().startsWith('#') || PREAMBLE.test(text));
  const head = blank || comment ? undefined : parseHead(text);
  return { phys, text, blank, comment, ...(head ? { head } : {}) };
}

/**
 * Split physical lines into records. Lines that are not part of a record are counted in `account` as "blank",
 * "comment" or "prose"; continuation lines as "continuation". Record first lines are left for the caller to
 * count (mapped, raw, unmapped).
 */
export function splitRecords(lines: readonly string[], grammar: RecordGrammar, account: LineAccount): TraceRecord[] {
  const { complete } = grammar;
  const extendable = grammar.extendable ?? (() => false);
  const all = lines.map((raw, i) => classify(raw, i + 1));
  const out: TraceRecord[] = [];
  const canContinue = (l: Line | undefined, depth: number): l is Line =>
    l !== undefined && !l.blank && !l.comment && l.head === undefined && l.phys.quoteDepth === depth;
  for (let i = 0; i < all.length; ) {
    const l = all[i]!;
    if (l.blank) {
      account.skip('blank');
      i++;
      continue;
    }
    if (l.comment) {
      account.skip('comment');
      i++;
      continue;
    }
    if (!l.head) {
      account.skip('prose');
      i++;
      continue;
    }
    const depth = l.phys.quoteDepth;
    let head: Head = l.head;
    let used = 1;
    let twoLine = false;
    let truncated = false;
    // Two-line trace-cmd style, or a header whose event went to the next line: take event and payload from there.
    if (head.event === undefined && head.cutEvent === undefined && head.payload === '') {
      const next = all[i + 1];
      if (next?.head?.style === 'bare' && next.phys.quoteDepth === depth && next.head.event !== undefined) {
        head = { ...head, event: next.head.event, ...(next.head.system ? { system: next.head.system } : {}), payload: next.head.payload, padded: next.head.padded };
        used = 2;
        twoLine = true;
      }
    }
    if (head.event === undefined && head.cutEvent !== undefined) {
      // "...: kvm_exit" with nothing after: the line was cut. A wrapped "kvm_exit:" would have kept its colon.
      head = { ...head, event: head.cutEvent };
      truncated = true;
    }
    // A header with text but no event name stays a record of unknown kind ('') so it is reported, not lost.
    const event = head.event ?? '';
    const parts = [head.payload];
    // Join soft-wrapped continuation lines only when that makes the payload parse; a payload that parses but may
    // have been cut at a field boundary takes the longest join that still parses.
    const whole = complete(event, collapse(head.payload));
    if (!truncated && event !== '' && (!whole || extendable(event, collapse(head.payload)))) {
      let best = 0;
      for (let k = 1; k <= 6 && canContinue(all[i + used + k - 1], depth); k++) {
        const candidate = [...parts, ...all.slice(i + used, i + used + k).map((x) => x.text)];
        if (complete(event, collapse(candidate.join(' ')))) {
          best = k;
          if (!extendable(event, collapse(candidate.join(' ')))) break;
        }
      }
      if (best > 0) {
        parts.push(...all.slice(i + used, i + used + best).map((x) => x.text));
        used += best;
      }
    }
    const rawPayload = parts.join(' ');
    if (!truncated && collapse(rawPayload) === '' && event !== '') truncated = true;
    out.push({
      line: l.phys.line, span: used, style: head.style, ...(head.comm !== undefined ? { comm: head.comm } : {}),
      ...(head.pid !== undefined ? { pid: head.pid } : {}), ...(head.cpu !== undefined ? { cpu: head.cpu } : {}),
      ...(head.flags !== undefined ? { flags: head.flags } : {}), ...(head.timestamp !== undefined ? { timestamp: head.timestamp } : {}),
      event, ...(head.system !== undefined ? { system: head.system } : {}), payload: collapse(rawPayload), rawPayload,
      padded: head.padded, truncated, twoLine, damage: [...new Set(l.phys.prefixes)],
    });
    account.skip('continuation', used - 1);
    i += used;
  }
  return out;
}
