// Property (d): the exception bitmap with the #PF error-code mask/match rule, over random error codes, masks and
// matches — first as the pure rule, then end to end with real page faults whose error codes come from the
// access (read/write/fetch, user/supervisor, not-present/protection). Expectation written from SDM 25.2:
// a #PF exits iff EB[14] = ((PFEC & MASK) == MATCH); other vectors iff EB[v].
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Vmcs } from '../../src/cpu/vmcs.js';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { exceptionExits, readNonRootControls } from '../../src/cpu/nonroot/index.js';
import { handlerAddress } from '../../src/cpu/interp/index.js';
import { decodeInterruptionInfo } from '../../src/cpu/exit-info/interruption-info.js';
import { propertyParams } from '../support/property.js';
import { machine } from '../unit/cpu/interp/harness.js';

function reference(eb: number, mask: number, match: number, vector: number, ec: number): boolean {
  const bitSet = ((eb >>> vector) & 1) === 1;
  if (vector !== 14) return bitSet;
  const equal = ((ec & mask) >>> 0) === (match >>> 0);
  return equal ? bitSet : !bitSet;
}

function controls(eb: number, mask: number, match: number) {
  const v = new Vmcs();
  v.set(Field.EXCEPTION_BITMAP, BigInt(eb >>> 0));
  v.set(Field.PAGE_FAULT_ERROR_CODE_MASK, BigInt(mask >>> 0));
  v.set(Field.PAGE_FAULT_ERROR_CODE_MATCH, BigInt(match >>> 0));
  return { vmcs: v, c: readNonRootControls(v) };
}

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
/** Masks and matches that often select only low error-code bits, so both outcomes are common. */
const small = fc.oneof(u32, fc.integer({ min: 0, max: 0x3f }));

describe('property (d): exception bitmap and PFEC mask/match', () => {
  it('pure rule over random bitmap, mask, match, vector and error code', () => {
    fc.assert(
      fc.property(u32, small, small, fc.integer({ min: 0, max: 31 }), small, (eb, mask, match, vector, ec) => {
        expect(exceptionExits(controls(eb, mask, match).c, vector, ec)).toBe(reference(eb, mask, match, vector, ec));
      }),
      propertyParams({ numRuns: 2000 }),
    );
  });

  it('end to end: a real #PF exits iff the rule holds for its error code', () => {
    // Accesses that fault with different error codes: not-present (P=0) beyond the 1 GiB map, or a protection
    // fault on a supervisor-only page from CPL 3 (U=1, P=1), for reads, writes and fetches.
    const access = fc.constantFrom(
      { prog: 'mov rax, [rbx]; hlt', user: false, addr: 0x8000_0000n, ec: 0 },
      { prog: 'mov [rbx], rax; hlt', user: false, addr: 0x8000_0000n, ec: 2 },
      { prog: 'jmp rbx', user: false, addr: 0x8000_0000n, ec: 0x10 },
      { prog: 'mov rax, [rbx]; jmp $', user: true, addr: 0x8000_0000n, ec: 4 },
      { prog: 'mov [rbx], rax; jmp $', user: true, addr: 0x8000_0000n, ec: 6 },
    );
    fc.assert(
      fc.property(access, fc.integer({ min: 0, max: 0xffff_ffff }), small, small, (a, eb, mask, match) => {
        const { vmcs } = controls(eb, mask, match);
        const m = machine('long64', a.prog, { vmcs, user: a.user });
        m.state.gpr[3] = a.addr;
        // Fetches need NX off to report ID; the environment sets EFER.NXE, so fetch faults carry I/D = 1.
        let r = m.step();
        if (r.kind === 'retired') r = m.step();
        const exits = reference(eb, mask, match, 14, a.ec);
        if (exits) {
          expect(r.kind).toBe('vmexit');
          if (r.kind !== 'vmexit') return;
          expect(decodeInterruptionInfo(r.exit.interruptionInfo!, 'exit').value).toMatchObject({ vector: 14, type: 3, errorCodeValid: true });
          expect(r.exit.interruptionErrorCode).toBe(a.ec);
          expect(r.exit.qualification).toBe(a.addr);
        } else if (((eb >>> 8) & 1) === 0) {
          // Delivered through the IDT (or, if #PF is not intercepted but its delivery faults, never an #PF exit).
          expect(r.kind === 'delivered' ? m.state.rip : r.kind).toBe(handlerAddress(14));
          expect(m.state.cr2).toBe(a.addr);
        }
      }),
      propertyParams({ numRuns: 150 }),
    );
  });
});
