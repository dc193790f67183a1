// Strips what logging and mail add around a payload line (dmesg/journal timestamps, `(XEN)`, `kvm_intel:`,
// trace_printk `bprint: func:`, nested `> ` quoting, `ï¿½` runs) and rejoins soft-wrapped lines, for every text
// importer. Grammar: shared/reference/trace-formats.md §1. Raw ftrace/trace-cmd/perf event prefixes are parsed
// by the ftrace importers, not here. Must not: interpret payloads, read files or drop a line without saying so.

/** One kind of prefix that was removed from a line. */
export type PrefixKind = 'quote' | 'dmesg-time' | 'dmesg-caller' | 'elided-time' | 'journal' | 'xen' | 'xen-time' | 'pr-fmt' | 'trace-printk';

/** A physical line of the input after prefix stripping. `line` is 1-based. */
export interface PhysicalLine {
  readonly line: number;
  readonly raw: string;
  /** The payload: prefixes removed, mojibake runs replaced by one space, trailing whitespace kept (wraps need it). */
  readonly text: string;
  readonly prefixes: readonly PrefixKind[];
  /** Mail quote depth (`> > x` is 2). */
  readonly quoteDepth: number;
  /** The line carried a per-record prefix (timestamp, journal, `(XEN)`, trace_printk); wrapped continuations do not. */
  readonly recordPrefix: boolean;
}

/** A logical line: one physical line, or several joined because the later ones are soft-wrap continuations. */
export interface LogicalLine {
  /** First physical line number. */
  readonly line: number;
  /** Every physical line number that makes up this logical line. */
  readonly lines: readonly number[];
  readonly text: string;
  readonly prefixes: readonly PrefixKind[];
}

/** What a payload grammar can tell the joiner. Both optional; without them only prefix evidence is used. */
export interface WrapGrammar {
  /** The text begins a line of the payload format (so it is never a continuation). */
  startsRecord?(text: string): boolean;
  /** The text looks cut (e.g. ends in `,` or `=`): the next line continues it unless it starts a record. */
  incomplete?(text: string): boolean;
  /** The text is certainly cut (a known form missing parts): the next line continues it even if it looks like a record. */
  mustContinue?(text: string): boolean;
}

// Mojibake that mail clients leave for non-breaking spaces and other non-ASCII bytes decoded twice.
const MOJIBAKE = /(?:ï¿½|\uFFFD|Â(?=\s))+/g;

interface Stripper {
  kind: PrefixKind;
  re: RegExp;
  record: boolean;
}

// Order matters only within one pass; stripping repeats until nothing matches, so combinations such as
// `Jun 24 17:25:51 host kernel: [ 12.3] kvm_intel: ` and `(XEN) [2019-11-02 14:09:46] ` come off in any order.
const STRIPPERS: readonly Stripper[] = [
  // Raw ftrace line carrying a trace_printk/trace_puts record: `<comm>-<pid> [cpu] flags ts: bprint: func: text`.
  // Only the record type and the function name are ours to remove; the function name is a C identifier
  // in lower case, which no dump line starts with (dump lines start with register or section names).
  { kind: 'trace-printk', re: /^(?:.*?\s)?(?:bprint|bputs|print):\s+(?:[a-z_][a-z0-9_]*:\s)?/, record: true },
  { kind: 'journal', re: /^(?:[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)?) \S+ kernel: /, record: true },
  { kind: 'dmesg-time', re: /^\[\s*\d+\.\d+\]\s?/, record: true },
  { kind: 'dmesg-caller', re: /^\[\s*[TC]\d+\]\s?/, record: true },
  { kind: 'elided-time', re: /^\[(?:…|\.\.\.)\]\s?/, record: true },
  { kind: 'xen', re: /^\(XEN\)(?: |$)/, record: true },
  { kind: 'xen-time', re: /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?\]\s?/, record: false },
  { kind: 'pr-fmt', re: /^kvm_intel: /, record: false },
];

// A mail quote marker is `>` followed by a space, another `>` or the end of the line. Xen's `>>> Domain N <<<`
// banner would look like three quote levels, so a line that ends in `<<<` keeps its leading `>`s.
const QUOTE = /^[ \t]*>(?=[ \t>]|$)[ \t]?/;

/** Strip the prefixes of one physical line. */
export function stripLinePrefixes(raw: string, line = 0): PhysicalLine {
  let text = raw.replace(/\r$/, '').replace(MOJIBAKE, ' ');
  const prefixes: PrefixKind[] = [];
  let quoteDepth = 0;
  let recordPrefix = false;
  if (!/<<<\s*$/.test(text)) {
    for (let m = QUOTE.exec(text); m; m = QUOTE.exec(text)) {
      text = text.slice(m[0].length);
      quoteDepth++;
    }
  }
  if (quoteDepth > 0) prefixes.push('quote');
  for (let pass = 0; pass < 8; pass++) {
    let hit = false;
    for (const s of STRIPPERS) {
      const m = s.re.exec(text);
      if (m && m[0].length > 0) {
        text = text.slice(m[0].length);
        prefixes.push(s.kind);
        recordPrefix ||= s.record;
        hit = true;
      }
    }
    if (!hit) break;
  }
  return { line, raw, text, prefixes, quoteDepth, recordPrefix };
}

/** Split a text into physical lines (LF or CRLF) and strip each one. */
export function physicalLines(text: string): PhysicalLine[] {
  const rows = text.split('\n');
  if (rows.length > 0 && rows[rows.length - 1] === '') rows.pop();
  return rows.map((r, i) => stripLinePrefixes(r, i + 1));
}

/**
 * Rejoin soft-wrapped lines. A non-blank line continues the previous one when
 *  - it has no per-record prefix while the previous line had one (a mail client wrapped a dmesg/`(XEN)` line), or
 *  - the grammar says the previous text is incomplete,
 * and in both cases the grammar does not recognise the line as the start of a record of its own; or when the
 * grammar says the previous line is certainly cut and this line carries no record prefix of its own.
 * The text is joined as is: format=flowed wraps keep the space at the end of the first part.
 */
export function joinSoftWraps(lines: readonly PhysicalLine[], grammar: WrapGrammar = {}): LogicalLine[] {
  const out: { line: number; lines: number[]; text: string; prefixes: PrefixKind[]; record: boolean }[] = [];
  for (const l of lines) {
    const prev = out[out.length - 1];
    const blank = l.text.trim() === '';
    if (prev && !blank && prev.text.trim() !== '') {
      const starts = grammar.startsRecord?.(l.text.trim()) ?? false;
      const prefixWrap = prev.record && !l.recordPrefix;
      const grammarWrap = grammar.incomplete?.(prev.text) ?? false;
      const forced = !l.recordPrefix && (grammar.mustContinue?.(prev.text) ?? false);
      if (forced || (!starts && (prefixWrap || grammarWrap))) {
        prev.text += l.text;
        prev.lines.push(l.line);
        continue;
      }
    }
    out.push({ line: l.line, lines: [l.line], text: l.text, prefixes: [...l.prefixes], record: l.recordPrefix });
  }
  return out.map(({ line, lines: ls, text, prefixes }) => ({ line, lines: ls, text, prefixes }));
}

/** physicalLines + joinSoftWraps. */
export function logicalLines(text: string, grammar: WrapGrammar = {}): LogicalLine[] {
  return joinSoftWraps(physicalLines(text), grammar);
}
