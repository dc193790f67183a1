// L0's handling of an EPT violation from vmcs02 (§6.2: always L0's): rebuild the access from the exit, walk EPT12 in
// software (setting its A/D like the reference) and install the composed EPT02 leaf, or synthesize the EPT12 fault for
// L1, or report an access L0 itself must handle. Must not: deliver anything to L1 or touch vmcs02.
// Reference: nested-vmx.md §8.6 fill procedure, §8.5 (qualification), §6.4 (synthesized 48/49).
import type { Hpa, L1Gpa, L2Gpa } from '../../cpu/address.js';
import { L1_GPA } from '../../cpu/address.js';
import type { Ept, EptAccess, EptCapabilities } from '../../cpu/ept/types.js';
import type { L0Profile } from '../profile.js';
import { accessFromEpt02Violation, composeEpt02, synthesizedEptExit, type ComposeOutcome, type SynthesizedEptExit } from './compose.js';
import type { Ept02Manager } from './ept02.js';
import { l1ToHost } from './l1-memory.js';
import type { Ept02Leaf, Ept02LeafSpec, Ept02Role } from './types.js';

/** An EPT-violation exit from vmcs02 as the hardware recorded it. */
export interface Ept02Violation {
  readonly gpa: L2Gpa;
  readonly qualification: bigint;
  /** GUEST_LINEAR_ADDRESS (meaningful when qualification bit 7 is 1). */
  readonly linear: bigint;
}

export type Ept02FillResult =
  /** A leaf was installed; L0 resumes L2, which retries the access. */
  | { readonly kind: 'filled'; readonly leaf: Ept02Leaf; readonly access: EptAccess }
  /** EPT12 faulted: L0 delivers this exit to L1 (§6.4). */
  | { readonly kind: 'ept12-fault'; readonly exit: SynthesizedEptExit; readonly access: EptAccess; readonly outcome: Extract<ComposeOutcome, { kind: 'ept12-violation' | 'ept12-misconfig' }> }
  /** EPT12's PML gate (vmcs12 "enable PML") had a log-full event in the walk: the access does not occur (SDM 29.3.6). */
  | { readonly kind: 'pml-full'; readonly access: EptAccess }
  /** EPT01 does not back the access (MMIO, read-only memory) or L0 could not build EPT02: L0's own business. */
  | { readonly kind: 'l0-internal'; readonly why: string; readonly access: EptAccess; readonly l1Gpa?: L1Gpa };

export interface Ept02FillContext {
  readonly manager: Ept02Manager;
  readonly role: Ept02Role;
  /** EPT12 with its tables in L1 memory read through EPT01 (writes = A/D updates); null for a vmcs12 without EPT. */
  readonly ept12: Ept<L2Gpa, L1Gpa> | null;
  readonly ept01: Ept<L1Gpa, Hpa>;
  readonly hostCaps: EptCapabilities;
  readonly profile: L0Profile;
  /** Replaces the composition (a deliberately wrong L0 in tests substitutes its own). */
  readonly compose?: (input: Parameters<typeof composeEpt02>[0]) => ComposeOutcome;
  /**
   * 'all-levels': a write to any EPT12 table page the walk read zaps the leaf. 'non-leaf' (default, KVM's unsync leaf
   * tables): only pages holding the upper-level entries are tracked; a changed EPT12 leaf entry reaches EPT02 at INVEPT.
   */
  readonly tracking?: 'non-leaf' | 'all-levels';
}

/** The EPT12 table pages a walk read (L1 pages and the host pages behind them), deduplicated in walk order. */
export function ept12TablePages(path: readonly { readonly address: unknown }[], ept01: Ept<L1Gpa, Hpa>): { l1: L1Gpa[]; host: Hpa[] } {
  const l1: L1Gpa[] = [];
  const host: Hpa[] = [];
  for (const step of path) {
    const page = L1_GPA.of((step.address as bigint) & ~0xfffn);
    if (l1.includes(page)) continue;
    l1.push(page);
    const h = l1ToHost(ept01, page, false);
    if (h !== undefined) host.push(h);
  }
  return { l1, host };
}

export function fillEpt02(ctx: Ept02FillContext, v: Ept02Violation): Ept02FillResult {
  const access = accessFromEpt02Violation(v.qualification, v.linear, ctx.hostCaps);
  const compose = ctx.compose ?? composeEpt02;
  // L0's EPT12 A/D updates only add rights: they must not zap what L0 is about to install.
  const out = ctx.manager.untracked(() => compose({ gpa: v.gpa, access, ept12: ctx.ept12, ept01: ctx.ept01, hostCaps: ctx.hostCaps, profile: ctx.profile }));
  // A PML log-full event came first in the EPT12 walk: no flag was set and nothing is installed (features/pml12.ts).
  if (ctx.ept12?.flagGate?.takeFullEvent()) return { kind: 'pml-full', access };
  switch (out.kind) {
    case 'ept12-violation':
    case 'ept12-misconfig':
      return { kind: 'ept12-fault', exit: synthesizedEptExit(out.fault, v.qualification, v.linear, ctx.profile), access, outcome: out };
    case 'l0-internal':
      return { kind: 'l0-internal', why: out.why, access, l1Gpa: out.l1Gpa };
    case 'map': {
      const path = out.walk12 && out.walk12.ok ? out.walk12.path : [];
      const tracked = (ctx.tracking ?? 'non-leaf') === 'all-levels' ? path : path.slice(0, -1);
      const pages = ept12TablePages(tracked, ctx.ept01);
      const r = install(ctx, out.leaf, pages, v.gpa, access);
      return r.ok ? { kind: 'filled', leaf: r.leaf, access } : { kind: 'l0-internal', why: r.reason, access, l1Gpa: out.leaf.l1Gpa };
    }
  }
}

function install(ctx: Ept02FillContext, spec: Ept02LeafSpec, pages: { l1: L1Gpa[]; host: Hpa[] }, gpa: L2Gpa, access: EptAccess) {
  const first = ctx.manager.install(ctx.role, spec, pages, { gpa, access });
  if (first.ok || first.reason !== 'out-of-pages') return first;
  // Out of L0 pages: drop every cached root and try once more (KVM zaps shadow pages under memory pressure).
  ctx.manager.dropRoots('l0-request');
  return ctx.manager.install(ctx.role, spec, pages, { gpa, access });
}
