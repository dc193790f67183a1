// Property: for generated APIC-access page offsets, access sizes, read/write and APIC-virtualization controls, whether an
// access exits or is virtualized — and what APIC-write emulation then does — matches a deliberately simple model of
// SDM 29.4 written from the SDM's lists of byte ranges (not the implementation's 16-byte-slot tables): first against
// VirtualApic directly, then end to end through the interpreter on the reference machine under the built-in L1.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { asm64 } from '../../src/asm/index.js';
import { VirtualApic, readVirtualApicSettings } from '../../src/cpu/apic/virtual-apic.js';
import { findCpuModel } from '../../src/cpu/cpu-model.js';
import { decodeApicAccess } from '../../src/cpu/exit-info/qualifications.js';
import { Pin, Primary, Secondary } from '../../src/cpu/generated/controls.js';
import { Field } from '../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../src/cpu/l1/builtin.js';
import { L1Layout } from '../../src/cpu/l1/config.js';
import type { Observation } from '../../src/cpu/l1/observation.js';
import { ObservationLog } from '../../src/cpu/l1/observe.js';
import { ReferenceMachine } from '../../src/cpu/machine/index.js';
import type { NonRootExit } from '../../src/cpu/nonroot/types.js';
import { readNonRootControls } from '../../src/cpu/nonroot/controls.js';
import { Vmcs } from '../../src/cpu/vmcs.js';
import { propertyParams } from '../support/property.js';

// ---- the model (SDM 29.4.2, 29.4.3.1, 29.4.3.2 as lists of byte ranges) ---------------------------------------------

interface Ctl { readonly tpr: boolean; readonly arv: boolean; readonly vid: boolean }

/** Inclusive byte ranges [first, first + 3] a read may lie entirely within with APIC-register virtualization. */
const READ_RANGES = [0x020, 0x030, 0x080, 0x0b0, 0x0d0, 0x0e0, 0x0f0,
  0x100, 0x110, 0x120, 0x130, 0x140, 0x150, 0x160, 0x170, 0x180, 0x190, 0x1a0, 0x1b0, 0x1c0, 0x1d0, 0x1e0, 0x1f0,
  0x200, 0x210, 0x220, 0x230, 0x240, 0x250, 0x260, 0x270, 0x280, 0x300, 0x310, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370,
  0x380, 0x3e0];
const WRITE_RANGES = [0x020, 0x080, 0x0b0, 0x0d0, 0x0e0, 0x0f0, 0x280, 0x300, 0x310, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x380, 0x3e0];

const within = (ranges: readonly number[], off: number, size: number) => ranges.some((r) => off >= r && off + size - 1 <= r + 3);

function modelVirtualized(c: Ctl, write: boolean, off: number, size: number): boolean {
  if (!c.tpr || size > 4) return false;
  if (!write) return c.arv ? within(READ_RANGES, off, size) : off === 0x080;
  if (c.arv) return within(WRITE_RANGES, off, size);
  const exact = c.vid ? [0x080, 0x0b0, 0x300] : [0x080];
  return exact.includes(off) && size <= 4;
}

function modelSelfIpi(icr: number): boolean {
  const reserved = (icr & 0xfff0_0000) !== 0 || (icr & 0x3_0000) !== 0 || (icr & 0x2000) !== 0;
  return !reserved && (icr & 0x1000) === 0 && ((icr >>> 18) & 3) === 1 && (icr & 0x8000) === 0 && ((icr >>> 8) & 7) === 0 && (icr & 0xf0) !== 0;
}

/** After a virtualized write (TPR threshold 0, EOI-exit bitmap 0): 'none', or the APIC-write exit's offset. */
function modelEmulation(c: Ctl, off: number, icrAfter: number): 'none' | number {
  if (off >= 0x80 && off <= 0x83) return 'none';
  if (off >= 0x310 && off <= 0x313) return 'none';
  if (c.vid && off >= 0xb0 && off <= 0xb3) return 'none';
  if (c.vid && off >= 0x300 && off <= 0x303 && modelSelfIpi(icrAfter)) return 'none';
  return off;
}

// ---- generators ---------------------------------------------------------------------------------------------------

/** Offsets near register slots (so both outcomes are common) and anywhere on the page. */
const SLOTS = [...READ_RANGES, 0x0a0, 0x390, 0x3f0, 0x000, 0x2f0];
const offsetArb = fc.oneof(
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(0x080, 0x0b0, 0x300, 0x310), fc.integer({ min: 0, max: 3 })).map(([b, d]) => b + d) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...SLOTS), fc.integer({ min: 0, max: 3 })).map(([b, d]) => b + d) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...SLOTS), fc.integer({ min: 0, max: 15 })).map(([b, d]) => b + d) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xff8 }) },
);
/** "Use TPR shadow" is mostly on (without it every access exits); ARV and VID need it (SDM 26.2.1.1). */
const ctlArb = fc.record({ tpr: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), arv: fc.boolean(), vid: fc.boolean() })
  .map((c) => (c.tpr ? c : { tpr: false, arv: false, vid: false }));
const sizeArb = fc.constantFrom(1, 2, 4, 8);

const APIC = 0xa_0000n;
const VAPIC = L1Layout.VIRTUAL_APIC;

/** Recognizable virtual-APIC page contents: byte i = (7i + 3) mod 256, except an ICR low that is a self-IPI. */
function vapicPage(): Uint8Array {
  const p = new Uint8Array(4096);
  for (let i = 0; i < 4096; i++) p[i] = (i * 7 + 3) & 0xff;
  new DataView(p.buffer).setUint32(0x300, 0x0004_0061, true);
  return p;
}

function secondaryOf(c: Ctl): number {
  return Secondary.VIRTUALIZE_APIC_ACCESSES | (c.arv ? Secondary.APIC_REGISTER_VIRTUALIZATION : 0) | (c.vid ? Secondary.VIRTUAL_INTERRUPT_DELIVERY : 0);
}

describe('property: exit-or-virtualize for APIC-access page accesses (SDM 29.4)', () => {
  it('VirtualApic.redirect and APIC-write emulation match the range model', () => {
    fc.assert(
      fc.property(ctlArb, offsetArb, sizeArb, fc.boolean(), fc.integer({ min: 0, max: 0xffff_ffff }), (c, off, size, write, value) => {
        const v = new Vmcs();
        v.set(Field.CPU_BASED_VM_EXEC_CONTROL, BigInt((c.tpr ? Primary.USE_TPR_SHADOW : 0) | Primary.ACTIVATE_SECONDARY_CONTROLS));
        v.set(Field.SECONDARY_VM_EXEC_CONTROL, BigInt(secondaryOf(c)));
        v.set(Field.PIN_BASED_VM_EXEC_CONTROL, BigInt(Pin.EXTERNAL_INTERRUPT_EXITING));
        v.set(Field.APIC_ACCESS_ADDR, APIC);
        v.set(Field.VIRTUAL_APIC_PAGE_ADDR, VAPIC);
        const page = vapicPage();
        const dv = new DataView(page.buffer);
        const apic = new VirtualApic(readVirtualApicSettings(v, readNonRootControls(v)), {
          readPhys32: (a) => dv.getUint32(Number(a - VAPIC), true),
          writePhys32: (a, x) => dv.setUint32(Number(a - VAPIC), x >>> 0, true),
          saveGuestInterruptStatus: () => undefined,
        });
        const r = apic.redirect(APIC + BigInt(off), size, write ? 'write' : 'read');
        const virtualized = modelVirtualized(c, write, off, size);
        if (!virtualized) {
          expect(typeof r).toBe('object');
          const exit = r as NonRootExit;
          expect(exit.reason).toBe(44);
          expect(decodeApicAccess(exit.qualification).value).toEqual({ offset: off, type: write ? 1 : 0, asynchronous: false });
          expect(exit.instructionLength).toBeUndefined();
          return;
        }
        expect(r).toBe(VAPIC + BigInt(off));
        if (!write) return;
        for (let i = 0; i < size; i++) page[off + i] = (value >>> (8 * i)) & 0xff;
        const icrAfter = dv.getUint32(0x300, true);
        const trap = apic.completeOperation();
        const expected = modelEmulation(c, off, icrAfter);
        if (expected === 'none') expect(trap).toBeNull();
        else expect(trap).toEqual({ reason: 56, qualification: BigInt(expected) });
      }),
      propertyParams({ numRuns: 10000 }),
    );
  });

  it('end to end: an L2 load or store at the generated offset exits, or reads the virtual-APIC page / traps as modelled', () => {
    const cpu = findCpuModel('intel-xeon-platinum-8160')!;
    const regs: Record<number, [string, string]> = { 1: ['al', 'al'], 2: ['ax', 'ax'], 4: ['eax', 'eax'], 8: ['rax', 'rax'] };
    fc.assert(
      fc.property(ctlArb, offsetArb, sizeArb, fc.boolean(), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (c, off, size, write, value) => {
        const reg = regs[size]![0];
        const text = write ? `mov [rbx + ${off}], ${reg}` : `mov ${reg}, [rbx + ${off}]`;
        const code = asm64`${text}; hlt`;
        const log = new ObservationLog();
        new ReferenceMachine({ cpu, sink: log }).run(builtinL1({
          l2: { mode: 'long64', code, gprs: [[3, APIC], [0, value]] },
          controls: { primary: Primary.HLT_EXITING | (c.tpr ? Primary.USE_TPR_SHADOW : 0), secondary: secondaryOf(c), pin: c.vid ? Pin.EXTERNAL_INTERRUPT_EXITING : 0 },
          tprThreshold: 0,
          l1Data: [{ gpa: VAPIC, bytes: vapicPage() }],
          vmcsWrites: [[Field.APIC_ACCESS_ADDR, APIC]],
          policy: { rules: [{ reason: 12, actions: [{ kind: 'stop' }] }] },
          maxExits: 1,
        }));
        const exit = log.items.find((o): o is Extract<Observation, { kind: 'exit-to-l1' }> => o.kind === 'exit-to-l1');
        expect(exit).toBeDefined();
        const x = exit!.exit;
        const afterInstr = 0x1_0000n + BigInt(asm64`${text}`.length);
        if (!modelVirtualized(c, write, off, size)) {
          expect([x.exitReason, x.qualification]).toEqual([44, BigInt(off) | (write ? 0x1000n : 0n)]);
          expect(exit!.guestState.get(Field.GUEST_RIP)).toBe(0x1_0000n);
          return;
        }
        const page = vapicPage();
        if (!write) {
          expect(x.exitReason).toBe(12);
          let v = 0n;
          for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(page[off + i]!);
          const l2 = log.items.find((o): o is Extract<Observation, { kind: 'l2-state' }> => o.kind === 'l2-state')!;
          const mask = (1n << BigInt(size * 8)) - 1n;
          expect(l2.detail.get('rax')! & mask).toBe(v);
          return;
        }
        for (let i = 0; i < size; i++) page[off + i] = Number((value >> BigInt(8 * i)) & 0xffn);
        const expected = modelEmulation(c, off, new DataView(page.buffer).getUint32(0x300, true));
        if (expected === 'none') expect(x.exitReason).toBe(12);
        else expect([x.exitReason, x.qualification]).toEqual([56, BigInt(expected)]);
        // Either way RIP is past the access: HLT exits are fault-like (RIP = the HLT), APIC-write exits trap-like.
        expect(exit!.guestState.get(Field.GUEST_RIP)).toBe(afterInstr);
      }),
      propertyParams({ numRuns: 250 }),
    );
  });
});
