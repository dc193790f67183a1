// Entry point for VMCS-state importers: detects the format of a text and dispatches to its parser.
// Parsers take the text and the file name (for messages) and return values; they never read files.
// Must not: open files, consult the environment, or throw on bad input (a thrown error is a turtles bug).
import { physicalLines } from '../line-prefix.js';
import { parseJsonVmcs } from './json.js';
import { isQemuStart } from './qemu.js';
import { parseTextDump, startsDumpLine } from './text-dump.js';
import { dumpError, type ParseResult, type VmcsDumpFormat } from './types.js';

export type { ParsedVmcsDump, ParseResult, VmcsDumpError, VmcsDumpFormat, UnmappedLine, DumpDerived, QemuRegisterDump } from './types.js';
export { readQwordMemory, VMCS_JSON_FORMAT } from './json.js';

// Lines only Xen's vmcs_dump_vcpu prints (the rest of its grammar is KVM's).
const XEN_ONLY = [
  /^sel\s+attr\s+limit\s+base$/,
  /^(?:CS|DS|SS|ES|FS|GS|LDTR|TR):\s+[0-9a-fA-F]{4}\s+[0-9a-fA-F]{5}\s/,
  /^EFER\((?:VMCS|MSR LL)\)/,
  /^PreemptionTimer = /,
  /VMfunc controls = /,
  /^\*+ VMCS Areas? \*+$/,
  /^RSP = 0x[0-9a-fA-F]+ \(0x/,
];

/** Which VMCS-state format a text is in. */
export function detectVmcsDumpFormat(text: string): VmcsDumpFormat {
  if (text.trimStart().startsWith('{')) return 'turtles-json';
  let guest = false;
  let xen = false;
  let qemu = false;
  let xenPrefixed = false;
  for (const l of physicalLines(text)) {
    const t = l.text.trim();
    if (t === '*** Guest State ***') {
      guest = true;
      if (l.prefixes.includes('xen')) xenPrefixed = true;
    }
    if (XEN_ONLY.some((re) => re.test(t))) xen = true;
    if (isQemuStart(t)) qemu = true;
  }
  if (guest) return xen || xenPrefixed ? 'xen-vmcs-dump' : 'kvm-dump-vmcs';
  if (qemu) return 'qemu-entry-failed';
  return 'unknown';
}

/** Parse a VMCS state in any supported format. */
export function parseVmcsDump(text: string, file: string): ParseResult {
  const format = detectVmcsDumpFormat(text);
  switch (format) {
    case 'turtles-json':
      return parseJsonVmcs(text, file);
    case 'kvm-dump-vmcs':
      return parseTextDump(text, file, 'kvm', format);
    case 'xen-vmcs-dump':
      return parseTextDump(text, file, 'xen', format);
    case 'qemu-entry-failed': {
      const lines = physicalLines(text);
      const last = lines.length;
      return dumpError(file, Math.max(last, 1), 'a KVM dump_vmcs after QEMU\'s "KVM: entry failed" register dump (that dump is KVM_GET_SREGS state, not the VMCS; set kvm_intel.dump_invalid_vmcs=1)');
    }
    case 'unknown': {
      const first = physicalLines(text).find((l) => l.text.trim() !== '' && startsDumpLine(l.text));
      return dumpError(file, first?.line ?? 1, 'a KVM dump_vmcs ("*** Guest State ***" …), a Xen vmcs_dump_vcpu dump, or turtles JSON VMCS state (docs/vmcs-json.md)');
    }
  }
}

export { parseJsonVmcs } from './json.js';
export { parseTextDump } from './text-dump.js';
