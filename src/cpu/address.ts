// Address spaces as branded bigint types: guest-linear, L2 guest-physical, L1 guest-physical, host-physical.
// Only translation functions (paging, EPT walkers, the named identity maps below) turn one space into another.
// Must not: do arithmetic across spaces or accept an already-branded value of another space in a constructor.
// SDM Vol. 3A 4.1 (linear vs physical), Vol. 3C 28.2.1 (guest-physical addresses under EPT); reference §0.1, §8.

declare const addressSpaceBrand: unique symbol;

/** A 64-bit address tagged with the space it belongs to. The brand exists only at compile time. */
export type Branded<S extends string> = bigint & { readonly [addressSpaceBrand]: S };

export type GuestLinear = Branded<'GuestLinear'>;
/** L2 guest-physical: what L2's paging produces and what EPT12 / EPT02 translate. */
export type L2Gpa = Branded<'L2Gpa'>;
/** L1 guest-physical: L1's "physical" memory. On the single-level reference machine this is the machine's physical space. */
export type L1Gpa = Branded<'L1Gpa'>;
/** Host-physical: L0's memory, what EPT01 and EPT02 produce. */
export type Hpa = Branded<'Hpa'>;

/** Any physical-address space (where memory lives, where paging structures live). */
export type PhysicalAddress = L2Gpa | L1Gpa | Hpa;
/**
 * A guest-physical space: an input of some EPT. The same walker serves EPT12 (L2Gpa→L1Gpa), EPT01 (L1Gpa→Hpa) and
 * EPT02 (L2Gpa→Hpa) through type parameters, so feeding an L2Gpa to EPT01 does not compile. The single-level
 * reference machine has just one guest-physical space: there L1's guest (L2) uses L2Gpa and the machine's memory is L1Gpa.
 */
export type GuestPhysical = L2Gpa | L1Gpa;
export type AnyAddress = PhysicalAddress | GuestLinear;
export type AddressSpaceName = 'GuestLinear' | 'L2Gpa' | 'L1Gpa' | 'Hpa';

/** Rejects (as `never`) any argument that already carries an address brand, so constructors cannot launder spaces. */
export type Unbranded<T> = T extends { readonly [addressSpaceBrand]: string } ? never : T;

const TWO_POW_64 = 1n << 64n;

function brand<A extends AnyAddress>(x: bigint, space: AddressSpaceName): A {
  if (x < 0n || x >= TWO_POW_64) {
    throw new RangeError(`turtles bug: ${space} address ${x} is not an unsigned 64-bit value`);
  }
  return x as A;
}

export function guestLinear<T extends bigint>(x: T & Unbranded<T>): GuestLinear {
  return brand<GuestLinear>(x, 'GuestLinear');
}
export function l2gpa<T extends bigint>(x: T & Unbranded<T>): L2Gpa {
  return brand<L2Gpa>(x, 'L2Gpa');
}
export function l1gpa<T extends bigint>(x: T & Unbranded<T>): L1Gpa {
  return brand<L1Gpa>(x, 'L1Gpa');
}
export function hpa<T extends bigint>(x: T & Unbranded<T>): Hpa {
  return brand<Hpa>(x, 'Hpa');
}

/**
 * A runtime handle on one space: its name (for messages and traces) and its constructor. Generic code (walkers,
 * memory, builders) receives the handle so it can build addresses of the right brand from raw entry bits.
 */
export interface AddressSpace<A extends AnyAddress> {
  readonly name: AddressSpaceName;
  of<T extends bigint>(x: T & Unbranded<T>): A;
}

export const GUEST_LINEAR: AddressSpace<GuestLinear> = { name: 'GuestLinear', of: guestLinear };
export const L2_GPA: AddressSpace<L2Gpa> = { name: 'L2Gpa', of: l2gpa };
export const L1_GPA: AddressSpace<L1Gpa> = { name: 'L1Gpa', of: l1gpa };
export const HPA: AddressSpace<Hpa> = { name: 'Hpa', of: hpa };

/** The raw value, for arithmetic; wrap the result back with the same space's constructor. */
export function raw(a: AnyAddress): bigint {
  return a;
}

/** a + delta within the same space, modulo 2^64 (linear addresses wrap; physical ones never get near the top). */
export function addrAdd<A extends AnyAddress>(a: A, delta: bigint): A {
  return BigInt.asUintN(64, a + delta) as A;
}

/** The base of the naturally aligned block of `size` bytes (a power of two) containing a. */
export function alignDown<A extends AnyAddress>(a: A, size: bigint): A {
  return (a & ~(size - 1n)) as A;
}

/** Offset of a within its naturally aligned block of `size` bytes. */
export function offsetIn(a: AnyAddress, size: bigint): bigint {
  return a & (size - 1n);
}

/**
 * The translation used when L1 runs L2 without EPT (vmcs12 "enable EPT" = 0): L2 guest-physical equals L1
 * guest-physical (reference §8.8). It is the only brand conversion that is not a page walk.
 */
export function l2gpaToL1gpaIdentity(a: L2Gpa): L1Gpa {
  return (a as bigint) as L1Gpa;
}

/** Hex for messages: space name and address, e.g. "L2Gpa 0x1000". */
export function formatAddress(space: AddressSpaceName, a: AnyAddress): string {
  return `${space} 0x${(a as bigint).toString(16)}`;
}
