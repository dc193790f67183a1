// Reads KVM `dump_vmcs()` (every layout of trace-formats.md §6) and Xen `vmcs_dump_vcpu()` (§7) text into a
// PartialVmcs: each printed value goes to the VMCS field it was read from; values that are not VMCS fields
// (KVM's "(effective)"/"(autoload)" EFER, MSR autoload lists, Xen's cached registers) go to `derived`.
// Must not: guess a value the dump does not print, or drop a line without listing it in `unmapped`.
import { PartialVmcs } from '../../../cpu/vmcs.js';
import { logicalLines, type LogicalLine } from '../line-prefix.js';
import { hexValue, scanPairs, type Pair } from './pairs.js';
import { addQemuLine, isQemuLine, isQemuStart, newQemuDump } from './qemu.js';
import { dumpError, emptyDerived, type ParseResult } from './types.js';
import { FIRST_KEYS, KEYS, SPECIAL, needFor, setField, type Ctx, type Dialect, type Need, type Section } from './text-dump-grammar.js';

export type { Dialect } from './text-dump-grammar.js';


/** The text begins a line of a KVM/Xen/QEMU dump (soft-wrap continuations never do). */
export function startsDumpLine(text: string): boolean {
  const t = text.trim();
  if (Object.values(SPECIAL).some((re) => re.test(t)) || isQemuLine(t)) return true;
  const first = scanPairs(t).pairs[0];
  return first !== undefined && FIRST_KEYS.has(first.key);
}

type Status = 'complete' | 'partial' | 'unknown';

function lineStatus(text: string, section: 'guest' | 'host' | 'control', dialect: Dialect): { status: Status; pairs: Pair[]; rest: string; need?: Need } {
  const keys = KEYS[section];
  const { pairs, rest } = scanPairs(text, (k) => keys.get(k)?.digits);
  const first = pairs[0];
  const need = first ? needFor(section, first.key, text, dialect) : undefined;
  if (!first || !need) return { status: 'unknown', pairs, rest };
  const have = new Set(pairs.map((p) => p.key));
  const known = pairs.every((p) => keys.has(p.key));
  const complete = rest === '' && known && need.some((alt) => alt.every((k) => have.has(k)));
  return { status: complete ? 'complete' : 'partial', pairs, rest, need };
}

/** A line that looks cut: it ends in `,`, `=` or `:` (mail wraps break after these), or is a partial form. */
export function incompleteDumpLine(text: string, dialect?: Dialect): boolean {
  const t = text.trim();
  if (/[,=:]$/.test(t) && !SPECIAL.msrHeader.test(t)) return true;
  return partialDumpLine(t, dialect);
}

/**
 * A known dump line form with pairs missing, so whatever follows must be its continuation. With a dialect the
 * forms are that dialect's (Xen prints `TSC Offset` and `TSC Multiplier` on one line, KVM on two); without one a
 * line counts as partial only if no dialect accepts it as complete.
 */
export function partialDumpLine(text: string, dialect?: Dialect): boolean {
  const t = text.trim();
  if (isQemuLine(t)) return false;
  if (SPECIAL.sysenterStart.test(t)) return !SPECIAL.sysenter.test(t);
  if (SPECIAL.xenSegStart.test(t)) return !SPECIAL.xenSeg.test(t);
  if (SPECIAL.xenDtStart.test(t)) return !SPECIAL.xenDt.test(t);
  const dialects: readonly Dialect[] = dialect ? [dialect] : ['kvm', 'xen'];
  const st = (['guest', 'host', 'control'] as const).flatMap((s) => dialects.map((d) => lineStatus(t, s, d).status));
  return st.includes('partial') && !st.includes('complete');
}

/** The soft-wrap grammar of a dump dialect, for joinSoftWraps. */
export function dumpWrapGrammar(dialect?: Dialect) {
  return {
    startsRecord: startsDumpLine,
    incomplete: (t: string) => incompleteDumpLine(t, dialect),
    mustContinue: (t: string) => partialDumpLine(t, dialect),
  };
}

function describe(need: Need): string {
  return need.map((alt) => alt.map((k) => `${k.replace(':', ': ')}=…`).join(' ')).join(' or ');
}

const REQUIRED_END: readonly { key: string; expected: string }[] = [
  { key: 'section:guest', expected: '"*** Guest State ***"' },
  { key: 'CR0:actual', expected: '"CR0: actual=0x…, shadow=0x…, gh_mask=…"' },
  { key: 'RIP', expected: '"RSP = 0x…  RIP = 0x…"' },
  { key: 'CS:sel', expected: 'the guest segment lines ("CS: sel=0x…, attr=0x…, limit=0x…, base=0x…")' },
  { key: 'section:host', expected: '"*** Host State ***"' },
  { key: 'host:CR0', expected: 'the host "CR0=… CR3=… CR4=…" line' },
  { key: 'section:control', expected: '"*** Control State ***"' },
  { key: 'PinBased', expected: '"PinBased=…" (control state)' },
  { key: 'EntryControls', expected: '"EntryControls=… ExitControls=…"' },
  { key: 'reason', expected: '"reason=… qualification=…"' },
  { key: 'IDTVectoring:info', expected: '"IDTVectoring: info=… errcode=…"' },
  { key: 'TSC Offset', expected: '"TSC Offset = 0x…"' },
];

/** Parse a KVM or Xen VMCS dump. `file` is used in errors only. */
export function parseTextDump(text: string, file: string, dialect: Dialect, format: 'kvm-dump-vmcs' | 'xen-vmcs-dump'): ParseResult {
  const lines = logicalLines(text, dumpWrapGrammar(dialect));
  const physical = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  const ctx: Ctx = { dialect, vmcs: new PartialVmcs(), fieldLines: new Map(), derived: emptyDerived(), unmapped: [], seen: new Set() };
  let section: Section = 'pre';
  let lastDumpLine = 0;
  let qemuOpen = false;
  const unmapped = (l: LogicalLine, reason: string) => ctx.unmapped.push({ line: l.line, text: l.text.trim(), reason });

  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const t = l.text.trim();
    if (t === '') continue;
    const h = SPECIAL.header.exec(t);
    if (h) {
      const next = h[1]!.toLowerCase() as 'guest' | 'host' | 'control';
      if (next === 'guest' && ctx.seen.has('section:guest')) {
        for (const rest of lines.slice(i)) if (rest.text.trim() !== '') unmapped(rest, `another VMCS dump starts at line ${l.line}; only the first one in a file is read`);
        break;
      }
      section = next;
      ctx.seen.add(`section:${next}`);
      lastDumpLine = l.line;
      continue;
    }
    if (section === 'pre') {
      if (isQemuStart(t)) {
        ctx.derived.qemu = newQemuDump(l.line);
        qemuOpen = true;
      }
      if (qemuOpen && ctx.derived.qemu) {
        const why = addQemuLine(ctx.derived.qemu, t);
        if (why === null) continue;
        if (isQemuLine(t)) return dumpError(file, l.line, `a QEMU register dump line: ${why}`);
      }
      const vh = SPECIAL.vmcsHeader.exec(t);
      if (vh) {
        ctx.derived.vmcsPointer = vh[1]!;
        ctx.derived.lastEntryCpu = Number(vh[2]!);
        ctx.derived.layout.push('kvm:vmcs-header>=5.15');
        continue;
      }
      if (SPECIAL.noDump.test(t)) {
        ctx.derived.notes.push(`line ${l.line}: KVM did not dump the VMCS (kvm_intel.dump_invalid_vmcs=0)`);
        continue;
      }
      if (readXenFrame(ctx, t, l)) continue;
      unmapped(l, 'outside the VMCS dump');
      continue;
    }
    if (section === 'post') {
      if (dialect === 'xen' && readXenFrame(ctx, t, l)) continue;
      unmapped(l, 'after the VMCS dump');
      continue;
    }
    const r = readDumpLine(ctx, t, l, section);
    if (r === 'ok') {
      lastDumpLine = l.line;
      continue;
    }
    if (r !== 'unknown') return dumpError(file, l.line, r);
    if (section === 'control' && ctx.seen.has('TSC Offset')) {
      // KVM has no closing line: the first line that is not a control-state line ends the dump.
      section = 'post';
      if (dialect === 'xen' && readXenFrame(ctx, t, l)) continue;
      unmapped(l, 'after the VMCS dump');
      continue;
    }
    unmapped(l, `not a line of the ${dialect === 'kvm' ? 'KVM dump_vmcs' : 'Xen vmcs_dump_vcpu'} ${section} state`);
  }

  for (const req of REQUIRED_END) {
    if (!ctx.seen.has(req.key)) {
      if (!ctx.seen.has('section:guest')) return dumpError(file, Math.max(physical, 1), `a VMCS dump ("*** Guest State ***" …); none found`);
      return dumpError(file, Math.max(physical, lastDumpLine), `truncated dump: expected ${req.expected} after line ${lastDumpLine}`);
    }
  }
  ctx.derived.layout.unshift(dialect);
  return { ok: true, value: { format, vmcs: ctx.vmcs, fieldLines: ctx.fieldLines, derived: ctx.derived, lines: physical, unmapped: ctx.unmapped } };
}

function readXenFrame(ctx: Ctx, t: string, l: LogicalLine): boolean {
  let m = SPECIAL.xenDomain.exec(t);
  if (m) {
    ctx.derived.xen = { ...ctx.derived.xen, domain: Number(m[1]) };
    return true;
  }
  m = SPECIAL.xenVcpu.exec(t);
  if (m) {
    ctx.derived.xen = { ...ctx.derived.xen, vcpu: Number(m[1]) };
    return true;
  }
  m = SPECIAL.xenBanner.exec(t);
  if (m) {
    ctx.derived.xen = { ...ctx.derived.xen, domain: Number(m[1]), vcpu: Number(m[2]), banner: m[3]! };
    return true;
  }
  if (SPECIAL.xenAreas.test(t) || SPECIAL.xenClose.test(t)) {
    ctx.derived.notes.push(`line ${l.line}: ${t}`);
    return true;
  }
  return false;
}

/** 'ok', 'unknown', or the expected form (bad input). */
function readDumpLine(ctx: Ctx, t: string, l: LogicalLine, section: 'guest' | 'host' | 'control'): string {
  if (SPECIAL.sysenterStart.test(t) && section !== 'control') {
    const m = SPECIAL.sysenter.exec(t);
    if (!m) return 'expected "Sysenter RSP=<16 hex> CS:RIP=<4 hex>:<16 hex>"';
    const p = section === 'guest' ? ['GUEST_SYSENTER_ESP', 'GUEST_SYSENTER_CS', 'GUEST_SYSENTER_EIP'] : ['HOST_IA32_SYSENTER_ESP', 'HOST_IA32_SYSENTER_CS', 'HOST_IA32_SYSENTER_EIP'];
    return firstError([setField(ctx, p[0]!, hexValue(m[1]!), l), setField(ctx, p[1]!, hexValue(m[2]!), l), setField(ctx, p[2]!, hexValue(m[3]!), l)]);
  }
  if (section === 'guest') {
    if (SPECIAL.xenTableHeader.test(t)) {
      ctx.derived.layout.push('xen:segment-table');
      return 'ok';
    }
    if (SPECIAL.xenSegStart.test(t)) {
      const m = SPECIAL.xenSeg.exec(t);
      if (!m) return `expected "${t.split(':')[0]}: <sel 4 hex> <attr 5 hex> <limit 8 hex> <base 16 hex>" (Xen segment table)`;
      const s = m[1]!;
      ctx.seen.add(`${s}:sel`);
      return firstError([
        setField(ctx, `GUEST_${s}_SELECTOR`, hexValue(m[2]!), l),
        setField(ctx, `GUEST_${s}_AR_BYTES`, hexValue(m[3]!), l),
        setField(ctx, `GUEST_${s}_LIMIT`, hexValue(m[4]!), l),
        setField(ctx, `GUEST_${s}_BASE`, hexValue(m[5]!), l),
      ]);
    }
    if (SPECIAL.xenDtStart.test(t)) {
      const m = SPECIAL.xenDt.exec(t);
      if (!m) return `expected "${t.split(':')[0]}: <limit 8 hex> <base 16 hex>" (Xen segment table)`;
      return firstError([setField(ctx, `GUEST_${m[1]}_LIMIT`, hexValue(m[2]!), l), setField(ctx, `GUEST_${m[1]}_BASE`, hexValue(m[3]!), l)]);
    }
  }
  if (SPECIAL.msrHeader.test(t)) {
    const name = SPECIAL.msrHeader.exec(t)![1]!;
    ctx.msrList = name;
    ctx.derived.msrLists[name] = [];
    return 'ok';
  }
  const me = SPECIAL.msrEntry.exec(t);
  if (me && ctx.msrList) {
    // KVM's software copy of an MSR-load/store list (memory at the list address, not VMCS fields).
    ctx.derived.msrLists[ctx.msrList]!.push({ index: Number(me[1]), msr: hexValue(me[2]!), value: hexValue(me[3]!) });
    return 'ok';
  }
  ctx.msrList = undefined;
  const ve = SPECIAL.veInfo.exec(t);
  if (ve && section === 'control') {
    ctx.derived.veInfo = ve[1]!.trim().split(/\s+/).map((x) => hexValue(x.slice(2)));
    return 'ok';
  }
  const st = lineStatus(t, section, ctx.dialect);
  if (st.status === 'unknown') return 'unknown';
  if (st.status === 'partial') {
    const found = st.rest ? `; cannot read "${st.rest}"` : '';
    const extra = st.pairs.filter((p) => !KEYS[section].has(p.key)).map((p) => p.key);
    return `expected ${describe(st.need!)} (${ctx.dialect === 'kvm' ? 'KVM dump_vmcs' : 'Xen vmcs_dump_vcpu'} ${section} state)${extra.length ? `; unknown ${extra.join(', ')}` : ''}${found}`;
  }
  layoutOf(ctx, t, section, st.pairs[0]!.key);
  for (const p of st.pairs) {
    const target = KEYS[section].get(p.key)!;
    const err = target.apply(ctx, p.value.includes('|') ? 0n : hexValue(p.value), p, l);
    if (err) return err;
    ctx.seen.add(section === 'host' ? `host:${p.key}` : p.key);
  }
  return 'ok';
}

function layoutOf(ctx: Ctx, t: string, section: string, first: string): void {
  const add = (s: string) => void (ctx.derived.layout.includes(s) || ctx.derived.layout.push(s));
  if (section === 'guest' && first === 'EFER') add(/^EFER\s+=/.test(t) ? `${ctx.dialect}:efer-pat-one-line` : 'kvm:efer>=5.12');
  if (section === 'guest' && first.startsWith('EFER(')) add(`xen:${first.toLowerCase()}`);
  if (section === 'control' && first === 'CPUBased') add('kvm:controls>=5.18');
  if (section === 'control' && first === 'PinBased' && /CPUBased/.test(t)) add(ctx.dialect === 'kvm' ? 'kvm:controls<=5.17' : 'xen:controls-two-lines');
}

function firstError(errs: (string | null)[]): string {
  return errs.find((e) => e !== null) ?? 'ok';
}
