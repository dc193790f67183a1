// QEMU's register dump after "KVM: entry failed, hardware error 0x…" (trace-formats.md §8). It is the vCPU
// state as KVM_GET_REGS/KVM_GET_SREGS report it, so it goes to `derived.qemu`, never into the VMCS.
// Must not: guess VMCS fields from it (e.g. QEMU's CS flags 00809300 are not the VMCS access rights 0x08093).
import type { QemuRegisterDump } from './types.js';
import { hexValue, scanPairs } from './pairs.js';

const ENTRY_FAILED = /^KVM: entry failed, hardware error 0x([0-9a-fA-F]+)\s*$/;
// `ES =0000 00000000 0000ffff 00009300` with an optional decode (`DPL=0 DS   [-WA]`) in 64-bit dumps.
const SEGMENT = /^(ES|CS|SS|DS|FS|GS|LDT|TR) ?=([0-9a-fA-F]{4}) ([0-9a-fA-F]{8,16}) ([0-9a-fA-F]{8}) ([0-9a-fA-F]{8})(?:\s+(.*?))?\s*$/;
const TABLE = /^(GDT|IDT)=\s+([0-9a-fA-F]{8,16}) ([0-9a-fA-F]{8})\s*$/;
const FLAGS_LINE = /^(EIP|RIP)=([0-9a-fA-F]{8,16}) (EFL|RFL)=([0-9a-fA-F]{8}) (\[[^\]]*\])\s+(.*)$/;
const CODE = /^Code=(.*)$/;
const REGS = /^(?:[ER](?:AX|BX|CX|DX|SI|DI|BP|SP)|R(?:8 |9 |1[0-5]))=/;
// QEMU's `CR0=… CR2=… CR3=… CR4=…` (KVM's host line has no CR2), `DR0=…`, `EFER=<hex>` (KVM prints `EFER= 0x…`).
const CONTROL = /^(?:CR0=[0-9a-fA-F]+ CR2=|DR[0-7]=|EFER=[0-9a-fA-F]+\s*$)/;
const CONTROL_KEY = /^(?:CR[0234]|DR[0-7]|EFER)$/;
// The hint QEMU prints for hardware error 0x80000021 ("unrestricted mode" support).
const HINT = /^(?:If you're running a guest on an Intel machine without unrestricted mode|support, the failure can be most likely due to the guest entering an invalid|state for Intel VT\. For example, the guest maybe running in big real mode|which is not supported on less recent Intel processors\.)/;

/** True when the text is a line of the QEMU dump. */
export function isQemuLine(text: string): boolean {
  return ENTRY_FAILED.test(text) || SEGMENT.test(text) || TABLE.test(text) || FLAGS_LINE.test(text) || CODE.test(text) || REGS.test(text) || CONTROL.test(text) || HINT.test(text);
}

export function isQemuStart(text: string): boolean {
  return ENTRY_FAILED.test(text);
}

export function newQemuDump(line: number): QemuRegisterDump {
  return { line, regs: {}, state: {}, segments: {}, tables: {}, control: {}, hint: [] };
}

/**
 * Add one line to the dump. Returns null when the line was read, or the reason it could not be
 * (the caller reports it as unmapped or as bad input).
 */
export function addQemuLine(q: QemuRegisterDump, text: string): string | null {
  let m = ENTRY_FAILED.exec(text);
  if (m) {
    q.hardwareError = hexValue(m[1]!);
    return null;
  }
  m = SEGMENT.exec(text);
  if (m) {
    const seg = { selector: hexValue(m[2]!), base: hexValue(m[3]!), limit: hexValue(m[4]!), flags: hexValue(m[5]!) };
    q.segments[m[1]!] = m[6] ? { ...seg, decoded: m[6] } : seg;
    return null;
  }
  m = TABLE.exec(text);
  if (m) {
    q.tables[m[1]!] = { base: hexValue(m[2]!), limit: hexValue(m[3]!) };
    return null;
  }
  m = FLAGS_LINE.exec(text);
  if (m) {
    q.regs[m[1]!] = hexValue(m[2]!);
    q.regs[m[3]!] = hexValue(m[4]!);
    q.flagsText = m[5]!;
    const { pairs, rest } = scanPairs(m[6]!);
    if (rest !== '') return `expected CPL=… II=… A20=… SMM=… HLT=… after the flags, found "${rest}"`;
    for (const p of pairs) q.state[p.key] = hexValue(p.value);
    return null;
  }
  m = CODE.exec(text);
  if (m) {
    q.code = m[1]!.trim();
    return null;
  }
  if (HINT.test(text)) {
    q.hint.push(text.trim());
    return null;
  }
  if (REGS.test(text) || CONTROL.test(text)) {
    // QEMU pads two-character names: `R8 =…`, so normalise `R8 =` to `R8=` before reading pairs.
    const { pairs, rest } = scanPairs(text.replace(/\b(R[89]) =/g, '$1='));
    if (rest !== '' || pairs.length === 0) return `expected NAME=hex pairs, found "${rest}"`;
    for (const p of pairs) {
      if (CONTROL_KEY.test(p.key)) q.control[p.key] = hexValue(p.value);
      else q.regs[p.key] = hexValue(p.value);
    }
    return null;
  }
  return 'not a line of the QEMU register dump';
}
