// Parser for the small Intel-syntax subset L2 test programs use: `label:`, prefixes (rep/repe/repne/lock),
// registers, immediates, labels, `size ptr seg:[base + index*scale ± disp]` memory operands and `sel:off`
// far pointers; statements separated by newlines or `;`, comments after `#`. Must not: choose encodings
// (assemble.ts does). SDM Vol. 2 3.1 (Intel instruction syntax conventions).
import { Register } from 'iced-x86';

export type AsmOperand =
  | { readonly kind: 'reg'; readonly reg: number; readonly cls: RegClass; readonly size: number }
  | { readonly kind: 'imm'; readonly value: bigint }
  | { readonly kind: 'label'; readonly name: string }
  | { readonly kind: 'far'; readonly selector: number; readonly offset: bigint }
  | {
    readonly kind: 'mem';
    /** Explicit size from `byte/word/dword/qword/fword/tbyte/xmmword ptr`, 0 if none. */
    readonly size: number;
    readonly base: number;
    readonly index: number;
    readonly scale: 1 | 2 | 4 | 8;
    readonly disp: bigint;
    /** iced segment register of an override, or Register.None. */
    readonly seg: number;
  };

export type RegClass = 'gpr' | 'seg' | 'cr' | 'dr' | 'xmm' | 'rip';

export interface AsmLine {
  readonly line: number;
  readonly text: string;
  readonly label?: string;
  readonly prefixes: readonly string[];
  /** Lower case, aliases not yet resolved; empty for a label-only line. */
  readonly mnemonic: string;
  readonly operands: readonly AsmOperand[];
}

export interface AsmSyntaxError {
  readonly kind: 'asm-syntax';
  readonly line: number;
  readonly text: string;
  readonly message: string;
}

interface RegInfo {
  readonly reg: number;
  readonly cls: RegClass;
  readonly size: number;
}

const REGS = new Map<string, RegInfo>();
(() => {
  const r = Register as unknown as Record<string, number>;
  const gpr = (name: string, size: number) => REGS.set(name.toLowerCase(), { reg: r[name]!, cls: 'gpr', size });
  for (const n of ['AL', 'CL', 'DL', 'BL', 'AH', 'CH', 'DH', 'BH', 'SPL', 'BPL', 'SIL', 'DIL']) gpr(n, 1);
  for (let i = 8; i < 16; i++) {
    gpr(`R${i}L`, 1);
    REGS.set(`r${i}b`, { reg: r[`R${i}L`]!, cls: 'gpr', size: 1 });
    gpr(`R${i}W`, 2);
    gpr(`R${i}D`, 4);
    gpr(`R${i}`, 8);
  }
  for (const n of ['AX', 'CX', 'DX', 'BX', 'SP', 'BP', 'SI', 'DI']) gpr(n, 2);
  for (const n of ['EAX', 'ECX', 'EDX', 'EBX', 'ESP', 'EBP', 'ESI', 'EDI']) gpr(n, 4);
  for (const n of ['RAX', 'RCX', 'RDX', 'RBX', 'RSP', 'RBP', 'RSI', 'RDI']) gpr(n, 8);
  for (const n of ['ES', 'CS', 'SS', 'DS', 'FS', 'GS']) REGS.set(n.toLowerCase(), { reg: r[n]!, cls: 'seg', size: 2 });
  for (let i = 0; i < 16; i++) {
    REGS.set(`cr${i}`, { reg: r[`CR${i}`]!, cls: 'cr', size: 8 });
    REGS.set(`dr${i}`, { reg: r[`DR${i}`]!, cls: 'dr', size: 8 });
  }
  for (let i = 0; i < 32; i++) REGS.set(`xmm${i}`, { reg: r[`XMM${i}`]!, cls: 'xmm', size: 16 });
  REGS.set('rip', { reg: r['RIP']!, cls: 'rip', size: 8 });
  REGS.set('eip', { reg: r['EIP']!, cls: 'rip', size: 4 });
})();

export function registerByName(name: string): RegInfo | undefined {
  return REGS.get(name.toLowerCase());
}

const SIZES: Record<string, number> = { byte: 1, word: 2, dword: 4, qword: 8, fword: 6, tbyte: 10, xmmword: 16, oword: 16 };
const PREFIXES = new Set(['rep', 'repe', 'repz', 'repne', 'repnz', 'lock']);

function parseNumber(t: string): bigint | undefined {
  const s = t.trim();
  const neg = s.startsWith('-');
  const body = neg || s.startsWith('+') ? s.slice(1).trim() : s;
  let v: bigint;
  if (/^0x[0-9a-f_]+$/i.test(body)) v = BigInt(body.replace(/_/g, ''));
  else if (/^[0-9a-f_]+h$/i.test(body) && /^[0-9]/.test(body)) v = BigInt('0x' + body.slice(0, -1).replace(/_/g, ''));
  else if (/^0b[01_]+$/i.test(body)) v = BigInt(body.replace(/_/g, ''));
  else if (/^[0-9_]+$/.test(body)) v = BigInt(body.replace(/_/g, ''));
  else if (/^'.'$/.test(body)) v = BigInt(body.charCodeAt(1));
  else return undefined;
  return neg ? -v : v;
}

/** Split on commas that are not inside brackets. */
function splitOperands(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

function parseMemory(text: string, size: number, seg: number): AsmOperand | string {
  const m = /^\[(.*)\]$/.exec(text.trim());
  if (!m) return `bad memory operand "${text}"`;
  let inner = m[1]!.trim();
  const segIn = /^(es|cs|ss|ds|fs|gs)\s*:/i.exec(inner);
  if (segIn) {
    seg = REGS.get(segIn[1]!.toLowerCase())!.reg;
    inner = inner.slice(segIn[0].length);
  }
  let base = Register.None as number;
  let index = Register.None as number;
  let scale: 1 | 2 | 4 | 8 = 1;
  let disp = 0n;
  const terms = inner.replace(/\s+/g, '').replace(/-/g, '+-').split('+').filter((t) => t !== '');
  for (const term of terms) {
    const neg = term.startsWith('-');
    const t = neg ? term.slice(1) : term;
    const star = t.split('*');
    if (star.length === 2) {
      const [a, b] = star as [string, string];
      const reg = REGS.get(a.toLowerCase()) ?? REGS.get(b.toLowerCase());
      const sc = parseNumber(REGS.has(a.toLowerCase()) ? b : a);
      if (!reg || sc === undefined || ![1n, 2n, 4n, 8n].includes(sc) || neg) return `bad index term "${term}"`;
      index = reg.reg;
      scale = Number(sc) as 1 | 2 | 4 | 8;
      continue;
    }
    const reg = REGS.get(t.toLowerCase());
    if (reg) {
      if (neg) return `cannot subtract a register in "${text}"`;
      if (base === Register.None) base = reg.reg;
      else if (index === Register.None) index = reg.reg;
      else return `too many registers in "${text}"`;
      continue;
    }
    const n = parseNumber(t);
    if (n === undefined) return `bad term "${term}" in "${text}"`;
    disp += neg ? -n : n;
  }
  return { kind: 'mem', size, base, index, scale, disp, seg };
}

function parseOperand(text: string): AsmOperand | string {
  let t = text.trim();
  let size = 0;
  const sz = /^(byte|word|dword|qword|fword|tbyte|xmmword|oword)\s+(ptr\s+)?/i.exec(t);
  if (sz) {
    size = SIZES[sz[1]!.toLowerCase()]!;
    t = t.slice(sz[0].length).trim();
  }
  let seg = Register.None as number;
  const segOv = /^(es|cs|ss|ds|fs|gs)\s*:\s*(?=\[)/i.exec(t);
  if (segOv) {
    seg = REGS.get(segOv[1]!.toLowerCase())!.reg;
    t = t.slice(segOv[0].length);
  }
  if (t.startsWith('[')) return parseMemory(t, size, seg);
  if (size !== 0) return `size keyword without a memory operand in "${text}"`;
  const reg = REGS.get(t.toLowerCase());
  if (reg) return { kind: 'reg', reg: reg.reg, cls: reg.cls, size: reg.size };
  const far = /^([^:]+):([^:]+)$/.exec(t);
  if (far) {
    const sel = parseNumber(far[1]!);
    const off = parseNumber(far[2]!);
    if (sel !== undefined && off !== undefined) return { kind: 'far', selector: Number(sel), offset: off };
  }
  const n = parseNumber(t);
  if (n !== undefined) return { kind: 'imm', value: n };
  if (t === '$' || /^[A-Za-z_.][\w.$]*$/.test(t)) return { kind: 'label', name: t };
  return `cannot parse operand "${text}"`;
}

/** Parse a program; the first syntax error is returned as a value. */
export function parseProgram(source: string): { ok: true; lines: AsmLine[] } | { ok: false; error: AsmSyntaxError } {
  const lines: AsmLine[] = [];
  const physical = source.split('\n');
  for (let ln = 0; ln < physical.length; ln++) {
    const noComment = physical[ln]!.replace(/#.*$/, '');
    for (let stmt of noComment.split(';')) {
      stmt = stmt.trim();
      if (stmt === '') continue;
      const err = (message: string) => ({ ok: false as const, error: { kind: 'asm-syntax' as const, line: ln + 1, text: stmt, message } });
      let label: string | undefined;
      const lab = /^([A-Za-z_.$][\w.$]*)\s*:(?!\s*\[)/.exec(stmt);
      if (lab && !REGS.has(lab[1]!.toLowerCase())) {
        label = lab[1]!;
        stmt = stmt.slice(lab[0].length).trim();
      }
      const prefixes: string[] = [];
      const words = stmt.split(/\s+/);
      while (words.length > 0 && PREFIXES.has(words[0]!.toLowerCase())) prefixes.push(words.shift()!.toLowerCase());
      const mnemonic = (words.shift() ?? '').toLowerCase();
      const rest = words.join(' ');
      const operands: AsmOperand[] = [];
      for (const o of splitOperands(rest)) {
        const p = parseOperand(o);
        if (typeof p === 'string') return err(p);
        operands.push(p);
      }
      if (mnemonic === '' && prefixes.length > 0) return err('prefix without an instruction');
      lines.push({ line: ln + 1, text: stmt, ...(label !== undefined ? { label } : {}), prefixes, mnemonic, operands });
    }
  }
  return { ok: true, lines };
}
