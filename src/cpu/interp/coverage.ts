// The known-gaps table: every way the interpreter can answer `{ kind: 'unsupported' }`, checked in, so an
// unlisted gap is a turtles bug (the interpreter refuses to report it silently) and a listed gap that
// starts working is noticed by the coverage test. Must not: contain behaviour.
// SDM: the instruction pages named per entry.
import { INSTRUCTION_TABLE } from './table.js';

export interface GapEntry {
  readonly mnemonic: string;
  /** 'all': never executed; 'partial': executed except in the situation `detail` describes. */
  readonly scope: 'all' | 'partial';
  readonly detail: string;
}

/** Integer and system instructions iced-x86 decodes that the interpreter does not execute. */
const NOT_IMPLEMENTED = [
  'aaa', 'aad', 'aam', 'aas', 'daa', 'das', 'arpl', 'bound', 'bsf', 'bsr', 'lzcnt', 'tzcnt', 'popcnt', 'shld', 'shrd',
  'cmpxchg', 'cmpxchg8b', 'cmpxchg16b', 'xadd', 'enter', 'pusha', 'pushad', 'popa', 'popad', 'lds', 'les', 'lfs', 'lgs', 'lss',
  'lar', 'lsl', 'verr', 'verw', 'smsw', 'syscall', 'sysret', 'sysenter', 'sysexit', 'swapgs', 'rdfsbase', 'rdgsbase',
  'wrfsbase', 'wrgsbase', 'rdpid', 'rdpkru', 'wrpkru', 'clflush', 'clflushopt', 'clwb', 'prefetchw',
  'xsave', 'xsave64', 'xrstor', 'xrstor64', 'xsaveopt', 'xsaveopt64', 'xsavec', 'xsavec64', 'fxsave', 'fxsave64', 'fxrstor',
  'fxrstor64', 'movbe', 'crc32', 'adcx', 'adox', 'andn', 'bextr', 'blsi', 'blsmsk', 'blsr', 'bzhi', 'mulx', 'pdep', 'pext',
  'rorx', 'sarx', 'shlx', 'shrx', 'salc', 'sahf64', 'cpuid64', 'umonitor', 'clac', 'stac', 'endbr32', 'endbr64',
  'hreset', 'serialize', 'xbegin', 'xend', 'xabort', 'xtest', 'lfence', 'mfence', 'sfence', 'movnti', 'movdiri', 'movdir64b',
  'enqcmd', 'enqcmds', 'wait', 'rdmsrlist', 'wrmsrlist', 'wrmsrns', 'invlpgb', 'tlbsync',
];

export const KNOWN_GAPS: readonly GapEntry[] = [
  ...NOT_IMPLEMENTED.map((mnemonic): GapEntry => ({ mnemonic, scope: 'all', detail: 'not in the instruction table' })),
  { mnemonic: '(x87, MMX, SSE, AVX, AVX-512, AMX and vendor extensions)', scope: 'all', detail: 'every mnemonic not in INSTRUCTION_TABLE and not listed above: floating-point and vector state is not modelled' },
  // Exit-only rows: modelled only as VM exits (nonroot/); executing them without an exit is a gap.
  ...['getsec', 'getsecq', 'rsm', 'xsaves', 'xsaves64', 'xrstors', 'xrstors64', 'encls', 'enclv', 'pconfig', 'umwait', 'tpause', 'loadiwkey', 'seamcall', 'tdcall']
    .map((mnemonic): GapEntry => ({ mnemonic, scope: 'all', detail: 'exit-only: executes only as a VM exit; without one the instruction is not emulated' })),
  { mnemonic: 'jmp', scope: 'partial', detail: 'far JMP through a call gate (task gates/TSSs exit as task switches in VMX non-root operation)' },
  { mnemonic: 'call', scope: 'partial', detail: 'far CALL through a call gate (task gates/TSSs exit as task switches in VMX non-root operation)' },
  { mnemonic: 'iret', scope: 'partial', detail: 'IRET to virtual-8086 mode' },
  { mnemonic: 'iretd', scope: 'partial', detail: 'IRETD to virtual-8086 mode' },
  { mnemonic: 'iretq', scope: 'partial', detail: 'never (listed for symmetry with iret/iretd)' },
  { mnemonic: 'bt', scope: 'partial', detail: 'memory bit string with a register bit offset' },
  { mnemonic: 'bts', scope: 'partial', detail: 'memory bit string with a register bit offset' },
  { mnemonic: 'btr', scope: 'partial', detail: 'memory bit string with a register bit offset' },
  { mnemonic: 'btc', scope: 'partial', detail: 'memory bit string with a register bit offset' },
  { mnemonic: 'movsd', scope: 'partial', detail: 'the SSE2 scalar-double MOVSD (only the string MOVSD is claimed)' },
  { mnemonic: 'cmpsd', scope: 'partial', detail: 'the SSE2 CMPSD (only the string CMPSD is claimed)' },
  { mnemonic: 'vmread', scope: 'partial', detail: 'VMREAD let through by VMCS shadowing when the machine supplies no shadow-VMCS access' },
  { mnemonic: 'vmwrite', scope: 'partial', detail: 'VMWRITE let through by VMCS shadowing when the machine supplies no shadow-VMCS access' },
  { mnemonic: 'vmfunc', scope: 'partial', detail: 'successful EPTP switching when the machine supplies no switchEptp hook' },
  { mnemonic: '(event delivery)', scope: 'partial', detail: 'delivering an interrupt or exception from virtual-8086 mode; task gates outside VMX non-root operation' },
  { mnemonic: '(task switch)', scope: 'partial', detail: 'task switches outside VMX non-root operation (inside, they always exit)' },
];

const LISTED = new Set(KNOWN_GAPS.map((g) => g.mnemonic));

/** Whether `mnemonic` answering `unsupported` is a listed gap (explicitly, or as an unclaimed mnemonic). */
export function isKnownGap(mnemonic: string): boolean {
  if (LISTED.has(mnemonic)) return true;
  if (mnemonic === '(event delivery)' || mnemonic === '(task switch)') return true;
  return !INSTRUCTION_TABLE.has(mnemonic);
}

/** Mnemonics the interpreter claims (its instruction table), sorted. */
export function claimedMnemonics(): string[] {
  return [...INSTRUCTION_TABLE.keys()].sort();
}

/** Claimed mnemonics that can only ever answer `unsupported` (exit-only rows). */
export function exitOnlyMnemonics(): string[] {
  return [...INSTRUCTION_TABLE.values()].filter((r) => r.group === 'exit-only').map((r) => r.name).sort();
}
