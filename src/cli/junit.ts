// JUnit XML for `turtles replay --junit <file>`: one <testsuite> per trace and one <testcase> per check class in it;
// a class with divergences fails and lists each one with the command that reproduces it; a class with nothing to
// check in that trace is skipped with the reason. Deterministic: no timestamps or durations.
// Must not: decide results (it formats TraceReplay values) or write files (the replay command does).
import type { CheckSummary, TraceReplay } from '../replay/replay/index.js';
import { classOfRule } from '../replay/replay/index.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
    // XML 1.0 allows no C0 controls other than tab, LF and CR.
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export interface JunitTrace {
  readonly replay: TraceReplay;
  /** The command that reproduces a divergence, given its event. */
  readonly reproduce: (event: number) => string;
}

export function junitXml(traces: readonly JunitTrace[]): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  let tests = 0;
  let failures = 0;
  let skipped = 0;
  const suites: string[] = [];
  for (const { replay, reproduce } of traces) {
    let sTests = 0;
    let sFail = 0;
    let sSkip = 0;
    const cases: string[] = [];
    for (const c of replay.checks) {
      sTests++;
      // Expected deviations of the kvm profile are reported by the text/JSON report; they do not fail a test case.
      const found = replay.findings.filter((f) => classOfRule(f.divergence.rule) === c.id && f.divergence.kind !== 'expected-deviation');
      const head = `    <testcase classname="${esc(replay.file)}" name="${esc(c.id)}">`;
      if (found.length > 0) {
        sFail++;
        const body = found.map((f) => {
          const d = f.divergence;
          return [
            `event ${d.event}${f.line !== undefined ? ` (source line ${f.line})` : ''}: ${d.rule} (SDM ${d.sdm}), ${d.level}${d.field ? `, ${d.field}` : ''}`,
            `  expected: ${d.expected}`, `  actual:   ${d.actual}`, `  ${d.explanation}`, `  reproduce: ${reproduce(d.event)}`,
          ].join('\n');
        }).join('\n');
        cases.push(`${head}\n      <failure message="${found.length} divergence${found.length === 1 ? '' : 's'}" type="${esc(found[0]!.divergence.rule)}">${esc(body)}</failure>\n${systemOut(c)}    </testcase>`);
      } else if (!c.applies) {
        sSkip++;
        cases.push(`${head}\n      <skipped message="${esc(c.note)}"/>\n    </testcase>`);
      } else {
        cases.push(`${head}\n${systemOut(c)}    </testcase>`);
      }
    }
    tests += sTests;
    failures += sFail;
    skipped += sSkip;
    suites.push(`  <testsuite name="${esc(replay.file)}" tests="${sTests}" failures="${sFail}" errors="0" skipped="${sSkip}">\n${cases.join('\n')}\n  </testsuite>`);
  }
  out.push(`<testsuites name="turtles replay" tests="${tests}" failures="${failures}" errors="0" skipped="${skipped}">`);
  out.push(...suites);
  out.push('</testsuites>');
  return out.join('\n') + '\n';
}

function systemOut(c: CheckSummary): string {
  return `      <system-out>${esc(`${c.evaluated} checked, ${c.undecided} undecided: ${c.note}`)}</system-out>\n`;
}
