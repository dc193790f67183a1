// Picks the importer for a text by looking at its first lines: IRIS hex triples, perf script headers
// ("comm pid [cpu] ts: kvm:event:"), trace-cmd report (event names padded to a column, two-line records, its
// "version =" / "cpus=" preamble) or raw ftrace / author-stripped "event: payload" lines.
// Must not: parse payloads; returns undefined rather than guessing when nothing matches.
import { parseHead } from './ftrace/records.js';
import { splitLines } from './ftrace/stats.js';
import { stripLinePrefixes } from './line-prefix.js';
import type { ImportFormat } from './ftrace/result.js';

/** How many lines detection looks at. */
export const DETECT_SAMPLE_LINES = 4000;

export interface Detection {
  readonly format: ImportFormat;
  /** Why, in a few words (for `turtles import` messages). */
  readonly why: string;
}

function looksLikeIris(lines: readonly string[]): boolean {
  const rows = lines.map((l) => l.trim()).filter((l) => l !== '');
  if (rows.length < 3 || !rows.every((l) => /^[0-9a-f]{1,16}$/i.test(l))) return false;
  for (let i = 0; i + 2 < rows.length; i += 3) {
    if (/^f{8}$/i.test(rows[i]!) && /^f{8}$/i.test(rows[i + 1]!) && rows[i + 2] === '0') return true;
  }
  return false;
}

export function explainFormat(text: string): Detection | undefined {
  const lines = splitLines(text.length > 4_000_000 ? text.slice(0, 4_000_000) : text).slice(0, DETECT_SAMPLE_LINES);
  if (looksLikeIris(lines)) return { format: 'iris', why: 'one hex number per line with "ffffffff ffffffff 0" exit markers' };
  let perf = 0;
  let ftrace = 0;
  let bare = 0;
  let padded = 0;
  let twoLine = 0;
  let preamble = 0;
  let prevHeaderOnly = false;
  for (const raw of lines) {
    const t = stripLinePrefixes(raw).text;
    if (/^\s*(?:version = \d+|cpus=\d+|CPU \d+ is empty)\s*$/.test(t)) preamble++;
    if (/^\s*Overhead\s+Trace output\s*$/.test(t)) perf++;
    const h = parseHead(t);
    if (!h) {
      prevHeaderOnly = false;
      continue;
    }
    if (h.style === 'perf' || h.style === 'perf-top') perf++;
    else if (h.style === 'ftrace') ftrace++;
    else bare++;
    if (h.padded) padded++;
    if (h.style === 'bare' && prevHeaderOnly) twoLine++;
    prevHeaderOnly = h.style === 'ftrace' && h.event === undefined && h.cutEvent === undefined && h.payload === '';
  }
  if (perf > 0 && perf >= ftrace) return { format: 'perf-script', why: `${perf} perf script / perf top lines ("comm pid [cpu] ts: sys:event:", "NN.NN%  payload")` };
  if (padded > 0 || twoLine > 0 || preamble > 0) {
    return { format: 'trace-cmd', why: `trace-cmd report layout (${padded} padded event columns, ${twoLine} two-line records, ${preamble} preamble lines)` };
  }
  if (ftrace > 0 || bare > 0) return { format: 'ftrace', why: `${ftrace} ftrace lines and ${bare} author-stripped "event: payload" lines` };
  return undefined;
}

/** The importer for this text, or undefined when no format matches. */
export function detectFormat(text: string): ImportFormat | undefined {
  return explainFormat(text)?.format;
}
