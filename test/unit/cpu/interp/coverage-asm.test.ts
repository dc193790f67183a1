// The instruction table and the known-gaps list agree with each other and with the non-root rule set; the
// assembler produces the intended bytes (disassembly check) and reports bad programs as values.
import { describe, expect, it } from 'vitest';
import { Mnemonic } from 'iced-x86';
import { assemble, asm64, parseProgram } from '../../../../src/asm/index.js';
import { EXIT_CAPABLE_MNEMONICS } from '../../../../src/cpu/nonroot/index.js';
import { INSTRUCTION_TABLE, KNOWN_GAPS, claimedMnemonics, exitOnlyMnemonics, isKnownGap, mnemonicName } from '../../../../src/cpu/interp/index.js';
import { machine } from './harness.js';

describe('coverage table', () => {
  it('every claimed mnemonic is an iced-x86 mnemonic', () => {
    const iced = new Set(Object.keys(Mnemonic).filter((k) => Number.isNaN(Number(k))).map((k) => k.toLowerCase()));
    for (const name of claimedMnemonics()) expect(iced.has(name), name).toBe(true);
  });
  it('every exit-capable mnemonic of the non-root rules is claimed by the table', () => {
    for (const name of EXIT_CAPABLE_MNEMONICS) expect(INSTRUCTION_TABLE.has(name), name).toBe(true);
  });
  it('gaps with no implementation are not claimed, partial gaps are', () => {
    for (const g of KNOWN_GAPS) {
      if (g.mnemonic.startsWith('(')) continue;
      if (g.scope === 'partial') expect(INSTRUCTION_TABLE.has(g.mnemonic), g.mnemonic).toBe(true);
      else if (!exitOnlyMnemonics().includes(g.mnemonic)) expect(INSTRUCTION_TABLE.has(g.mnemonic), g.mnemonic).toBe(false);
    }
  });
  it('exit-only rows are listed as gaps', () => {
    for (const n of exitOnlyMnemonics()) expect(KNOWN_GAPS.some((g) => g.mnemonic === n)).toBe(true);
  });
  it('an unclaimed instruction answers unsupported with its mnemonic and changes nothing', () => {
    const m = machine('long64', 'bsf eax, ebx; hlt');
    const before = m.state.clone();
    const r = m.step();
    expect(r).toEqual({ kind: 'unsupported', mnemonic: 'bsf', rip: before.rip });
    expect(m.state.rip).toBe(before.rip);
    expect(isKnownGap('bsf')).toBe(true);
    expect(mnemonicName(Mnemonic.Bsf)).toBe('bsf');
  });
  it('VMX instructions outside VMX operation raise #UD', () => {
    const m = machine('long64', 'vmcall; hlt');
    m.run(5);
    expect(m.state.rip).toBe(0x6000n + 6n * 8n + 1n);
  });
});

describe('assembler', () => {
  it('encodes the same bytes as the SDM opcode tables', () => {
    expect([...asm64`mov eax, 1; cpuid; out dx, al; hlt`]).toEqual([0xb8, 1, 0, 0, 0, 0x0f, 0xa2, 0xee, 0xf4]);
    expect([...asm64`add rax, -1`]).toEqual([0x48, 0x83, 0xc0, 0xff]);
    expect([...asm64`mov rax, ${0x8000_0000n}`]).toEqual([0x48, 0xb8, 0, 0, 0, 0x80, 0, 0, 0, 0]);
  });
  it('branches grow from short to near when the target is far', () => {
    const r = assemble(`jmp far_away\n${'nop\n'.repeat(200)}far_away: hlt`, { bitness: 64 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.bytes[0]).toBe(0xe9);
    expect(r.labels.get('far_away')).toBe(5n + 200n);
  });
  it('reports unknown mnemonics, labels and ambiguous sizes as values', () => {
    const a = assemble('frobnicate eax', { bitness: 64 });
    expect(!a.ok && a.error.kind).toBe('asm-unknown-mnemonic');
    const b = assemble('jmp nowhere', { bitness: 64 });
    expect(!b.ok && b.error.kind).toBe('asm-unknown-label');
    const c = assemble('inc [rax]', { bitness: 64 });
    expect(!c.ok && c.error.kind).toBe('asm-no-encoding');
    const d = parseProgram('mov eax, [rax +* 2]');
    expect(d.ok).toBe(false);
  });
  it('listing carries the disassembly of each line', () => {
    const r = assemble('top: dec ecx; jnz top; rep stosb', { bitness: 32, ip: 0x1000n });
    expect(r.ok && r.listing.map((l) => l.text)).toEqual(['dec ecx', 'jne short 00001000h', 'rep stosb [edi]']);
  });
});
