// Robustness: random instruction bytes executed in every mode, with and without VMX non-root controls, never make
// the interpreter throw (a throw is a turtles bug); every `unsupported` answer names a listed gap; RIP and state
// are untouched by an unsupported answer.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isKnownGap, type L2Mode } from '../../src/cpu/interp/index.js';
import { propertyParams } from '../support/property.js';
import { machine, vmcsWith } from '../unit/cpu/interp/harness.js';

const PREFIXES = [0x66, 0x67, 0xf2, 0xf3, 0x2e, 0x64, 0x48, 0x41, 0x0f];

describe('random instruction bytes', () => {
  it('never throw; unsupported answers are listed gaps and change nothing', () => {
    const bytes = fc.array(fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...PREFIXES) }, { weight: 4, arbitrary: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 24 });
    const mode = fc.constantFrom<L2Mode>('long64', 'protected32', 'real');
    const controls = fc.option(fc.record({
      primary: fc.integer({ min: 0, max: 0xffff_ffff }), secondary: fc.integer({ min: 0, max: 0xffff_ffff }),
      eb: fc.integer({ min: 0, max: 0xffff_ffff }), user: fc.boolean(),
    }), { nil: undefined });
    fc.assert(
      fc.property(bytes, mode, controls, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (code, m, c, r) => {
        const vmcs = c ? vmcsWith({ CPU_BASED_VM_EXEC_CONTROL: c.primary & ~((1 << 2) | (1 << 22)), SECONDARY_VM_EXEC_CONTROL: c.secondary, EXCEPTION_BITMAP: c.eb }) : undefined;
        const mach = machine(m, new Uint8Array([...code, 0xf4]), { ...(vmcs ? { vmcs } : {}), user: m !== 'real' && (c?.user ?? false) });
        for (let i = 0; i < 16; i++) mach.state.gpr[i] = BigInt.asUintN(64, r * BigInt(i + 1));
        mach.state.gpr[4] = mach.state.gpr[4]! & 0x7_ff00n;
        for (let n = 0; n < 6; n++) {
          const before = mach.state.clone();
          const res = mach.step();
          if (res.kind === 'unsupported') {
            expect(isKnownGap(res.mnemonic), res.mnemonic).toBe(true);
            expect(mach.state.rip).toBe(before.rip);
            expect([...mach.state.gpr]).toEqual([...before.gpr]);
            break;
          }
          if (res.kind === 'vmexit' || res.kind === 'shutdown') break;
        }
      }),
      propertyParams({ numRuns: 1500 }),
    );
  });
});
