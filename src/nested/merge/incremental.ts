// Change tracking for the incremental vmcs02 merge: what each merge step's last record depends on (read off the inputs
// it recorded: vmcs01/vmcs12/host/l2Live/merged slots, L0MergeInputs items, the profile), and whether any of those
// sources holds a different value than at the previous merge. Sources are compared by value against a snapshot taken at
// the end of each merge, so writes that bypass Vmcs.set (region loads, copyFrom) are seen too.
// Must not: decide merge values or provenance (merge.ts does); a source it cannot name makes the step depend on everything.
import { Field } from '../../cpu/generated/vmcs-fields.js';
import { slotOf, Vmcs, VMCS_SLOT_COUNT } from '../../cpu/vmcs.js';
import type { L0Profile } from '../profile.js';
import type { L0MergeInputs, ProvenanceInput } from './types.js';

/** Dependency kinds, packed with their index as kind · KIND_SHIFT + index. */
const V01 = 0;
const V12 = 1;
const HOST = 2;
const L2LIVE = 3;
const MERGED = 4;
const L0ITEM = 5;
const PROFILE = 6;
const OPAQUE = 7;
const KIND_SHIFT = 1024;

/** L0 input keys derived from an L0MergeInputs item under another name (rules-controls.ts records them as flags). */
const DERIVED_ITEM: Readonly<Record<string, string>> = {
  postedIntrDescBacked: 'postedIntrDesc',
  virtualApicBacked: 'virtualApicPage',
  apicAccessBacked: 'apicAccessPage',
  msrBitmap02Built: 'msrBitmap02',
};

/** Items of L0MergeInputs a dependency names, by index (registered as keys are first seen). */
const L0_ITEMS: string[] = [];
const L0_ITEM_INDEX = new Map<string, number>();
const ENCODING_BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(Field as Record<string, number>));

function fieldSlot(name: string): number {
  const enc = ENCODING_BY_NAME.get(name);
  return enc === undefined || (enc & 1) !== 0 ? -1 : slotOf(enc);
}

function l0Item(name: string): number {
  let i = L0_ITEM_INDEX.get(name);
  if (i === undefined) {
    i = L0_ITEMS.length;
    L0_ITEMS.push(name);
    L0_ITEM_INDEX.set(name, i);
  }
  return L0ITEM * KIND_SHIFT + i;
}

const L0_KEY_CODES = new Map<string, number>();

/** The dependency an L0 input key names ("realEntry", "l1.efer", "merged.X", "host.X", "deviation.id", …). */
function l0KeyCode(key: string): number {
  let code = L0_KEY_CODES.get(key);
  if (code !== undefined) return code;
  const dot = key.indexOf('.');
  const head = dot < 0 ? key : key.slice(0, dot);
  const rest = dot < 0 ? '' : key.slice(dot + 1);
  const slotCode = (kind: number): number => {
    const slot = fieldSlot(rest);
    return slot < 0 ? OPAQUE * KIND_SHIFT : kind * KIND_SHIFT + slot;
  };
  if (head === 'merged') code = slotCode(MERGED);
  else if (head === 'host') code = slotCode(HOST);
  else if (head === 'l2Live') code = slotCode(L2LIVE);
  else if (head === 'deviation' || head === 'profile') code = PROFILE * KIND_SHIFT;
  else if (PROBE_ITEMS.has(DERIVED_ITEM[head] ?? head)) code = l0Item(DERIVED_ITEM[head] ?? head);
  else code = OPAQUE * KIND_SHIFT;
  L0_KEY_CODES.set(key, code);
  return code;
}

/** Every item of L0MergeInputs (an L0 key naming anything else is opaque: the step is re-gathered every time). */
const PROBE_ITEMS: ReadonlySet<string> = new Set<keyof L0MergeInputs>([
  'host', 'realEntry', 'l2Live', 'exceptionBitmap', 'needsPfIntercept', 'cr0GuestOwned', 'cr4GuestOwned', 'cr0AlwaysOn', 'cr0AlwaysOff',
  'cr4AlwaysOn', 'cr4AlwaysOff', 'shadowCr3', 'shadowPdptrs', 'eptp02', 'vpid02', 'msrBitmap02', 'virtualApicPage', 'apicAccessPage',
  'postedIntrDesc', 'unbackedPage', 'postedIntrNv02', 'l1', 'preemptionTimer02', 'enclsBitmap01', 'emulatesUmip',
  'requestInterruptWindow', 'requestNmiWindow', 'reinjection',
]);

/**
 * The sources a step's recorded inputs name. Relies on the rule-kit contract that `gather` reads nothing it does not
 * record: if every named source holds the value it held at the previous merge, `gather` returns the same inputs.
 */
export function dependenciesOf(inputs: readonly ProvenanceInput[]): Int32Array {
  const out = new Int32Array(inputs.length);
  for (let k = 0; k < inputs.length; k++) {
    const x = inputs[k]!;
    const field = x.field;
    if (field === undefined) out[k] = OPAQUE * KIND_SHIFT;
    else if (x.from === 'L0') out[k] = l0KeyCode(field);
    else {
      const slot = fieldSlot(field);
      out[k] = slot < 0 ? OPAQUE * KIND_SHIFT : (x.from === 'vmcs01' ? V01 : V12) * KIND_SHIFT + slot;
    }
  }
  return out;
}

/** Whether two L0MergeInputs item values are equal (scalars by value, small objects and arrays member by member). */
function sameItem(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || a instanceof Vmcs || b instanceof Vmcs) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if ((a as Record<string, unknown>)[k] !== (b as Record<string, unknown>)[k]) return false;
  return true;
}

/** A copy of an item that later changes to the caller's objects cannot reach (VMCS items are compared by slot). */
function snapshotItem(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || v instanceof Vmcs) return v;
  return Array.isArray(v) ? [...(v as unknown[])] : { ...(v as object) };
}

/**
 * The sources of the previous merge, and per merge the question "did this step's dependencies change since then?".
 * `begin` says whether a previous complete merge exists; a merge that does not reach `end` (a rule threw) leaves none.
 */
export class MergeSources {
  private readonly prev01 = new Uint32Array(2 * VMCS_SLOT_COUNT);
  private readonly prev12 = new Uint32Array(2 * VMCS_SLOT_COUNT);
  private readonly prevHost = new Uint32Array(2 * VMCS_SLOT_COUNT);
  private readonly prevL2Live = new Uint32Array(2 * VMCS_SLOT_COUNT);
  private readonly prevMerged = new Uint32Array(2 * VMCS_SLOT_COUNT);
  private prevL2LivePresent = false;
  private prevItems: unknown[] = [];
  private prevProfile: L0Profile | undefined;
  private prevDeviations: string[] = [];
  private valid = false;
  /**
   * For the current merge, per dependency code: 1 when that source may differ from the previous merge. Filled by
   * `begin` for every VMCS slot, L0 item and the profile; merged slots start changed and are settled as steps write them.
   */
  private readonly changed = new Uint8Array((OPAQUE + 1) * KIND_SHIFT);

  begin(vmcs01: Vmcs, vmcs12: Vmcs, l0: L0MergeInputs, profile: L0Profile): boolean {
    const had = this.valid;
    this.valid = false;
    if (!had) return false;
    const c = this.changed;
    markSlots(c, V01 * KIND_SHIFT, vmcs01.words, this.prev01);
    markSlots(c, V12 * KIND_SHIFT, vmcs12.words, this.prev12);
    markSlots(c, HOST * KIND_SHIFT, l0.host.words, this.prevHost);
    if (l0.l2Live !== null && this.prevL2LivePresent) markSlots(c, L2LIVE * KIND_SHIFT, l0.l2Live.words, this.prevL2Live);
    else c.fill(1, L2LIVE * KIND_SHIFT, (L2LIVE + 1) * KIND_SHIFT);
    c.fill(1, MERGED * KIND_SHIFT, (MERGED + 1) * KIND_SHIFT);
    // An item first named after the last snapshot (or during this merge) has no previous value: changed.
    c.fill(1, L0ITEM * KIND_SHIFT, (L0ITEM + 1) * KIND_SHIFT);
    const items = l0 as unknown as Record<string, unknown>;
    for (let i = 0; i < this.prevItems.length; i++) c[L0ITEM * KIND_SHIFT + i] = sameItem(items[L0_ITEMS[i]!], this.prevItems[i]) ? 0 : 1;
    c[PROFILE * KIND_SHIFT] = this.sameProfile(profile) ? 0 : 1;
    c.fill(1, OPAQUE * KIND_SHIFT);
    return true;
  }

  /** True when every dependency in `deps` holds the value it held at the previous merge. */
  unchanged(deps: Int32Array): boolean {
    const c = this.changed;
    for (let k = 0; k < deps.length; k++) if (c[deps[k]!] !== 0) return false;
    return true;
  }

  /** A step stored its last value in `slot` of vmcs02 (the previous merge's): the steps after it that read it see no change. */
  kept(slot: number): void {
    this.changed[MERGED * KIND_SHIFT + slot] = 0;
  }

  /** A step wrote `slot` of vmcs02: whether the steps after it that read it see a change. */
  wrote(slot: number, merged: Vmcs): void {
    this.changed[MERGED * KIND_SHIFT + slot] = sameSlot(merged.words, this.prevMerged, slot) ? 0 : 1;
  }

  /** Snapshot this merge's sources as the baseline of the next one. */
  end(vmcs01: Vmcs, vmcs12: Vmcs, l0: L0MergeInputs, profile: L0Profile, vmcs02: Vmcs): void {
    this.prev01.set(vmcs01.words);
    this.prev12.set(vmcs12.words);
    this.prevHost.set(l0.host.words);
    this.prevL2LivePresent = l0.l2Live !== null;
    if (l0.l2Live) this.prevL2Live.set(l0.l2Live.words);
    this.prevMerged.set(vmcs02.words);
    const items = new Array<unknown>(L0_ITEMS.length);
    for (let i = 0; i < L0_ITEMS.length; i++) items[i] = snapshotItem((l0 as unknown as Record<string, unknown>)[L0_ITEMS[i]!]);
    this.prevItems = items;
    if (this.prevProfile !== profile || !this.sameProfile(profile)) {
      this.prevProfile = profile;
      this.prevDeviations = [...profile.deviations];
    }
    this.valid = true;
  }

  private sameProfile(p: L0Profile): boolean {
    const prev = this.prevProfile;
    if (!prev || prev.name !== p.name || p.deviations.size !== this.prevDeviations.length) return false;
    for (const d of this.prevDeviations) if (!p.deviations.has(d)) return false;
    return true;
  }
}

/** changed[base + slot] = 1 where the slot's words differ between `cur` and `prev`. */
function markSlots(changed: Uint8Array, base: number, cur: Uint32Array, prev: Uint32Array): void {
  for (let s = 0; s < VMCS_SLOT_COUNT; s++) changed[base + s] = cur[2 * s] === prev[2 * s] && cur[2 * s + 1] === prev[2 * s + 1] ? 0 : 1;
}

function sameSlot(cur: Uint32Array, prev: Uint32Array, slot: number): boolean {
  return cur[2 * slot] === prev[2 * slot] && cur[2 * slot + 1] === prev[2 * slot + 1];
}
