// The EPT-violation qualification codec and builder on known values: bit positions of Table 27-7, undefined bits
// produced as 0, advanced bits only with cap bit 22 on final accesses. SDM Vol. 3C 27.2.1 Table 27-7; reference §4.3.4.
import { describe, expect, it } from 'vitest';
import { guestLinear } from '../../../../src/cpu/address.js';
import {
  buildEptViolationQualification, decodeEptViolationQualification, encodeEptViolationQualification, EPT_QUALIFICATION_BITS,
} from '../../../../src/cpu/ept/qualification.js';
import { eptConfig } from '../../../../src/cpu/ept/eptp.js';
import type { EptCapabilities } from '../../../../src/cpu/ept/types.js';

const CAPS: EptCapabilities = {
  maxPhysAddr: 46, executeOnly: true, walkLength4: true, walkLength5: false, memTypeUc: false, memTypeWb: true,
  pages2M: true, pages1G: true, accessedDirty: true, advancedExitInfo: false, supervisorShadowStack: false,
};
const NONE = { read: false, write: false, execute: false, userExecute: false };
const ALL = { read: true, write: true, execute: true, userExecute: true };

describe('EPT-violation qualification', () => {
  it('names bits 0..16 in SDM order', () => {
    expect(EPT_QUALIFICATION_BITS.length).toBe(17);
    const one = (name: (typeof EPT_QUALIFICATION_BITS)[number]): bigint => {
      const d = decodeEptViolationQualification(0n);
      if (!d.ok) throw new Error('decode');
      return encodeEptViolationQualification({ ...d.value, [name]: true });
    };
    expect(one('read')).toBe(1n);
    expect(one('fetch')).toBe(4n);
    expect(one('executable')).toBe(0x20n);
    expect(one('userExecutable')).toBe(0x40n);
    expect(one('finalTranslation')).toBe(0x100n);
    expect(one('executeDisableLinear')).toBe(0x800n);
    expect(one('nmiUnblocking')).toBe(0x1000n);
    expect(one('asynchronous')).toBe(0x1_0000n);
  });

  it('builds the qualification of a write to a read/execute page through a final translation', () => {
    const q = buildEptViolationQualification(
      { type: 'write', cause: { kind: 'final', linear: guestLinear(0x1000n), rights: { user: true, writable: true, executeDisable: false } } },
      { read: true, write: false, execute: true, userExecute: false },
      eptConfig(CAPS),
      false,
    );
    // No cap bit 22: bits 9–11 undefined, produced as 0; no MBEC: bit 6 0.
    expect(encodeEptViolationQualification(q)).toBe(0x2n | 0x8n | 0x20n | 0x80n | 0x100n);
    const adv = buildEptViolationQualification(
      { type: 'read', cause: { kind: 'final', linear: guestLinear(0n), rights: { user: true, writable: true, executeDisable: true } } },
      NONE, eptConfig({ ...CAPS, advancedExitInfo: true }), false,
    );
    expect(encodeEptViolationQualification(adv)).toBe(0x1n | 0x80n | 0x100n | 0x200n | 0x400n | 0x800n);
    const walk = buildEptViolationQualification(
      { type: 'read', cause: { kind: 'paging-structure', linear: guestLinear(0n) } }, ALL, eptConfig({ ...CAPS, advancedExitInfo: true }), false,
    );
    expect(encodeEptViolationQualification(walk)).toBe(0x1n | 0x38n | 0x80n);
  });
});
