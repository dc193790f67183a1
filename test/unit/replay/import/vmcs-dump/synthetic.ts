// Constructed (not recorded) dumps in layouts no real file here shows, written from the printf formats of
// KVM vmx.c dump_vmcs() (6.x: "VMCS %p" header, "EFER= … (effective)", MSR autoload lists, ≥5.18 control lines,
// kvm_intel: pr_fmt, pr_cont virt-APIC line) and Xen vmcs.c vmcs_dump_vcpu() (≥4.12 EFER(VMCS), PDPTE,
// CR3 targets, vmentry-failure banner). Values are plausible, not from a machine; the tests use them for grammar.

export const KVM_6X = `kvm_intel: VMCS 00000000b1d5e4a2, last attempted VM-entry on CPU 3
kvm_intel: *** Guest State ***
kvm_intel: CR0: actual=0x0000000080050033, shadow=0x0000000080050033, gh_mask=fffffffffffefff7
kvm_intel: CR4: actual=0x0000000000372ef0, shadow=0x0000000000370ef0, gh_mask=fffffffffffef871
kvm_intel: CR3 = 0x000000010a3b2005
kvm_intel: PDPTR0 = 0x0000000000000011  PDPTR1 = 0x0000000000000022
kvm_intel: PDPTR2 = 0x0000000000000033  PDPTR3 = 0x0000000000000044
kvm_intel: RSP = 0xffffb6d6c00b3e80  RIP = 0xffffffff8f1a3c2e
kvm_intel: RFLAGS=0x00000246         DR7 = 0x0000000000000400
kvm_intel: Sysenter RSP=fffffe0000003000 CS:RIP=0010:ffffffff8fa01830
kvm_intel: CS:   sel=0x0010, attr=0x0a09b, limit=0xffffffff, base=0x0000000000000000
kvm_intel: DS:   sel=0x0000, attr=0x1c000, limit=0xffffffff, base=0x0000000000000000
kvm_intel: SS:   sel=0x0018, attr=0x0c093, limit=0xffffffff, base=0x0000000000000000
kvm_intel: ES:   sel=0x0000, attr=0x1c000, limit=0xffffffff, base=0x0000000000000000
kvm_intel: FS:   sel=0x0000, attr=0x1c000, limit=0xffffffff, base=0x00007f1b2c3d4740
kvm_intel: GS:   sel=0x0000, attr=0x1c000, limit=0xffffffff, base=0xffff9b5e7fc00000
kvm_intel: GDTR:                           limit=0x0000007f, base=0xfffffe0000001000
kvm_intel: LDTR: sel=0x0000, attr=0x1c000, limit=0xffffffff, base=0x0000000000000000
kvm_intel: IDTR:                           limit=0x00000fff, base=0xfffffe0000000000
kvm_intel: TR:   sel=0x0040, attr=0x0008b, limit=0x00004087, base=0xfffffe0000003000
kvm_intel: EFER= 0x0000000000000d01 (effective)
kvm_intel: PAT = 0x0407050600070106
kvm_intel: DebugCtl = 0x0000000000000000  DebugExceptions = 0x0000000000000000
kvm_intel: PerfGlobCtl = 0x000000070000000f
kvm_intel: Interruptibility = 00000000  ActivityState = 00000000
kvm_intel: InterruptStatus = 00ec
kvm_intel: MSR guest autoload:
kvm_intel:    0: msr=0x00000600 value=0x0000000000000000
kvm_intel:    1: msr=0xc0000080 value=0x0000000000000d01
kvm_intel: *** Host State ***
kvm_intel: RIP = 0xffffffffc0a1b2c3  RSP = 0xffffb6d6c1234e80
kvm_intel: CS=0010 SS=0018 DS=0000 ES=0000 FS=0000 GS=0000 TR=0040
kvm_intel: FSBase=00007f1b2c3d4740 GSBase=ffff9b5e7fc00000 TRBase=fffffe0000003000
kvm_intel: GDTBase=fffffe0000001000 IDTBase=fffffe0000000000
kvm_intel: CR0=0000000080050033 CR3=000000010e2c4004 CR4=0000000000772ef0
kvm_intel: Sysenter RSP=fffffe0000003000 CS:RIP=0010:ffffffff8fa01830
kvm_intel: EFER= 0x0000000000000d01
kvm_intel: PAT = 0x0407050600070106
kvm_intel: MSR host autoload:
kvm_intel:    0: msr=0x00000600 value=0xfffffe0000010000
kvm_intel: *** Control State ***
kvm_intel: CPUBased=0xb5a06dfa SecondaryExec=0x82f5afbf TertiaryExec=0x0000000000000010
kvm_intel: PinBased=0x000000ff EntryControls=0000d3ff ExitControls=002befff
kvm_intel: ExceptionBitmap=00060042 PFECmask=00000000 PFECmatch=00000000
kvm_intel: VMEntry: intr_info=800000ec errcode=00000000 ilen=00000000
kvm_intel: VMExit: intr_info=00000000 errcode=00000000 ilen=00000000
kvm_intel:         reason=80000021 qualification=0000000000000000
kvm_intel: IDTVectoring: info=00000000 errcode=00000000
kvm_intel: TSC Offset = 0xfffff9c6d1c0e2d5
kvm_intel: TSC Multiplier = 0x0001000000000000
kvm_intel: SVI|RVI = 00|ec TPR Threshold = 0x00
kvm_intel: APIC-access addr = 0x0000000101a2c000 virt-APIC addr = 0x0000000109c6d000
kvm_intel: PostedIntrVec = 0xf2
kvm_intel: EPT pointer = 0x000000010f7e405e
kvm_intel: PLE Gap=00000080 Window=00001000
kvm_intel: Virtual processor ID = 0x0001
kvm_intel: VE info address = 0x0000000104d2e000
kvm_intel: ve_info: 0xffffffff 0x00000000 0x0000000000000000 0x0000000000000000 0x0000000000000000 0x0000
`;

/** 5.12–5.17 layout: "EFER= " (VMCS field, no suffix), old control lines; pr_cont virt-APIC line on its own. */
export const KVM_5_15 = `[  901.123456] *** Guest State ***
[  901.123457] CR0: actual=0x0000000000000031, shadow=0x0000000000000011, gh_mask=fffffffffffffff7
[  901.123458] CR4: actual=0x0000000000002040, shadow=0x0000000000000000, gh_mask=fffffffffffff871
[  901.123459] CR3 = 0x0000000000000000
[  901.123460] RSP = 0x0000000000007c00  RIP = 0x0000000000007c5a
[  901.123461] RFLAGS=0x00000002         DR7 = 0x0000000000000400
[  901.123462] Sysenter RSP=0000000000000000 CS:RIP=0000:0000000000000000
[  901.123463] CS:   sel=0x0008, attr=0x0c09b, limit=0xffffffff, base=0x0000000000000000
[  901.123464] DS:   sel=0x0010, attr=0x0c093, limit=0xffffffff, base=0x0000000000000000
[  901.123465] SS:   sel=0x0010, attr=0x0c093, limit=0xffffffff, base=0x0000000000000000
[  901.123466] ES:   sel=0x0010, attr=0x0c093, limit=0xffffffff, base=0x0000000000000000
[  901.123467] FS:   sel=0x0010, attr=0x0c093, limit=0xffffffff, base=0x0000000000000000
[  901.123468] GS:   sel=0x0010, attr=0x0c093, limit=0xffffffff, base=0x0000000000000000
[  901.123469] GDTR:                           limit=0x00000017, base=0x0000000000007e00
[  901.123470] LDTR: sel=0x0000, attr=0x00082, limit=0x0000ffff, base=0x0000000000000000
[  901.123471] IDTR:                           limit=0x000003ff, base=0x0000000000000000
[  901.123472] TR:   sel=0x0000, attr=0x0008b, limit=0x0000ffff, base=0x0000000000000000
[  901.123473] EFER= 0x0000000000000000
[  901.123474] PAT = 0x0007040600070406
[  901.123475] DebugCtl = 0x0000000000000000  DebugExceptions = 0x0000000000000000
[  901.123476] Interruptibility = 00000000  ActivityState = 00000000
[  901.123477] *** Host State ***
[  901.123478] RIP = 0xffffffffc0a1b2c3  RSP = 0xffffb6d6c1234e80
[  901.123479] CS=0010 SS=0018 DS=0000 ES=0000 FS=0000 GS=0000 TR=0040
[  901.123480] FSBase=00007f1b2c3d4740 GSBase=ffff9b5e7fc00000 TRBase=fffffe0000003000
[  901.123481] GDTBase=fffffe0000001000 IDTBase=fffffe0000000000
[  901.123482] CR0=0000000080050033 CR3=000000010e2c4004 CR4=0000000000772ef0
[  901.123483] Sysenter RSP=fffffe0000003000 CS:RIP=0010:ffffffff8fa01830
[  901.123484] EFER= 0x0000000000000d01
[  901.123485] PAT = 0x0407050600070106
[  901.123486] *** Control State ***
[  901.123487] PinBased=0000007f CPUBased=b5a06dfa SecondaryExec=000000aa
[  901.123488] EntryControls=0000d1ff ExitControls=002befff
[  901.123489] ExceptionBitmap=00060042 PFECmask=00000000 PFECmatch=00000000
[  901.123490] VMEntry: intr_info=00000000 errcode=00000000 ilen=00000000
[  901.123491] VMExit: intr_info=00000000 errcode=00000000 ilen=00000000
[  901.123492]         reason=80000021 qualification=0000000000000000
[  901.123493] IDTVectoring: info=00000000 errcode=00000000
[  901.123494] TSC Offset = 0xfffff9c6d1c0e2d5
[  901.123495] TPR Threshold = 0x00
virt-APIC addr = 0x0000000109c6d000
[  901.123496] EPT pointer = 0x000000010f7e405e
[  901.123497] Virtual processor ID = 0x0001
`;

export const XEN_4_14 = `(XEN) [2021-03-02 10:11:12] d1v0 vmentry failure (reason 0x80000021): Invalid guest state (0)
(XEN) [2021-03-02 10:11:12] ************* VMCS Area **************
(XEN) [2021-03-02 10:11:12] *** Guest State ***
(XEN) [2021-03-02 10:11:12] CR0: actual=0x0000000080000031, shadow=0x0000000080000011, gh_mask=ffffffffffffffff
(XEN) [2021-03-02 10:11:12] CR4: actual=0x0000000000002020, shadow=0x0000000000000020, gh_mask=ffffffffffc8f860
(XEN) [2021-03-02 10:11:12] CR3 = 0x0000000000ff4000
(XEN) [2021-03-02 10:11:12] PDPTE0 = 0x0000000000ff5001  PDPTE1 = 0x0000000000ff6001
(XEN) [2021-03-02 10:11:12] PDPTE2 = 0x0000000000ff7001  PDPTE3 = 0x0000000000ff8001
(XEN) [2021-03-02 10:11:12] RSP = 0x0000000000008f00 (0x0000000000008f00)  RIP = 0x0000000000100000 (0x0000000000100002)
(XEN) [2021-03-02 10:11:12] RFLAGS=0x00000002 (0x00000002)  DR7 = 0x0000000000000400
(XEN) [2021-03-02 10:11:12] Sysenter RSP=0000000000000000 CS:RIP=0000:0000000000000000
(XEN) [2021-03-02 10:11:12]        sel  attr  limit   base
(XEN) [2021-03-02 10:11:12]   CS: 0008 0c09b ffffffff 0000000000000000
(XEN) [2021-03-02 10:11:12]   DS: 0010 0c093 ffffffff 0000000000000000
(XEN) [2021-03-02 10:11:12]   SS: 0010 0c093 ffffffff 0000000000000000
(XEN) [2021-03-02 10:11:12]   ES: 0010 0c093 ffffffff 0000000000000000
(XEN) [2021-03-02 10:11:12]   FS: 0000 1c000 ffffffff 0000000000000000
(XEN) [2021-03-02 10:11:12]   GS: 0000 1c000 ffffffff 0000000000000000
(XEN) [2021-03-02 10:11:12] GDTR:            00000027 0000000000001000
(XEN) [2021-03-02 10:11:12] LDTR: 0000 10000 00000000 0000000000000000
(XEN) [2021-03-02 10:11:12] IDTR:            000007ff 0000000000002000
(XEN) [2021-03-02 10:11:12]   TR: 0018 0008b 00000067 0000000000003000
(XEN) [2021-03-02 10:11:12] EFER(VMCS) = 0x0000000000000000  PAT = 0x0007040600070406
(XEN) [2021-03-02 10:11:12] PreemptionTimer = 0x00000000  SM Base = 0x00000000
(XEN) [2021-03-02 10:11:12] DebugCtl = 0x0000000000000000  DebugExceptions = 0x0000000000000000
(XEN) [2021-03-02 10:11:12] Interruptibility = 00000000  ActivityState = 00000000
(XEN) [2021-03-02 10:11:12] *** Host State ***
(XEN) [2021-03-02 10:11:12] RIP = 0xffff82d0402f7b20 (vmx_asm_vmexit_handler)  RSP = 0xffff830839c3ff70
(XEN) [2021-03-02 10:11:12] CS=e008 SS=0000 DS=0000 ES=0000 FS=0000 GS=0000 TR=e040
(XEN) [2021-03-02 10:11:12] FSBase=0000000000000000 GSBase=0000000000000000 TRBase=ffff830839c47c80
(XEN) [2021-03-02 10:11:12] GDTBase=ffff830839c36000 IDTBase=ffff830839c3a000
(XEN) [2021-03-02 10:11:12] CR0=0000000080050033 CR3=0000000838a1d000 CR4=00000000003526e0
(XEN) [2021-03-02 10:11:12] Sysenter RSP=ffff830839c3ffa0 CS:RIP=e008:ffff82d04038a0e0
(XEN) [2021-03-02 10:11:12] EFER = 0x0000000000000d01  PAT = 0x0000050100070406
(XEN) [2021-03-02 10:11:12] *** Control State ***
(XEN) [2021-03-02 10:11:12] PinBased=0000003f CPUBased=b6a065fa SecondaryExec=000014eb
(XEN) [2021-03-02 10:11:12] EntryControls=0000d1ff ExitControls=002fefff
(XEN) [2021-03-02 10:11:12] ExceptionBitmap=00060002 PFECmask=00000000 PFECmatch=00000000
(XEN) [2021-03-02 10:11:12] VMEntry: intr_info=00000000 errcode=00000000 ilen=00000000
(XEN) [2021-03-02 10:11:12] VMExit: intr_info=00000000 errcode=00000000 ilen=00000000
(XEN) [2021-03-02 10:11:12]         reason=80000021 qualification=0000000000000000
(XEN) [2021-03-02 10:11:12] IDTVectoring: info=00000000 errcode=00000000
(XEN) [2021-03-02 10:11:12] TSC Offset = 0xffffffd2984c98e6  TSC Multiplier = 0x0000000000000000
(XEN) [2021-03-02 10:11:12] TPR Threshold = 0x00  PostedIntrVec = 0x00
(XEN) [2021-03-02 10:11:12] EPT pointer = 0x000000016e5ac01e  EPTP index = 0x0000
(XEN) [2021-03-02 10:11:12] CR3 target0=0000000000001000 target1=0000000000002000
(XEN) [2021-03-02 10:11:12] CR3 target2=0000000000003000
(XEN) [2021-03-02 10:11:12] PLE Gap=00000080 Window=00001000
(XEN) [2021-03-02 10:11:12] Virtual processor ID = 0x0003 VMfunc controls = 0000000000000000
(XEN) [2021-03-02 10:11:12] **************************************
`;

/** QEMU's 64-bit register dump (x86_cpu_dump_state with CPU_DUMP_CODE) followed by nothing else. */
export const QEMU_64 = `KVM: entry failed, hardware error 0x80000021

If you're running a guest on an Intel machine without unrestricted mode
support, the failure can be most likely due to the guest entering an invalid
state for Intel VT. For example, the guest maybe running in big real mode
which is not supported on less recent Intel processors.

RAX=0000000000000000 RBX=0000000000000000 RCX=00000000c0000080 RDX=0000000000000000
RSI=0000000000000000 RDI=0000000000000000 RBP=0000000000000000 RSP=0000000000008f00
R8 =0000000000000000 R9 =0000000000000000 R10=0000000000000000 R11=0000000000000000
R12=0000000000000000 R13=0000000000000000 R14=0000000000000000 R15=0000000000000000
RIP=0000000000100000 RFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
ES =0010 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]
CS =0008 0000000000000000 ffffffff 00c09b00 DPL=0 CS32 [-RA]
SS =0010 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]
DS =0010 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]
FS =0000 0000000000000000 ffffffff 00c00000
GS =0000 0000000000000000 ffffffff 00c00000
LDT=0000 0000000000000000 0000ffff 00008200 DPL=0 LDT
TR =0018 0000000000003000 00000067 00008b00 DPL=0 TSS64-busy
GDT=     0000000000001000 00000027
IDT=     0000000000002000 000007ff
CR0=80000031 CR2=0000000000000000 CR3=0000000000ff4000 CR4=00000020
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
DR6=00000000ffff0ff0 DR7=0000000000000400
EFER=0000000000000500
Code=00 00 00 00 00 00 <0f> 01 c1 00 00 00 00 00 00 00
`;
