// Side-effect-free views of nested EPT for the checker and the triage UI: the "EPT12 ∘ EPT01 walk against EPT02" for
// one L2 GPA, and an audit of every EPT02 leaf against the composition rules (translation, rights, page size, type).
// Must not: set A/D flags or change any table (all walks go through read-only views), or consult L0's bookkeeping
// where the tables themselves can answer. Reference: nested-vmx.md §8.6 (invariants), DESIGN.md §3 (EPT02 soundness).
import type { Hpa, L1Gpa, L2Gpa } from '../../cpu/address.js';
import { guestLinear, l2gpaToL1gpaIdentity } from '../../cpu/address.js';
import { walkEpt } from '../../cpu/ept/walker.js';
import { pageSizeBytes, type Ept, type EptAccess, type EptPageSize, type EptPermissions, type EptTranslation, type EptWalkResult } from '../../cpu/ept/types.js';
import type { GuestPhysical, PhysicalAddress } from '../../cpu/address.js';
import type { L0Profile } from '../profile.js';
import { readOnlyEpt } from './l1-memory.js';
import type { Ept02Leaf } from './types.js';

export interface NestedWalk {
  readonly gpa: L2Gpa;
  readonly access: EptAccess;
  /** L1's EPT12 walk (null when vmcs12 does not enable EPT: L2 GPA = L1 GPA). */
  readonly ept12: EptWalkResult<L2Gpa, L1Gpa> | null;
  /** L0's EPT01 walk of EPT12's output (null when EPT12 faulted). */
  readonly ept01: EptWalkResult<L1Gpa, Hpa> | null;
  /** The hardware's EPT02 walk (null when there is no EPT02 root). */
  readonly ept02: EptWalkResult<L2Gpa, Hpa> | null;
  /** What the composition says the access should do. */
  readonly expected: { readonly kind: 'hpa'; readonly hpa: Hpa } | { readonly kind: 'ept12-fault' } | { readonly kind: 'l0-internal' };
  /** EPT02 either misses (an L0 fill would follow) or agrees with `expected`. */
  readonly consistent: boolean;
}

/** Walk EPT12, EPT01 and EPT02 for one access without changing anything. */
export function walkNested(args: {
  readonly gpa: L2Gpa;
  readonly access?: EptAccess;
  readonly ept12: Ept<L2Gpa, L1Gpa> | null;
  readonly ept01: Ept<L1Gpa, Hpa>;
  readonly ept02: Ept<L2Gpa, Hpa> | null;
}): NestedWalk {
  const access = args.access ?? { type: 'read', cause: { kind: 'no-linear' } };
  const w12 = args.ept12 ? walkEpt(readOnlyEpt(args.ept12), args.gpa, access) : null;
  const g1: L1Gpa | undefined = w12 === null ? l2gpaToL1gpaIdentity(args.gpa) : w12.ok ? w12.out : undefined;
  const w01 = g1 === undefined ? null : walkEpt(readOnlyEpt(args.ept01), g1, { type: access.type === 'fetch' ? 'fetch' : access.type === 'read' ? 'read' : 'write', cause: { kind: 'no-linear' } });
  const w02 = args.ept02 ? walkEpt(readOnlyEpt(args.ept02), args.gpa, access) : null;
  const expected: NestedWalk['expected'] = g1 === undefined ? { kind: 'ept12-fault' } : w01 && w01.ok ? { kind: 'hpa', hpa: w01.out } : { kind: 'l0-internal' };
  let consistent = true;
  if (w02 && w02.ok) consistent = expected.kind === 'hpa' && expected.hpa === w02.out;
  return { gpa: args.gpa, access, ept12: w12, ept01: w01, ept02: w02, expected, consistent };
}

/** A successful translation of `gpa` under any right the tables grant (read, else fetch), without side effects. */
export function translateAny<In extends GuestPhysical, Out extends PhysicalAddress>(ept: Ept<In, Out>, gpa: In): EptTranslation<In, Out> | undefined {
  const ro = readOnlyEpt(ept);
  const tries: EptAccess[] = [
    { type: 'read', cause: { kind: 'no-linear' } },
    { type: 'fetch', cause: { kind: 'final', linear: guestLinear(0n), rights: { user: false, writable: true, executeDisable: false } } },
    { type: 'fetch', cause: { kind: 'final', linear: guestLinear(0n), rights: { user: true, writable: true, executeDisable: false } } },
  ];
  for (const a of tries) {
    const t = walkEpt(ro, gpa, a);
    if (t.ok) return t;
  }
  return undefined;
}

export type Ept02AuditRule = 'ept02.translation' | 'ept02.permissions' | 'ept02.page-size' | 'ept02.memory-type' | 'ept02.dirty-withheld' | 'ept02.hardware-entry';

export interface Ept02AuditIssue {
  readonly rule: Ept02AuditRule;
  readonly leaf: Ept02Leaf;
  readonly expected: string;
  readonly actual: string;
}

const SIZE_ORDER: readonly EptPageSize[] = ['4K', '2M', '1G'];

function subset(a: EptPermissions, b: EptPermissions): boolean {
  return (!a.read || b.read) && (!a.write || b.write) && (!a.execute || b.execute) && (!a.userExecute || b.userExecute);
}

function fmt(p: EptPermissions): string {
  return `${p.read ? 'R' : '-'}${p.write ? 'W' : '-'}${p.execute ? 'X' : '-'}${p.userExecute ? 'U' : '-'}`;
}

/**
 * Check every EPT02 leaf against EPT12 and EPT01 as they are now (§8.6): the hardware sees the leaf L0 recorded; its
 * page maps EPT01(EPT12(gpa)); rights ⊆ perm12 ∩ perm01 and without W while EPT12's leaf is not dirty under A/D; page
 * size ≤ both; memory type EPT12's (sdm) or WB + IPAT (kvm, N3). `ept12For` gives the EPT12 a leaf's root shadows
 * (null for a vmcs12 without EPT).
 */
export function auditEpt02(
  leaves: readonly Ept02Leaf[],
  ept12For: (leaf: Ept02Leaf) => Ept<L2Gpa, L1Gpa> | null,
  ept01: Ept<L1Gpa, Hpa>,
  ept02For: (leaf: Ept02Leaf) => Ept<L2Gpa, Hpa> | undefined,
  profile: L0Profile,
): Ept02AuditIssue[] {
  const out: Ept02AuditIssue[] = [];
  const issue = (rule: Ept02AuditRule, leaf: Ept02Leaf, expected: string, actual: string): void => {
    out.push({ rule, leaf, expected, actual });
  };
  for (const leaf of leaves) {
    const h02 = ept02For(leaf);
    const hw = h02 ? translateAny(h02, leaf.gpa) : undefined;
    if (!hw || hw.out !== leaf.hpa || hw.pageSize !== leaf.pageSize) {
      issue('ept02.hardware-entry', leaf, `${leaf.pageSize} → 0x${(leaf.hpa as bigint).toString(16)}`, hw ? `${hw.pageSize} → 0x${(hw.out as bigint).toString(16)}` : 'no translation');
    }
    const e12 = ept12For(leaf);
    const t12 = e12 ? translateAny(e12, leaf.gpa) : undefined;
    if (e12 && !t12) {
      issue('ept02.translation', leaf, 'EPT12 maps the page', 'EPT12 does not translate it');
      continue;
    }
    const g1 = t12 ? t12.out : l2gpaToL1gpaIdentity(leaf.gpa);
    const t01 = translateAny(ept01, g1);
    if (!t01) {
      issue('ept02.translation', leaf, 'EPT01 maps the L1 page', `EPT01 does not translate L1 0x${(g1 as bigint).toString(16)}`);
      continue;
    }
    if (t01.out !== leaf.hpa) issue('ept02.translation', leaf, `0x${(t01.out as bigint).toString(16)}`, `0x${(leaf.hpa as bigint).toString(16)}`);
    const all: EptPermissions = { read: true, write: true, execute: true, userExecute: true };
    const p12 = t12 ? t12.permissions : all;
    const both: EptPermissions = {
      read: p12.read && t01.permissions.read,
      write: p12.write && t01.permissions.write,
      execute: p12.execute && t01.permissions.execute,
      userExecute: p12.userExecute && t01.permissions.userExecute,
    };
    if (!subset(leaf.permissions, both)) issue('ept02.permissions', leaf, `⊆ ${fmt(both)}`, fmt(leaf.permissions));
    if (e12 && e12.eptp.accessedDirty && t12 && !t12.dirty && leaf.permissions.write) issue('ept02.dirty-withheld', leaf, 'no W while the EPT12 leaf is not dirty', 'W');
    const min = SIZE_ORDER[Math.min(SIZE_ORDER.indexOf(t12 ? t12.pageSize : '1G'), SIZE_ORDER.indexOf(t01.pageSize))]!;
    if (SIZE_ORDER.indexOf(leaf.pageSize) > SIZE_ORDER.indexOf(min)) issue('ept02.page-size', leaf, `≤ ${min}`, leaf.pageSize);
    const wantType = profile.name === 'kvm' ? { t: 6, i: true } : t12 ? { t: t12.memType, i: t12.ipat } : { t: t01.memType, i: t01.ipat };
    if (leaf.memType !== wantType.t || leaf.ipat !== wantType.i) issue('ept02.memory-type', leaf, `type ${wantType.t} ipat ${wantType.i}`, `type ${leaf.memType} ipat ${leaf.ipat}`);
    // The whole page must be contiguous in both walks (checked at its last 4 KiB as well).
    const last = ((leaf.gpa as bigint) + pageSizeBytes(leaf.pageSize) - 0x1000n) as L2Gpa;
    if (last !== leaf.gpa) {
      const tl12 = e12 ? translateAny(e12, last) : undefined;
      const gl = tl12 ? tl12.out : e12 ? undefined : l2gpaToL1gpaIdentity(last);
      const tl01 = gl !== undefined ? translateAny(ept01, gl) : undefined;
      const want = (leaf.hpa as bigint) + pageSizeBytes(leaf.pageSize) - 0x1000n;
      if (!tl01 || (tl01.out as bigint) !== want) issue('ept02.page-size', leaf, `last 4 KiB at 0x${want.toString(16)}`, tl01 ? `0x${(tl01.out as bigint).toString(16)}` : 'not translated');
    }
  }
  return out;
}
