// Properties of the TLB model: after any invalidation (INVVPID 0–3, INVEPT single/all, INVLPG, MOV to CR3, VM
// transitions without VPID, EPT violations) no translation in the scope the SDM requires to be invalidated is used
// again; a hit always belongs to a live fill with matching tags; a fresh fill is usable at once.
// SDM Vol. 3A 4.10.4, Vol. 3C 28.3.3.1; reference §5.6, §8.7.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { guestLinear, l1gpa, l2gpa, type L1Gpa, type L2Gpa } from '../../src/cpu/address.js';
import { Tlb } from '../../src/cpu/tlb.js';
import type { PageSize } from '../../src/cpu/paging/types.js';

const RIGHTS = { user: true, writable: true, executeDisable: false, protectionKey: 0 };
const PERMS = { read: true, write: true, execute: true, userExecute: true };
const BYTES: Record<PageSize, bigint> = { '4K': 0x1000n, '2M': 0x20_0000n, '4M': 0x40_0000n, '1G': 0x4000_0000n };

// Small tag domains so fills, invalidations and lookups collide often.
const arbVpid = fc.constantFrom(0, 1);
const arbPcid = fc.constantFrom(0, 1);
const arbEptrta = fc.constantFrom(0x1000n, 0x2000n);
const arbAddr = fc.record({
  page: fc.constantFrom(0n, 0x1000n, 0x4000_0000n),
  off: fc.bigInt({ min: 0n, max: 0xfffn }),
}).map(({ page, off }) => page | off);
const arbLinearSize = fc.constantFrom<PageSize>('4K', '2M', '4M', '1G');
const arbEptSize = fc.constantFrom<'4K' | '2M' | '1G'>('4K', '2M', '1G');

type Op =
  | { op: 'fillLinear'; vpid: number; pcid: number; global: boolean; size: PageSize; addr: bigint; dirty: boolean }
  | { op: 'fillCombined'; vpid: number; pcid: number; eptrta: bigint; global: boolean; size: PageSize; addr: bigint; dirty: boolean }
  | { op: 'fillGpa'; eptrta: bigint; size: '4K' | '2M' | '1G'; addr: bigint; dirty: boolean }
  | { op: 'invvpid'; type: 0 | 1 | 2 | 3; vpid: number; addr: bigint }
  | { op: 'invept'; type: 1 | 2; eptrta: bigint }
  | { op: 'invlpg'; vpid: number; pcid: number; addr: bigint }
  | { op: 'movCr3'; vpid: number; pcide: boolean; pcid: number; noFlush: boolean }
  | { op: 'vmTransition'; vpidEnabled: boolean }
  | { op: 'eptViolation'; eptrta: bigint; gpa: bigint; vpid: number; addr: bigint }
  | { op: 'lookupLinear'; vpid: number; pcid: number; addr: bigint; write: boolean }
  | { op: 'lookupCombined'; vpid: number; pcid: number; eptrta: bigint; addr: bigint; write: boolean }
  | { op: 'lookupGpa'; eptrta: bigint; addr: bigint; write: boolean };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('fillLinear' as const), vpid: arbVpid, pcid: arbPcid, global: fc.boolean(), size: arbLinearSize, addr: arbAddr, dirty: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('fillCombined' as const), vpid: arbVpid, pcid: arbPcid, eptrta: arbEptrta, global: fc.boolean(), size: arbLinearSize, addr: arbAddr, dirty: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('fillGpa' as const), eptrta: arbEptrta, size: arbEptSize, addr: arbAddr, dirty: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('invvpid' as const), type: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const), vpid: arbVpid, addr: arbAddr }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('invept' as const), type: fc.constantFrom(1 as const, 2 as const), eptrta: arbEptrta }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('invlpg' as const), vpid: arbVpid, pcid: arbPcid, addr: arbAddr }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('movCr3' as const), vpid: arbVpid, pcide: fc.boolean(), pcid: arbPcid, noFlush: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('vmTransition' as const), vpidEnabled: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('eptViolation' as const), eptrta: arbEptrta, gpa: arbAddr, vpid: arbVpid, addr: arbAddr }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('lookupLinear' as const), vpid: arbVpid, pcid: arbPcid, addr: arbAddr, write: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('lookupCombined' as const), vpid: arbVpid, pcid: arbPcid, eptrta: arbEptrta, addr: arbAddr, write: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('lookupGpa' as const), eptrta: arbEptrta, addr: arbAddr, write: fc.boolean() }) },
);

/** A fill as the model remembers it: the id is encoded in the output address (id << 30, aligned for any size). */
interface Fill {
  id: number;
  kind: 'linear' | 'combined' | 'gpa';
  vpid: number;
  pcid: number;
  eptrta: bigint;
  global: boolean;
  base: bigint;
  bytes: bigint;
  dirty: boolean;
  key: string;
  alive: boolean;
}

const covers = (f: Fill, a: bigint): boolean => (a & ~(f.bytes - 1n)) === f.base;

/** Kill every live fill the SDM requires `op` to invalidate (the minimum scope; the TLB may drop more). */
function mustInvalidate(fills: Fill[], op: Op): void {
  const va = (f: Fill): boolean => f.kind !== 'gpa';
  const kill = (pred: (f: Fill) => boolean): void => fills.forEach((f) => { if (f.alive && pred(f)) f.alive = false; });
  switch (op.op) {
    case 'invvpid':
      if (op.type === 0) kill((f) => va(f) && f.vpid === op.vpid && covers(f, op.addr));
      if (op.type === 1) kill((f) => va(f) && f.vpid === op.vpid);
      if (op.type === 2) kill((f) => va(f) && f.vpid !== 0);
      if (op.type === 3) kill((f) => va(f) && f.vpid === op.vpid && !f.global);
      break;
    case 'invept':
      kill((f) => (f.kind === 'gpa' || f.kind === 'combined') && (op.type === 2 || f.eptrta === op.eptrta));
      break;
    case 'invlpg':
      kill((f) => va(f) && f.vpid === op.vpid && covers(f, op.addr) && (f.global || f.pcid === op.pcid));
      break;
    case 'movCr3':
      if (!(op.pcide && op.noFlush)) kill((f) => va(f) && f.vpid === op.vpid && !f.global && f.pcid === (op.pcide ? op.pcid : 0));
      break;
    case 'vmTransition':
      if (!op.vpidEnabled) kill((f) => va(f) && f.vpid === 0);
      break;
    case 'eptViolation':
      kill((f) => f.kind === 'gpa' && f.eptrta === op.eptrta && covers(f, op.gpa));
      kill((f) => f.kind === 'combined' && f.eptrta === op.eptrta && f.vpid === op.vpid && covers(f, op.addr));
      break;
    default:
      break;
  }
}

function run(ops: readonly Op[], capacity?: number): void {
  const tlb = new Tlb<L2Gpa, L1Gpa>(capacity === undefined ? {} : { capacity });
  const fills: Fill[] = [];
  let next = 1;
  const remember = (f: Omit<Fill, 'id' | 'alive'>): number => {
    for (const g of fills) if (g.alive && g.key === f.key) g.alive = false; // same slot: replaced
    const id = next++;
    fills.push({ ...f, id, alive: true });
    return id;
  };
  const checkHit = (address: bigint | undefined, ok: (f: Fill) => boolean): void => {
    if (address === undefined) return;
    const f = fills.find((x) => x.id === Number(address >> 30n));
    expect(f, 'a hit must come from a fill').toBeDefined();
    expect(f!.alive, `fill ${f!.id} was invalidated but is still used`).toBe(true);
    expect(ok(f!), `fill ${f!.id} does not match the lookup`).toBe(true);
  };
  for (const op of ops) {
    switch (op.op) {
      case 'fillLinear': {
        const bytes = BYTES[op.size];
        const base = op.addr & ~(bytes - 1n);
        const id = remember({ kind: 'linear', vpid: op.vpid, pcid: op.pcid, eptrta: 0n, global: op.global, base, bytes, dirty: op.dirty, key: `L${op.vpid}/${op.global ? 'g' : op.pcid}/${op.size}/${base}` });
        tlb.fillLinear({ vpid: op.vpid, pcid: op.pcid, base: guestLinear(base), pageSize: op.size, phys: l1gpa(BigInt(id) << 30n), rights: RIGHTS, global: op.global, dirty: op.dirty, patIndex: 0 });
        const hit = tlb.lookupLinear(op.vpid, op.pcid, guestLinear(op.addr), { write: false });
        expect(hit, 'a fresh fill is usable').toBeDefined();
        break;
      }
      case 'fillCombined': {
        const bytes = BYTES[op.size];
        const base = op.addr & ~(bytes - 1n);
        const id = remember({ kind: 'combined', vpid: op.vpid, pcid: op.pcid, eptrta: op.eptrta, global: op.global, base, bytes, dirty: op.dirty, key: `C${op.eptrta}/${op.vpid}/${op.global ? 'g' : op.pcid}/${op.size}/${base}` });
        tlb.fillCombined({
          vpid: op.vpid, pcid: op.pcid, eptrta: op.eptrta, base: guestLinear(base), pageSize: op.size, gpa: l2gpa(base),
          out: l1gpa(BigInt(id) << 30n), rights: RIGHTS, permissions: PERMS, global: op.global, dirty: op.dirty, patIndex: 0, memType: 6, ipat: false,
        });
        expect(tlb.lookupCombined(op.vpid, op.pcid, op.eptrta, guestLinear(op.addr), { write: false }), 'a fresh fill is usable').toBeDefined();
        break;
      }
      case 'fillGpa': {
        const bytes = BYTES[op.size];
        const base = op.addr & ~(bytes - 1n);
        const id = remember({ kind: 'gpa', vpid: -1, pcid: -1, eptrta: op.eptrta, global: false, base, bytes, dirty: op.dirty, key: `G${op.eptrta}/${op.size}/${base}` });
        tlb.fillGuestPhysical({ eptrta: op.eptrta, base: l2gpa(base), pageSize: op.size, out: l1gpa(BigInt(id) << 30n), permissions: PERMS, memType: 6, ipat: false, dirty: op.dirty });
        expect(tlb.lookupGuestPhysical(op.eptrta, l2gpa(op.addr), { write: false }), 'a fresh fill is usable').toBeDefined();
        break;
      }
      case 'invvpid': tlb.invvpid(op.type, op.vpid, guestLinear(op.addr)); break;
      case 'invept': tlb.invept(op.type, op.eptrta); break;
      case 'invlpg': tlb.invlpg(op.vpid, guestLinear(op.addr)); break;
      case 'movCr3': tlb.movToCr3(op.vpid, { pcide: op.pcide, pcid: op.pcid, noFlush: op.noFlush }); break;
      case 'vmTransition': tlb.vmTransition({ vpidEnabled: op.vpidEnabled }); break;
      case 'eptViolation': tlb.eptViolation(op.eptrta, l2gpa(op.gpa), { vpid: op.vpid, linear: guestLinear(op.addr) }); break;
      case 'lookupLinear': {
        const h = tlb.lookupLinear(op.vpid, op.pcid, guestLinear(op.addr), { write: op.write });
        checkHit(h?.address, (f) => f.kind === 'linear' && f.vpid === op.vpid && (f.global || f.pcid === op.pcid) && covers(f, op.addr) && (f.dirty || !op.write));
        if (h) expect(h.address & 0x3fff_ffffn).toBe(op.addr & (BYTES[h.mapping.pageSize] - 1n));
        break;
      }
      case 'lookupCombined': {
        const h = tlb.lookupCombined(op.vpid, op.pcid, op.eptrta, guestLinear(op.addr), { write: op.write });
        checkHit(h?.address, (f) => f.kind === 'combined' && f.vpid === op.vpid && f.eptrta === op.eptrta && (f.global || f.pcid === op.pcid) && covers(f, op.addr) && (f.dirty || !op.write));
        break;
      }
      case 'lookupGpa': {
        const h = tlb.lookupGuestPhysical(op.eptrta, l2gpa(op.addr), { write: op.write });
        checkHit(h?.address, (f) => f.kind === 'gpa' && f.eptrta === op.eptrta && covers(f, op.addr) && (f.dirty || !op.write));
        break;
      }
    }
    mustInvalidate(fills, op);
  }
}

describe('TLB model', () => {
  it('never uses a mapping that INVVPID / INVEPT / INVLPG / MOV CR3 / VM transitions / EPT violations invalidated', () => {
    fc.assert(fc.property(fc.array(arbOp, { minLength: 1, maxLength: 60, size: 'max' }), (ops) => run(ops)), { seed: 0x7e57_0201, numRuns: 400 });
  });

  it('keeps that guarantee when capacity evictions happen', () => {
    fc.assert(fc.property(fc.array(arbOp, { minLength: 1, maxLength: 60, size: 'max' }), (ops) => run(ops, 3)), { seed: 0x7e57_0202, numRuns: 200 });
  });
});
