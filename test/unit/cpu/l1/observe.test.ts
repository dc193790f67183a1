// The shared observation helpers: FNV-1a-64 against a plain bigint implementation and the published test vectors,
// the L1-memory digest (order-independent, zero pages absent, changed pages reported, VMX regions masked to their
// first 8 bytes), guest-state field selection, and L2's CR0/CR4 as L2 reads them through the read shadows.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { L1_GPA, type L1Gpa } from '../../../../src/cpu/address.js';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { L1MemoryDigest, fnv1a64, guestStateFields, l2StateDetail } from '../../../../src/cpu/l1/observe.js';
import { PhysicalMemory } from '../../../../src/cpu/memory.js';
import { CpuState } from '../../../../src/cpu/state.js';
import { propertyParams } from '../../../support/property.js';
import { KVM_L1, SKYLAKE } from '../machine/helpers.js';

function fnvReference(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h;
}

describe('FNV-1a 64', () => {
  it('matches the published vectors', () => {
    const t = new TextEncoder();
    expect(fnv1a64(t.encode(''))).toBe(0xcbf29ce484222325n);
    expect(fnv1a64(t.encode('a'))).toBe(0xaf63dc4c8601ec8cn);
    expect(fnv1a64(t.encode('foobar'))).toBe(0x85944171f73967e8n);
  });

  it('matches a bigint implementation on any bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => fnv1a64(b) === fnvReference(b)), propertyParams({ numRuns: 200 }));
  });
});

function page(fill: (i: number) => number): Uint8Array {
  const p = new Uint8Array(4096);
  for (let i = 0; i < 4096; i++) p[i] = fill(i) & 0xff;
  return p;
}

describe('L1MemoryDigest', () => {
  it('is independent of write order and ignores all-zero pages; reports changed pages with their hash', () => {
    const a = new PhysicalMemory<L1Gpa>();
    const b = new PhysicalMemory<L1Gpa>();
    const da = new L1MemoryDigest(a);
    const db = new L1MemoryDigest(b);
    const p1 = page((i) => i);
    const p2 = page((i) => i * 7 + 1);
    a.write(L1_GPA.of(0x1000n), p1);
    a.write(L1_GPA.of(0x5000n), p2);
    b.write(L1_GPA.of(0x5000n), p2);
    b.write(L1_GPA.of(0x9000n), new Uint8Array(4096).fill(3));
    b.write(L1_GPA.of(0x9000n), new Uint8Array(4096)); // back to zero: absent again
    b.write(L1_GPA.of(0x1000n), p1);
    const oa = da.observe(0);
    const ob = db.observe(0);
    expect(oa.kind === 'l1-memory' && ob.kind === 'l1-memory').toBe(true);
    if (oa.kind !== 'l1-memory' || ob.kind !== 'l1-memory') return;
    expect(oa.digest).toBe(ob.digest);
    expect([...oa.changedPages.entries()]).toEqual([[1n, fnv1a64(p1)], [5n, fnv1a64(p2)]]);
    // Nothing changed since: an empty change set, same digest.
    const again = da.observe(1);
    expect(again).toEqual({ kind: 'l1-memory', step: 1, digest: oa.digest, changedPages: new Map() });
    // One byte changes one page.
    a.writeU8(L1_GPA.of(0x5003n), 0xee);
    const after = da.observe(2);
    expect(after.kind === 'l1-memory' ? [...after.changedPages.keys()] : []).toEqual([5n]);
    expect(after.kind === 'l1-memory' ? after.digest : 0n).not.toBe(oa.digest);
  });

  it('masks a VMX region except its revision and abort dwords', () => {
    const m = new PhysicalMemory<L1Gpa>();
    const d = new L1MemoryDigest(m);
    m.writeU32(L1_GPA.of(0x2000n), 0x11e57ed0);
    d.markVmxRegion(0x2000n);
    const base = d.observe(0);
    m.writeU64(L1_GPA.of(0x2010n), 0xdead_beefn);
    expect(d.observe(1)).toEqual({ ...base, step: 1, changedPages: new Map() });
    m.writeU32(L1_GPA.of(0x2004n), 1);
    const abort = d.observe(2);
    expect(abort.kind === 'l1-memory' && abort.digest !== (base.kind === 'l1-memory' ? base.digest : 0n)).toBe(true);
    const visible = new Uint8Array(4096);
    visible.set([0xd0, 0x7e, 0xe5, 0x11, 1, 0, 0, 0]);
    expect(d.pageHash(2)).toBe(fnv1a64(visible));
  });
});

describe('observation fields', () => {
  it('guest-state fields are the full guest-state encodings the model supports', () => {
    const f = guestStateFields(KVM_L1);
    expect(f).toContain(Field.GUEST_RIP);
    expect(f).toContain(Field.GUEST_PDPTR0);
    expect(f).not.toContain(Field.GUEST_PDPTR0 + 1);
    expect(f).not.toContain(Field.GUEST_IA32_RTIT_CTL); // not in KVM's vmcs12
    expect([...f].sort((a, b) => a - b)).toEqual(f);
    // The Core 2 has no EPT, so no PDPTE fields: the set follows the model (kvm-l1 now has Skylake's, N24 aside).
    expect(guestStateFields(findCpuModel('intel-core2-x6800')!)).not.toContain(Field.GUEST_PDPTR0);
    expect(guestStateFields(SKYLAKE)).toContain(Field.GUEST_PDPTR0);
  });

  it('L2 state reports CR0/CR4 as L2 reads them: owned bits from the read shadow', () => {
    const s = new CpuState();
    s.cr0 = 0x8000_0031n;
    s.cr4 = 0x2020n;
    const d = l2StateDetail(s, { cr0Mask: 0x8n | 0x1n, cr0Shadow: 0x8n, cr4Mask: 0x2000n, cr4Shadow: 0n });
    expect(d.get('cr0')).toBe(0x8000_0038n);
    expect(d.get('cr4')).toBe(0x20n);
  });
});
