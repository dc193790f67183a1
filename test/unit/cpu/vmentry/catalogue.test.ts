// The VM-entry check catalogue (schemas/vmx/entry-checks.json): generated table in sync, SDM order and sections,
// coverage of every reference §3 row, and the VirtualBox VMXVDIAG names it maps.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsSchemaSource } from '../../../../scripts/gen/fs-source.js';
import { genEntryChecks } from '../../../../scripts/gen/tables.js';
import { ENTRY_CHECKS } from '../../../../src/cpu/generated/entry-checks.js';

const ROOT = join(import.meta.dirname, '../../../..');

/** Row ids of shared/reference/nested-vmx.md §3.1-3.4 (one table row may name several ids, "A / B"). */
const REFERENCE_ROWS = [
  'C-PIN', 'C-PROC1', 'C-PROC2', 'C-PROC3', 'C-CR3CNT', 'C-IOBMP', 'C-MSRBMP', 'C-VAPIC', 'C-TPRTHR', 'C-TPRVTPR', 'C-NOTPR',
  'C-NMI1', 'C-NMI2', 'C-APICACC', 'C-X2APIC', 'C-VID', 'C-PI', 'C-VPID', 'C-EPTP', 'C-PML', 'C-URG', 'C-MBEC', 'C-SPP',
  'C-VMFUNC', 'C-SHADOW', 'C-VE', 'C-IPIV / C-HLAT / C-PASID / C-PCONFIG / C-ENCLV', 'X-EXIT', 'X-PTSAVE', 'X-MSRST', 'X-MSRLD',
  'E-ENTRY', 'E-SMM', 'E-EVT-TYPE', 'E-EVT-VEC', 'E-EVT-EC', 'E-EVT-RSV', 'E-EVT-ECV', 'E-EVT-LEN', 'E-MSRLD',
  'H-CR0', 'H-CR4', 'H-CR3', 'H-SYSENTER', 'H-PGC', 'H-PAT', 'H-EFER', 'H-CET', 'H-SEL-RPLTI', 'H-CS0', 'H-TR0', 'H-SS0',
  'H-BASES', 'H-AS-OUT', 'H-AS-IN', 'H-HASS0', 'H-HASS1',
  'G-CR0', 'G-CR0PG', 'G-CR4', 'G-CR3', 'G-DBG', 'G-IA32E', 'G-PCIDE', 'G-SYSENTER', 'G-PGC', 'G-PAT', 'G-EFER', 'G-BNDCFGS',
  'G-CET', 'G-SEG-TI', 'G-SEG-RPL', 'G-V86', 'G-SEG-BASE', 'G-CS-TYPE', 'G-SS-TYPE', 'G-DATA-TYPE', 'G-S', 'G-DPL', 'G-P',
  'G-AR-RSV', 'G-LIMIT-G', 'G-CS-L-DB', 'G-TR', 'G-LDTR', 'G-DTR', 'G-RIP', 'G-RFLAGS', 'G-ACT', 'G-ACT-HLT', 'G-ACT-BLK',
  'G-ACT-EVT', 'G-INTR-RSV', 'G-INTR-BOTH', 'G-INTR-STI-IF', 'G-INTR-INJ', 'G-INTR-SMI', 'G-PDBG', 'G-LINK', 'G-PDPTE',
  'G-URG-STATE', 'M-RSV', 'M-FSGS', 'M-SMM', 'M-X2APIC', 'M-UCODE', 'M-WRMSR', 'M-CAP', 'M-READ',
];
/** Reference rows that are not architectural VM-entry checks, so no catalogue row may claim them. */
const NOT_ARCHITECTURAL: Record<string, string> = {
  'G-URG-STATE': 'KVM-specific: L0 without unrestricted guest rejects states the SDM accepts; belongs to the nested (KVM) model',
  'M-READ': 'KVM-specific: on the reference machine physical memory is always readable; an unknown read is "not evaluated" here',
};

/** VirtualBox's VMXVDIAG names for VMLAUNCH/VMRESUME (include/VBox/vmm/hm_vmx.h, kVmxVDiag_Vmentry_*). */
const VBOX = `AddrApicAccess AddrApicAccessEqVirtApic AddrApicAccessHandlerReg AddrEntryMsrLoad AddrExitMsrLoad AddrExitMsrStore
AddrIoBitmapA AddrIoBitmapB AddrMsrBitmap AddrVirtApicPage AddrVmcsLinkPtr AddrVmreadBitmap AddrVmwriteBitmap ApicRegVirt BlocKMovSS
Cpl Cr3TargetCount EntryCtlsAllowed1 EntryCtlsDisallowed0 EntryInstrLen EntryInstrLenZero EntryIntInfoErrCodePe EntryIntInfoErrCodeVec
EntryIntInfoTypeVecRsvd EntryXcptErrCodeRsvd EptpAccessDirty EptpPageWalkLength EptpMemType EptpRsvd ExitCtlsAllowed1 ExitCtlsDisallowed0
GuestActStateHlt GuestActStateRsvd GuestActStateShutdown GuestActStateSsDpl GuestActStateStiMovSs GuestCr0Fixed0 GuestCr0Fixed1
GuestCr0PgPe GuestCr3 GuestCr4Fixed0 GuestCr4Fixed1 GuestDebugCtl GuestDr7 GuestEferMsr GuestEferMsrRsvd GuestGdtrBase GuestGdtrLimit
GuestIdtrBase GuestIdtrLimit GuestIntStateEnclave GuestIntStateExtInt GuestIntStateNmi GuestIntStateRFlagsSti GuestIntStateRsvd
GuestIntStateSmi GuestIntStateStiMovSs GuestIntStateVirtNmi GuestPae GuestPatMsr GuestPcide GuestPdpte GuestPndDbgXcptBsNoTf
GuestPndDbgXcptBsTf GuestPndDbgXcptRsvd GuestPndDbgXcptRtm GuestRip GuestRipRsvd GuestRFlagsIf GuestRFlagsRsvd GuestRFlagsVm
GuestSegAttrCsDefBig GuestSegAttrCsDplEqSs GuestSegAttrCsDplLtSs GuestSegAttrCsDplZero GuestSegAttrCsType GuestSegAttrCsTypeRead
GuestSegAttrDescTypeCs GuestSegAttrDescTypeDs GuestSegAttrDescTypeEs GuestSegAttrDescTypeFs GuestSegAttrDescTypeGs GuestSegAttrDescTypeSs
GuestSegAttrDplRplCs GuestSegAttrDplRplDs GuestSegAttrDplRplEs GuestSegAttrDplRplFs GuestSegAttrDplRplGs GuestSegAttrDplRplSs
GuestSegAttrGranCs GuestSegAttrGranDs GuestSegAttrGranEs GuestSegAttrGranFs GuestSegAttrGranGs GuestSegAttrGranSs
GuestSegAttrLdtrDescType GuestSegAttrLdtrGran GuestSegAttrLdtrPresent GuestSegAttrLdtrRsvd GuestSegAttrLdtrType
GuestSegAttrPresentCs GuestSegAttrPresentDs GuestSegAttrPresentEs GuestSegAttrPresentFs GuestSegAttrPresentGs GuestSegAttrPresentSs
GuestSegAttrRsvdCs GuestSegAttrRsvdDs GuestSegAttrRsvdEs GuestSegAttrRsvdFs GuestSegAttrRsvdGs GuestSegAttrRsvdSs
GuestSegAttrSsDplEqRpl GuestSegAttrSsDplZero GuestSegAttrSsType GuestSegAttrTrDescType GuestSegAttrTrGran GuestSegAttrTrPresent
GuestSegAttrTrRsvd GuestSegAttrTrType GuestSegAttrTrUnusable GuestSegAttrTypeAccCs GuestSegAttrTypeAccDs GuestSegAttrTypeAccEs
GuestSegAttrTypeAccFs GuestSegAttrTypeAccGs GuestSegAttrTypeAccSs GuestSegAttrV86Cs GuestSegAttrV86Ds GuestSegAttrV86Es
GuestSegAttrV86Fs GuestSegAttrV86Gs GuestSegAttrV86Ss GuestSegBaseCs GuestSegBaseDs GuestSegBaseEs GuestSegBaseFs GuestSegBaseGs
GuestSegBaseLdtr GuestSegBaseSs GuestSegBaseTr GuestSegBaseV86Cs GuestSegBaseV86Ds GuestSegBaseV86Es GuestSegBaseV86Fs
GuestSegBaseV86Gs GuestSegBaseV86Ss GuestSegLimitV86Cs GuestSegLimitV86Ds GuestSegLimitV86Es GuestSegLimitV86Fs GuestSegLimitV86Gs
GuestSegLimitV86Ss GuestSegSelCsSsRpl GuestSegSelLdtr GuestSegSelTr GuestSysenterEspEip VmcsLinkPtrCurVmcs VmcsLinkPtrReadPhys
VmcsLinkPtrRevId VmcsLinkPtrShadow HostCr0Fixed0 HostCr0Fixed1 HostCr3 HostCr4Fixed0 HostCr4Fixed1 HostCr4Pae HostCr4Pcide HostCsTr
HostEferMsr HostEferMsrRsvd HostGuestLongMode HostGuestLongModeNoCpu HostLongMode HostPatMsr HostRip HostRipRsvd HostSel HostSegBase
HostSs HostSysenterEspEip IoBitmapAPtrReadPhys IoBitmapBPtrReadPhys LongModeCS MsrBitmapPtrReadPhys MsrLoad MsrLoadCount
MsrLoadPtrReadPhys MsrLoadRing3 MsrLoadRsvd NmiWindowExit PinCtlsAllowed1 PinCtlsDisallowed0 ProcCtlsAllowed1 ProcCtlsDisallowed0
ProcCtls2Allowed1 ProcCtls2Disallowed0 PtrInvalid PtrShadowVmcs RealOrV86Mode SavePreemptTimer TprThresholdRsvd TprThresholdVTpr
VirtApicPagePtrReadPhys VirtIntDelivery VirtNmi VirtX2ApicTprShadow VirtX2ApicVirtApic VmcsClear VmcsLaunch VmreadBitmapPtrReadPhys
VmwriteBitmapPtrReadPhys VmxRoot Vpid`.split(/\s+/).map((n) => `kVmxVDiag_Vmentry_${n}`);
/** VirtualBox diagnostics that are not SDM 26.2-26.4 checks, and why. */
const VBOX_UNMATCHED: Record<string, string> = {
  AddrApicAccessEqVirtApic: 'VirtualBox restriction (APIC-access page must differ from the virtual-APIC page), not in the SDM',
  AddrApicAccessHandlerReg: 'VirtualBox internal (registering an MMIO handler)',
  BlocKMovSS: 'VMLAUNCH/VMRESUME prerequisite (VMfailValid 26, SDM 30.3), not a 26.2-26.4 check',
  Cpl: 'instruction prerequisite (#GP at CPL > 0, SDM 30.3)',
  LongModeCS: 'instruction prerequisite (#UD in compatibility mode, SDM 30.3)',
  RealOrV86Mode: 'instruction prerequisite (#UD in real or virtual-8086 mode, SDM 30.3)',
  VmxRoot: 'instruction prerequisite (#UD outside VMX operation, SDM 30.3)',
  PtrInvalid: 'instruction prerequisite (VMfailInvalid without a current VMCS, SDM 30.3)',
  PtrShadowVmcs: 'instruction prerequisite (VMfailInvalid with a shadow VMCS current, SDM 30.3)',
  VmcsClear: 'instruction prerequisite (VMRESUME on a clear VMCS, VMfailValid 5)',
  VmcsLaunch: 'instruction prerequisite (VMLAUNCH on a launched VMCS, VMfailValid 4)',
  GuestSegAttrDplRplCs: 'no SDM rule relates CS.DPL to CS.RPL (CS.DPL is checked against SS.DPL)',
  IoBitmapAPtrReadPhys: 'VirtualBox failed to read guest memory; an unreadable value is "not evaluated" here',
  IoBitmapBPtrReadPhys: 'VirtualBox failed to read guest memory',
  MsrBitmapPtrReadPhys: 'VirtualBox failed to read guest memory',
  VirtApicPagePtrReadPhys: 'VirtualBox failed to read guest memory',
  VmreadBitmapPtrReadPhys: 'VirtualBox failed to read guest memory',
  VmwriteBitmapPtrReadPhys: 'VirtualBox failed to read guest memory',
  VmcsLinkPtrReadPhys: 'VirtualBox failed to read guest memory',
  MsrLoadPtrReadPhys: 'VirtualBox failed to read guest memory',
  MsrLoadRing3: 'VirtualBox internal (MSR write deferred to ring-3)',
};

describe('entry-check catalogue', () => {
  it('src/cpu/generated/entry-checks.ts is generated from the schema', () => {
    const generated = genEntryChecks(fsSchemaSource(ROOT));
    expect(readFileSync(join(ROOT, 'src/cpu/generated/entry-checks.ts'), 'utf8')).toBe(generated);
  });

  it('has at least as many checks as VirtualBox has VM-entry diagnostics', () => {
    expect(VBOX.length).toBe(214);
    expect(ENTRY_CHECKS.length).toBeGreaterThanOrEqual(VBOX.length);
  });

  it('cites the SDM section of its stage and the qualification of its class', () => {
    const section: Record<string, RegExp> = {
      controls: /^26\.2\.1\.[123]$/, 'host-state': /^26\.2\.[234]$/, 'guest-state': /^26\.3\.1\.[1-6]$/, 'msr-load': /^26\.4$/,
    };
    for (const c of ENTRY_CHECKS) {
      expect(c.sdm, c.id).toMatch(section[c.stage]!);
      const q = c.id.startsWith('guest.link.') ? 4 : c.id.startsWith('guest.pdpte.') ? 2 : c.id === 'guest.interruptibility.nmi-sti' ? 3 : 0;
      expect(c.qualification, c.id).toBe(c.class === 'exit-33' ? q : null);
      expect(['SW', 'HW', 'N/A'], c.id).toContain(c.kvm);
      expect(c.description.length, c.id).toBeGreaterThan(15);
      expect(c.fields.length, c.id).toBeGreaterThan(0);
    }
  });

  it('covers every row of reference §3.1-3.4 that is an architectural check', () => {
    const covered = new Set(ENTRY_CHECKS.map((c) => c.ref));
    const uncovered = REFERENCE_ROWS.filter((row) => !row.split(' / ').some((id) => covered.has(id)));
    expect(uncovered).toEqual(Object.keys(NOT_ARCHITECTURAL));
    const known = new Set(REFERENCE_ROWS.flatMap((row) => row.split(' / ')));
    for (const c of ENTRY_CHECKS) if (c.ref !== null) expect(known.has(c.ref), `${c.id}: unknown ref ${c.ref}`).toBe(true);
  });

  it('lists the same §3 rows as shared/reference/nested-vmx.md, where that file is present', () => {
    const path = join(ROOT, '../shared/reference/nested-vmx.md');
    const rows = existsSync(path)
      ? readFileSync(path, 'utf8').split('### 3.1')[1]!.split('### 3.5')[0]!.split('\n')
        .map((l) => /^\| ([A-Z][A-Z0-9 /-]+?) \|/.exec(l)?.[1]).filter((x): x is string => x !== undefined && x !== 'id')
      : REFERENCE_ROWS;
    expect(rows).toEqual(REFERENCE_ROWS);
  });

  it('maps VirtualBox VM-entry diagnostics; the unmapped ones are not SDM 26.2-26.4 checks', () => {
    const mapped = new Set(ENTRY_CHECKS.flatMap((c) => c.vbox));
    for (const n of mapped) expect(VBOX, n).toContain(n);
    const unmatched = VBOX.filter((n) => !mapped.has(n)).map((n) => n.replace('kVmxVDiag_Vmentry_', ''));
    expect(unmatched.sort()).toEqual(Object.keys(VBOX_UNMATCHED).sort());
    expect(mapped.size).toBe(VBOX.length - unmatched.length);
  });
});
