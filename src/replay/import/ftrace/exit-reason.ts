// VMX exit-reason text as Linux prints it ("EPT_VIOLATION", "INVALID_STATE FAILED_VMENTRY", "0x45") → the 32-bit
// exit reason, through the generated exit-reason table (names and aliases such as PENDING_INTERRUPT).
// Flag names are VMX_EXIT_REASON_FLAGS (bits 31:16); __print_flags prints leftover bits as hex.
// Must not: guess. An unknown name yields `undefined` and the caller keeps the text.
import { EXIT_REASONS } from '../../../cpu/generated/exit-reasons.js';

const BY_NAME = new Map<string, number>();
for (const r of EXIT_REASONS) {
  if (r.kind === 'reserved') continue;
  BY_NAME.set(r.name, r.reason);
  for (const a of r.aliases) BY_NAME.set(a, r.reason);
}

/** Exit-reason flag names (bits 31:16) as Linux prints them. */
export const EXIT_REASON_FLAGS: ReadonlyMap<string, number> = new Map([
  ['FAILED_VMENTRY', 0x8000_0000],
  ['SGX_ENCLAVE_MODE', 0x0800_0000],
]);

export const FAILED_VMENTRY = 0x8000_0000;

export interface ParsedReason {
  /** Full 32-bit exit reason, when every token was understood. */
  readonly reason?: number;
  /** The text as printed (always kept for unknown names). */
  readonly text: string;
  /** Why `reason` is missing. */
  readonly problem?: string;
}

function hexToken(t: string): number | undefined {
  if (!/^0x[0-9a-f]{1,8}$/i.test(t)) return undefined;
  return Number.parseInt(t.slice(2), 16) >>> 0;
}

/** Basic reason name (or hex) followed by optional flag names (or hex) separated by spaces. */
export function parseExitReason(text: string): ParsedReason {
  const tokens = text.trim().split(/\s+/).filter((t) => t !== '');
  if (tokens.length === 0) return { text, problem: 'empty exit reason' };
  const [first, ...flags] = tokens as [string, ...string[]];
  let reason = BY_NAME.get(first) ?? hexToken(first);
  if (reason === undefined) return { text: text.trim(), problem: `unknown exit-reason name ${first}` };
  if (reason > 0xffff && flags.length > 0) return { text: text.trim(), problem: `basic reason ${first} has flag bits` };
  for (const f of flags) {
    const bit = EXIT_REASON_FLAGS.get(f) ?? hexToken(f);
    if (bit === undefined || (bit & 0xffff) !== 0) return { text: text.trim(), problem: `unknown exit-reason flag ${f}` };
    reason = (reason | bit) >>> 0;
  }
  return { reason, text: text.trim() };
}

/** True when the name is a VMX basic exit reason or alias. */
export function isExitReasonName(name: string): boolean {
  return BY_NAME.has(name);
}
