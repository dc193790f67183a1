// The grammar of KVM dump_vmcs() and Xen vmcs_dump_vcpu() lines: which printed key goes to which VMCS field (or to
// `derived`), which keys make a line complete, and the lines with a fixed shape (segment table, Sysenter, MSR lists).
// Must not: scan text or keep state across lines; text-dump.ts drives it. Formats: trace-formats.md §6, §7.
import { PartialVmcs, fieldByName, widthMask } from '../../../cpu/vmcs.js';
import { toU32 } from '../../../cpu/u64.js';
import type { LogicalLine } from '../line-prefix.js';
import { hexValue, type Pair } from './pairs.js';
import type { DumpDerived, UnmappedLine } from './types.js';
export type Dialect = 'kvm' | 'xen';
export type Section = 'pre' | 'guest' | 'host' | 'control' | 'post';

export interface Ctx {
  readonly dialect: Dialect;
  readonly vmcs: PartialVmcs;
  readonly fieldLines: Map<number, number>;
  readonly derived: DumpDerived;
  readonly unmapped: UnmappedLine[];
  readonly seen: Set<string>;
  msrList?: string;
}

export type Apply = (ctx: Ctx, value: bigint, pair: Pair, line: LogicalLine) => string | null;
export interface Target {
  /** Largest number of hex digits the printf prints for this value (keeps wrapped tokens apart). */
  readonly digits?: number;
  readonly apply: Apply;
}

function field(name: string, digits?: number): Target {
  return { digits, apply: (ctx, v, _p, line) => setField(ctx, name, v, line) };
}

export function setField(ctx: Ctx, name: string, value: bigint, line: LogicalLine): string | null {
  const def = fieldByName(name);
  if (!def) throw new Error(`turtles bug: dump key maps to unknown VMCS field ${name}`);
  if ((value & widthMask(def.width)) !== value) return `value 0x${value.toString(16)} does not fit the ${def.width}-bit field ${name}`;
  const prev = ctx.vmcs.read(def.encoding);
  if (prev !== undefined && ctx.fieldLines.has(def.encoding)) {
    if (prev !== value) {
      ctx.unmapped.push({ line: line.line, text: line.text.trim(), reason: `${name} = 0x${value.toString(16)} conflicts with 0x${prev.toString(16)} from line ${ctx.fieldLines.get(def.encoding)}; the first value is kept` });
    }
    return null;
  }
  ctx.vmcs.set(def.encoding, value);
  ctx.fieldLines.set(def.encoding, line.line);
  return null;
}

export const SEGS = ['CS', 'DS', 'SS', 'ES', 'FS', 'GS', 'LDTR', 'TR'] as const;

function guestKeys(): Map<string, Target> {
  const m = new Map<string, Target>();
  for (const cr of ['CR0', 'CR4']) {
    m.set(`${cr}:actual`, field(`GUEST_${cr}`, 16));
    m.set(`${cr}:shadow`, field(`${cr}_READ_SHADOW`, 16));
    m.set(`${cr}:gh_mask`, field(`${cr}_GUEST_HOST_MASK`, 16));
  }
  m.set('CR3', field('GUEST_CR3', 16));
  for (let i = 0; i < 4; i++) {
    m.set(`PDPTR${i}`, field(`GUEST_PDPTR${i}`, 16));
    m.set(`PDPTE${i}`, field(`GUEST_PDPTR${i}`, 16));
  }
  m.set('RSP', guestReg('RSP', 'GUEST_RSP'));
  m.set('RIP', guestReg('RIP', 'GUEST_RIP'));
  m.set('RFLAGS', guestReg('RFLAGS', 'GUEST_RFLAGS'));
  m.set('DR7', field('GUEST_DR7', 16));
  m.set('EFER', { digits: 16, apply: guestEfer });
  m.set('EFER(VMCS)', field('GUEST_IA32_EFER', 16));
  m.set('EFER(MSR LL)', {
    digits: 16,
    apply: (c, v, _p, l) => {
      // Xen without VMCS EFER fields reads EFER from the guest load-only MSR list: not a VMCS field.
      c.derived.efer = { value: v, source: 'msr-load-list', line: l.line };
      return null;
    },
  });
  m.set('PAT', field('GUEST_IA32_PAT', 16));
  m.set('PerfGlobCtl', field('GUEST_IA32_PERF_GLOBAL_CTRL', 16));
  m.set('BndCfgS', field('GUEST_BNDCFGS', 16));
  m.set('DebugCtl', field('GUEST_IA32_DEBUGCTL', 16));
  m.set('DebugExceptions', field('GUEST_PENDING_DBG_EXCEPTIONS', 16));
  m.set('Interruptibility', field('GUEST_INTERRUPTIBILITY_INFO', 8));
  m.set('ActivityState', field('GUEST_ACTIVITY_STATE', 8));
  m.set('InterruptStatus', field('GUEST_INTR_STATUS', 4));
  m.set('PreemptionTimer', field('VMX_PREEMPTION_TIMER_VALUE', 8));
  m.set('SM Base', field('GUEST_SMBASE', 8));
  for (const s of SEGS) {
    m.set(`${s}:sel`, field(`GUEST_${s}_SELECTOR`, 4));
    m.set(`${s}:attr`, field(`GUEST_${s}_AR_BYTES`, 8));
    m.set(`${s}:limit`, field(`GUEST_${s}_LIMIT`, 8));
    m.set(`${s}:base`, field(`GUEST_${s}_BASE`, 16));
  }
  for (const t of ['GDTR', 'IDTR']) {
    m.set(`${t}:limit`, field(`GUEST_${t}_LIMIT`, 8));
    m.set(`${t}:base`, field(`GUEST_${t}_BASE`, 16));
  }
  return m;
}

/** Xen prints `RSP = 0x<vmcs> (0x<cached>)`: the first value is the VMCS field, the note is Xen's own copy. */
function guestReg(name: string, fieldName: string): Target {
  return {
    digits: 16,
    apply: (c, v, p, l) => {
      if (p.note !== undefined) {
        if (!/^0x[0-9a-fA-F]+$/.test(p.note)) return `expected "${name} = 0x… (0x…)", found "(${p.note})"`;
        c.derived.xenCached[name] = hexValue(p.note.slice(2));
      }
      return setField(c, fieldName, v, l);
    },
  };
}

function guestEfer(ctx: Ctx, v: bigint, p: Pair, line: LogicalLine): string | null {
  if (p.note === 'effective' || p.note === 'autoload') {
    // >=5.12: "(effective)" is vcpu->arch.efer adjusted to the IA-32e entry control and "(autoload)" the MSR
    // autoload list entry; neither is the GUEST_IA32_EFER field, so the field stays unknown.
    ctx.derived.efer = { value: v, source: p.note, line: line.line };
    return null;
  }
  if (p.note !== undefined) return `unknown EFER annotation "(${p.note})"`;
  return setField(ctx, 'GUEST_IA32_EFER', v, line);
}

function hostKeys(): Map<string, Target> {
  const m = new Map<string, Target>();
  m.set('RIP', {
    digits: 16,
    apply: (c, v, p, l) => {
      if (p.note !== undefined) c.derived.hostRipSymbol = p.note;
      return setField(c, 'HOST_RIP', v, l);
    },
  });
  m.set('RSP', field('HOST_RSP', 16));
  for (const s of ['CS', 'SS', 'DS', 'ES', 'FS', 'GS', 'TR']) m.set(s, field(`HOST_${s}_SELECTOR`, 4));
  m.set('FSBase', field('HOST_FS_BASE', 16));
  m.set('GSBase', field('HOST_GS_BASE', 16));
  m.set('TRBase', field('HOST_TR_BASE', 16));
  m.set('GDTBase', field('HOST_GDTR_BASE', 16));
  m.set('IDTBase', field('HOST_IDTR_BASE', 16));
  m.set('CR0', field('HOST_CR0', 16));
  m.set('CR3', field('HOST_CR3', 16));
  m.set('CR4', field('HOST_CR4', 16));
  m.set('EFER', field('HOST_IA32_EFER', 16));
  m.set('PAT', field('HOST_IA32_PAT', 16));
  m.set('PerfGlobCtl', field('HOST_IA32_PERF_GLOBAL_CTRL', 16));
  return m;
}

function controlKeys(): Map<string, Target> {
  const m = new Map<string, Target>();
  m.set('PinBased', field('PIN_BASED_VM_EXEC_CONTROL', 8));
  m.set('CPUBased', field('CPU_BASED_VM_EXEC_CONTROL', 8));
  m.set('SecondaryExec', field('SECONDARY_VM_EXEC_CONTROL', 8));
  m.set('TertiaryExec', field('TERTIARY_VM_EXEC_CONTROL', 16));
  m.set('EntryControls', field('VM_ENTRY_CONTROLS', 8));
  m.set('ExitControls', field('VM_EXIT_CONTROLS', 8));
  m.set('ExceptionBitmap', field('EXCEPTION_BITMAP', 8));
  m.set('PFECmask', field('PAGE_FAULT_ERROR_CODE_MASK', 8));
  m.set('PFECmatch', field('PAGE_FAULT_ERROR_CODE_MATCH', 8));
  m.set('VMEntry:intr_info', field('VM_ENTRY_INTR_INFO_FIELD', 8));
  m.set('VMEntry:errcode', field('VM_ENTRY_EXCEPTION_ERROR_CODE', 8));
  m.set('VMEntry:ilen', field('VM_ENTRY_INSTRUCTION_LEN', 8));
  m.set('VMExit:intr_info', field('VM_EXIT_INTR_INFO', 8));
  m.set('VMExit:errcode', field('VM_EXIT_INTR_ERROR_CODE', 8));
  m.set('VMExit:ilen', field('VM_EXIT_INSTRUCTION_LEN', 8));
  m.set('reason', {
    digits: 8,
    apply: (c, v, _p, l) => {
      c.derived.exit = { reason: v, basic: toU32(v) & 0xffff, failedEntry: (v >> 31n) === 1n, line: l.line };
      return setField(c, 'VM_EXIT_REASON', v, l);
    },
  });
  m.set('qualification', field('EXIT_QUALIFICATION', 16));
  m.set('IDTVectoring:info', field('IDT_VECTORING_INFO_FIELD', 8));
  m.set('IDTVectoring:errcode', field('IDT_VECTORING_ERROR_CODE', 8));
  m.set('TSC Offset', field('TSC_OFFSET', 16));
  m.set('TSC Multiplier', field('TSC_MULTIPLIER', 16));
  m.set('SVI|RVI', {
    apply: (c, _v, p, l) => {
      const [svi, rvi] = p.value.split('|') as [string, string | undefined];
      if (rvi === undefined) return 'expected SVI|RVI = xx|xx';
      return setField(c, 'GUEST_INTR_STATUS', (hexValue(svi) << 8n) | hexValue(rvi), l);
    },
  });
  m.set('TPR Threshold', field('TPR_THRESHOLD'));
  m.set('APIC-access addr', field('APIC_ACCESS_ADDR', 16));
  m.set('virt-APIC addr', field('VIRTUAL_APIC_PAGE_ADDR', 16));
  m.set('PostedIntrVec', field('POSTED_INTR_NV'));
  m.set('EPT pointer', field('EPT_POINTER', 16));
  m.set('EPTP index', field('EPTP_INDEX', 4));
  m.set('PLE Gap', field('PLE_GAP', 8));
  m.set('Window', field('PLE_WINDOW', 8));
  m.set('Virtual processor ID', field('VIRTUAL_PROCESSOR_ID', 4));
  m.set('VMfunc controls', field('VM_FUNCTION_CONTROL', 16));
  m.set('VE info address', {
    digits: 16,
    apply: (c, v, p, l) => {
      if (p.note !== undefined) c.derived.notes.push(`line ${l.line}: KVM flagged the #VE information address as "${p.note}"`);
      return setField(c, 'VE_INFORMATION_ADDRESS', v, l);
    },
  });
  for (let i = 0; i < 4; i++) {
    m.set(`CR3 target${i}`, field(`CR3_TARGET_VALUE${i}`, 16));
    m.set(`target${i}`, field(`CR3_TARGET_VALUE${i}`, 16));
  }
  return m;
}

export const KEYS: Record<'guest' | 'host' | 'control', Map<string, Target>> = { guest: guestKeys(), host: hostKeys(), control: controlKeys() };

/** Line forms by their first key: the alternatives of key sets that make the line complete. */
export type Need = readonly (readonly string[])[];
const SEG_NEEDS: [string, Need][] = [
  ...SEGS.map((s): [string, Need] => [`${s}:sel`, [[`${s}:sel`, `${s}:attr`, `${s}:limit`, `${s}:base`]]]),
  ['GDTR:limit', [['GDTR:limit', 'GDTR:base']]],
  ['IDTR:limit', [['IDTR:limit', 'IDTR:base']]],
];
export const FORMS: Record<'guest' | 'host' | 'control', Map<string, Need>> = {
  guest: new Map<string, Need>([
    ['CR0:actual', [['CR0:actual', 'CR0:shadow', 'CR0:gh_mask']]],
    ['CR4:actual', [['CR4:actual', 'CR4:shadow', 'CR4:gh_mask']]],
    ['CR3', [['CR3']]],
    ['PDPTR0', [['PDPTR0', 'PDPTR1']]],
    ['PDPTR2', [['PDPTR2', 'PDPTR3']]],
    ['PDPTE0', [['PDPTE0', 'PDPTE1']]],
    ['PDPTE2', [['PDPTE2', 'PDPTE3']]],
    ['RSP', [['RSP', 'RIP']]],
    ['RFLAGS', [['RFLAGS', 'DR7']]],
    ['EFER', [['EFER']]],
    ['EFER(VMCS)', [['EFER(VMCS)', 'PAT']]],
    ['EFER(MSR LL)', [['EFER(MSR LL)', 'PAT']]],
    ['PAT', [['PAT']]],
    ['PerfGlobCtl', [['PerfGlobCtl']]],
    ['DebugCtl', [['DebugCtl', 'DebugExceptions']]],
    ['BndCfgS', [['BndCfgS']]],
    ['Interruptibility', [['Interruptibility', 'ActivityState']]],
    ['InterruptStatus', [['InterruptStatus']]],
    ['PreemptionTimer', [['PreemptionTimer', 'SM Base']]],
    ...SEG_NEEDS,
  ]),
  host: new Map<string, Need>([
    ['RIP', [['RIP', 'RSP']]],
    ['CS', [['CS', 'SS', 'DS', 'ES', 'FS', 'GS', 'TR']]],
    ['FSBase', [['FSBase', 'GSBase', 'TRBase']]],
    ['GDTBase', [['GDTBase', 'IDTBase']]],
    ['CR0', [['CR0', 'CR3', 'CR4']]],
    ['EFER', [['EFER']]],
    ['PAT', [['PAT']]],
    ['PerfGlobCtl', [['PerfGlobCtl']]],
  ]),
  control: new Map<string, Need>([
    ['PinBased', [['PinBased', 'CPUBased', 'SecondaryExec'], ['PinBased', 'EntryControls', 'ExitControls']]],
    ['CPUBased', [['CPUBased', 'SecondaryExec', 'TertiaryExec']]],
    ['EntryControls', [['EntryControls', 'ExitControls']]],
    ['ExceptionBitmap', [['ExceptionBitmap', 'PFECmask', 'PFECmatch']]],
    ['VMEntry:intr_info', [['VMEntry:intr_info', 'VMEntry:errcode', 'VMEntry:ilen']]],
    ['VMExit:intr_info', [['VMExit:intr_info', 'VMExit:errcode', 'VMExit:ilen']]],
    ['reason', [['reason', 'qualification']]],
    ['IDTVectoring:info', [['IDTVectoring:info', 'IDTVectoring:errcode']]],
    ['TSC Offset', [['TSC Offset']]],
    ['TSC Multiplier', [['TSC Multiplier']]],
    ['SVI|RVI', [['SVI|RVI', 'TPR Threshold']]],
    ['TPR Threshold', [['TPR Threshold']]],
    ['APIC-access addr', [['APIC-access addr']]],
    ['virt-APIC addr', [['virt-APIC addr']]],
    ['PostedIntrVec', [['PostedIntrVec']]],
    ['EPT pointer', [['EPT pointer']]],
    ['PLE Gap', [['PLE Gap', 'Window']]],
    ['Virtual processor ID', [['Virtual processor ID']]],
    ['VE info address', [['VE info address']]],
    ...[0, 1, 2, 3].map((i): [string, Need] => [`CR3 target${i}`, [[`CR3 target${i}`]]]),
  ]),
};

// Xen prints these pairs on one line where KVM prints the first alone.
const XEN_NEEDS = new Map<string, Need>([
  ['TSC Offset', [['TSC Offset', 'TSC Multiplier']]],
  ['TPR Threshold', [['TPR Threshold', 'PostedIntrVec']]],
  ['EPT pointer', [['EPT pointer', 'EPTP index']]],
  ['Virtual processor ID', [['Virtual processor ID', 'VMfunc controls']]],
]);

export function needFor(section: 'guest' | 'host' | 'control', first: string, text: string, dialect: Dialect): Need | undefined {
  // `EFER = ` with a space before '=' is the one-line `EFER = …  PAT = …` form (KVM <=5.11, Xen); `EFER= ` is
  // KVM >=5.12, which prints PAT on a line of its own.
  if (first === 'EFER' && /^EFER\s+=/.test(text)) return [['EFER', 'PAT']];
  if (dialect === 'xen' && section === 'control') return XEN_NEEDS.get(first) ?? FORMS.control.get(first);
  return FORMS[section].get(first);
}

export const SPECIAL = {
  header: /^\*\*\* (Guest|Host|Control) State \*\*\*$/,
  vmcsHeader: /^VMCS (\S+), last attempted VM-entry on CPU (-?\d+)$/,
  sysenter: /^Sysenter RSP=([0-9a-fA-F]{1,16})\s*CS:RIP=([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,16})$/,
  sysenterStart: /^Sysenter\b/,
  msrHeader: /^MSR (guest autoload|guest autostore|host autoload):$/,
  msrEntry: /^(\d+): msr=0x([0-9a-fA-F]{1,8})\s*value=0x([0-9a-fA-F]{1,16})$/,
  veInfo: /^ve_info:((?:\s+0x[0-9a-fA-F]+){6})$/,
  noDump: /^set kvm_intel\.dump_invalid_vmcs=1 to dump internal KVM state\.?$/,
  xenTableHeader: /^sel\s+attr\s+limit\s+base$/,
  xenSeg: /^(CS|DS|SS|ES|FS|GS|LDTR|TR):\s+([0-9a-fA-F]{4})\s+([0-9a-fA-F]{5})\s+([0-9a-fA-F]{8})\s+([0-9a-fA-F]{16})$/,
  xenSegStart: /^(CS|DS|SS|ES|FS|GS|LDTR|TR):\s+[0-9a-fA-F]{4}\b/,
  xenDt: /^(GDTR|IDTR):\s+([0-9a-fA-F]{8})\s+([0-9a-fA-F]{16})$/,
  xenDtStart: /^(GDTR|IDTR):\s+[0-9a-fA-F]{8}\b/,
  xenAreas: /^\*+ VMCS Areas? \*+$/,
  xenClose: /^\*{20,}$/,
  xenDomain: /^>>> Domain (\d+) <<<$/,
  xenVcpu: /^VCPU (\d+)$/,
  xenBanner: /^d(\d+)v(\d+) (vmentry failure .*|VM(?:LAUNCH|RESUME) error: .*)$/,
};

export const FIRST_KEYS = new Set<string>([...FORMS.guest.keys(), ...FORMS.host.keys(), ...FORMS.control.keys(), 'TSC Multiplier']);
