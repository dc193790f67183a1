// Handlers for system instructions when they execute (no VM exit): CPUID, RDMSR/WRMSR, MOV to/from CR and
// DR (with the non-root read shadows, guest/host masks and TPR shadow), CLTS, LMSW, INVD/WBINVD/WBNOINVD/
// INVLPG/INVPCID, RDTSC/RDTSCP (TSC offset and multiplier), RDPMC, XSETBV/XGETBV, RDRAND/RDSEED, MONITOR/
// MWAIT, PAUSE. Must not: decide exits (nonroot/). SDM Vol. 2 pages; Vol. 3C 25.3 (non-root changes), 29.3.
import { Primary, Secondary } from '../generated/controls.js';
import { Cr0, Cr4, Efer, Msr, Reg } from '../state.js';
import { lmswResult, maskedWrite, shadowedRead } from '../nonroot/rules-cr-dr.js';
import { tprBelowThreshold, tprBelowThresholdExit } from '../nonroot/rules-events.js';
import type { DecodedInstr } from './decoded.js';
import { GP0, UD, canonical, exc, type ExecContext } from './exec-context.js';
import { UNSUPPORTED, type Handler, type Outcome } from './handler.js';

/** CR4 bits this model supports (others are reserved: #GP). Matches the CPUID table in platform.ts. */
export const CR4_SUPPORTED = 0x7ff | Number(Cr4.UMIP | Cr4.VMXE | Cr4.SMXE | Cr4.FSGSBASE | Cr4.PCIDE | Cr4.OSXSAVE | Cr4.SMEP | Cr4.SMAP);
/** XCR0 bits supported: x87, SSE, AVX. */
export const XCR0_SUPPORTED = 0x7n;

/** TSC as the guest reads it: offset and multiplier apply in VMX non-root operation (SDM 25.3). */
export function guestTsc(x: ExecContext): bigint {
  const t = x.state.tsc;
  const nr = x.nr;
  if (!nr || !(nr.controls.primary & Primary.USE_TSC_OFFSETTING)) return t;
  let v = t;
  if (nr.controls.secondary & Secondary.USE_TSC_SCALING) v = (t * nr.controls.tscMultiplier) >> 48n;
  return BigInt.asUintN(64, v + nr.controls.tscOffset);
}

function setEdxEax(x: ExecContext, v: bigint): void {
  x.setReg(Reg.RAX, 4, v & 0xffff_ffffn);
  x.setReg(Reg.RDX, 4, (v >> 32n) & 0xffff_ffffn);
}

function edxEax(x: ExecContext): bigint {
  return (x.getReg(Reg.RDX, 4) << 32n) | x.getReg(Reg.RAX, 4);
}

function cpuid(x: ExecContext): Outcome {
  const leaf = Number(x.getReg(Reg.RAX, 4));
  const sub = Number(x.getReg(Reg.RCX, 4));
  const r = x.platform.cpuid(leaf, sub);
  let ecx = r[2];
  // CPUID.1:ECX.OSXSAVE mirrors CR4.OSXSAVE.
  if (leaf === 1) ecx = (x.state.cr4 & Cr4.OSXSAVE ? ecx | (1 << 27) : ecx & ~(1 << 27)) >>> 0;
  x.setReg(Reg.RAX, 4, BigInt(r[0] >>> 0));
  x.setReg(Reg.RBX, 4, BigInt(r[1] >>> 0));
  x.setReg(Reg.RCX, 4, BigInt(ecx >>> 0));
  x.setReg(Reg.RDX, 4, BigInt(r[3] >>> 0));
  return undefined;
}

function rdmsr(x: ExecContext): Outcome {
  if (x.cpl > 0) return GP0;
  const idx = Number(x.getReg(Reg.RCX, 4));
  // "Virtualize x2APIC mode": x2APIC MSRs read from the virtual-APIC page (SDM 29.5).
  const virtualized = x.nr?.apic?.rdmsr(idx);
  if (virtualized !== undefined) {
    setEdxEax(x, virtualized);
    return undefined;
  }
  if (!x.platform.msrExists(idx)) return GP0;
  setEdxEax(x, idx === Msr.IA32_TSC ? guestTsc(x) : x.state.msr(idx));
  return undefined;
}

function wrmsr(x: ExecContext): Outcome {
  if (x.cpl > 0) return GP0;
  const idx = Number(x.getReg(Reg.RCX, 4));
  const v = edxEax(x);
  // "Virtualize x2APIC mode": TPR, EOI and SELF IPI writes go to the virtual-APIC page (SDM 29.5); trap-like exits.
  const virtualized = x.nr?.apic?.wrmsr(idx, v);
  if (virtualized !== undefined) {
    if (virtualized.kind === 'gp') return GP0;
    x.trapExit = virtualized.trap;
    return undefined;
  }
  if (!x.platform.msrWritable(idx, v)) return GP0;
  const s = x.state;
  if (idx === Msr.IA32_EFER) {
    // SCE, LME, NXE are writable; LMA is read-only; LME cannot change while paging is on.
    if (v & ~(Efer.SCE | Efer.LME | Efer.LMA | Efer.NXE)) return GP0;
    if ((v & Efer.LME) !== (s.efer & Efer.LME) && s.cr0 & Cr0.PG) return GP0;
    s.efer = (v & ~Efer.LMA) | (s.efer & Efer.LMA);
    return undefined;
  }
  if (idx === Msr.IA32_TSC) {
    const nr = x.nr;
    s.tsc = nr && nr.controls.primary & Primary.USE_TSC_OFFSETTING ? BigInt.asUintN(64, v - nr.controls.tscOffset) : v;
    return undefined;
  }
  s.setMsr(idx, v);
  return undefined;
}

function readVtpr(x: ExecContext): number {
  const nr = x.nr!;
  return nr.env.readPhysByte(nr.controls.virtualApicPage + 0x80n) ?? 0;
}

/** MOV to CR0 value checks (SDM MOV CR): reserved bits, PG without PE, NW without CD, IA-32e transitions. */
/** CR0 bits MOV to CR0 leaves unchanged: reserved 28:19, 17, 15:6. */
const CR0_MOV_IGNORED = 0x1ff8_0000n | (1n << 17n) | 0xffc0n;

function checkCr0(x: ExecContext, v: bigint): boolean {
  const s = x.state;
  if (v >> 32n) return false;
  if (v & Cr0.PG && !(v & Cr0.PE)) return false;
  if (v & Cr0.NW && !(v & Cr0.CD)) return false;
  if (v & Cr0.PG && !(s.cr0 & Cr0.PG) && s.efer & Efer.LME && !(s.cr4 & Cr4.PAE)) return false;
  if (!(v & Cr0.PG) && s.longMode64) return false;
  return true;
}

function checkCr4(x: ExecContext, v: bigint): boolean {
  const s = x.state;
  if (v & ~BigInt(CR4_SUPPORTED)) return false;
  if (s.ia32e && !(v & Cr4.PAE)) return false;
  if (v & Cr4.PCIDE && !(s.cr4 & Cr4.PCIDE) && ((s.cr3 & 0xfffn) !== 0n || !s.ia32e)) return false;
  return true;
}

/** VMX fixed bits on the would-be CR value (SDM 23.8); unrestricted guest relaxes PE and PG. */
function vmxFixedOk(x: ExecContext, cr: 0 | 4, v: bigint): boolean {
  const nr = x.nr;
  if (!nr) return true;
  if (cr === 4) return (v & Cr4.VMXE) !== 0n;
  let fixed1Required = Cr0.NE | Cr0.PE | Cr0.PG;
  if (nr.controls.secondary & Secondary.UNRESTRICTED_GUEST) fixed1Required = Cr0.NE;
  return (v & fixed1Required) === fixed1Required;
}

function movCr(x: ExecContext, i: DecodedInstr): Outcome {
  const a = i.ops[0]!;
  const b = i.ops[1]!;
  const s = x.state;
  const nr = x.nr;
  if (x.cpl > 0) return GP0;
  if (a.kind === 'reg' && b.kind === 'cr') {
    let v: bigint;
    switch (b.n) {
      case 0: v = nr ? shadowedRead(s.cr0, nr.controls.cr0Mask, nr.controls.cr0Shadow) : s.cr0; break;
      case 2: v = s.cr2; break;
      case 3: v = s.cr3; break;
      case 4: v = nr ? shadowedRead(s.cr4, nr.controls.cr4Mask, nr.controls.cr4Shadow) : s.cr4; break;
      case 8: v = nr && nr.controls.primary & Primary.USE_TPR_SHADOW ? BigInt(readVtpr(x) >> 4) : s.cr8; break;
      default: return UD;
    }
    x.setReg(a.reg, s.longMode64 ? 8 : 4, v);
    return undefined;
  }
  if (a.kind !== 'cr' || b.kind !== 'reg') return UD;
  const v = s.longMode64 ? x.getReg(b.reg, 8) : x.getReg(b.reg, 4);
  switch (a.n) {
    case 0: {
      const nv = nr ? maskedWrite(s.cr0, nr.controls.cr0Mask, v) : v;
      if (!checkCr0(x, nv) || !vmxFixedOk(x, 0, nv)) return GP0;
      const pgOn = (nv & Cr0.PG) !== 0n && !(s.cr0 & Cr0.PG);
      const pgOff = !(nv & Cr0.PG) && (s.cr0 & Cr0.PG) !== 0n;
      // Bits 28:19, 17, 15:6 and ET are unchanged by MOV to CR0 (always 0 / always 1; SDM 26.3.1.1 and 27.5.1 footnotes).
      s.cr0 = (nv & ~CR0_MOV_IGNORED) | (s.cr0 & CR0_MOV_IGNORED) | Cr0.ET;
      if (pgOn && s.efer & Efer.LME) s.efer |= Efer.LMA;
      if (pgOff) s.efer &= ~Efer.LMA;
      return undefined;
    }
    case 2: s.cr2 = v; return undefined;
    case 3:
      if (s.longMode64 && v >> 52n & 0x7ffn) return GP0;
      s.cr3 = s.ia32e ? v & ~(1n << 63n) : v & 0xffff_ffffn;
      return undefined;
    case 4: {
      const nv = nr ? maskedWrite(s.cr4, nr.controls.cr4Mask, v) : v;
      if (!checkCr4(x, nv) || !vmxFixedOk(x, 4, nv)) return GP0;
      s.cr4 = nv;
      return undefined;
    }
    case 8: {
      if (v >> 4n) return GP0;
      if (nr && nr.controls.primary & Primary.USE_TPR_SHADOW) {
        // TPR virtualization: VTPR := value << 4 (bits 3:0 and the rest of the VTPR dword cleared), then the
        // trap-like TPR-below-threshold check (SDM 29.3, 29.1.2).
        const addr = nr.controls.virtualApicPage + 0x80n;
        nr.writePhysByte?.(addr, Number(v << 4n));
        for (let k = 1n; k < 4n; k++) nr.writePhysByte?.(addr + k, 0);
        if (nr.apic) x.trapExit = nr.apic.tprVirtualization();
        else if (tprBelowThreshold(nr.controls, Number(v << 4n))) x.trapExit = tprBelowThresholdExit();
        return undefined;
      }
      s.cr8 = v;
      return undefined;
    }
    default:
      return UD;
  }
}

/** MOV DR: DR4/DR5 alias DR6/DR7 without CR4.DE; DR7.GD raises #DB (BD) first. */
function movDr(x: ExecContext, i: DecodedInstr): Outcome {
  const s = x.state;
  const a = i.ops[0]!;
  const b = i.ops[1]!;
  const drOp = a.kind === 'dr' ? a : b;
  const regOp = a.kind === 'dr' ? b : a;
  if (drOp.kind !== 'dr' || regOp.kind !== 'reg') return UD;
  if (drOp.n > 7) return UD;
  if (x.cpl > 0) return GP0;
  let n = drOp.n;
  if (n === 4 || n === 5) {
    if (s.cr4 & Cr4.DE) return UD;
    n += 2;
  }
  // DR7.GD: #DB with DR6.BD, which the interpreter sets when the #DB is delivered (not if it exits).
  if (s.dr[7]! & (1n << 13n)) return exc(1);
  if (a.kind === 'dr') {
    const v = s.longMode64 ? x.getReg(regOp.reg, 8) : x.getReg(regOp.reg, 4);
    if ((n === 6 || n === 7) && v >> 32n) return GP0;
    if (n === 6) s.dr[6] = (v | 0xffff0ff0n) & 0xffff_ffffn;
    else if (n === 7) s.dr[7] = (v | 0x400n) & 0xffff_ffffn;
    else s.dr[n] = v;
  } else {
    x.setReg(regOp.reg, s.longMode64 ? 8 : 4, s.dr[n]!);
  }
  return undefined;
}

function clts(x: ExecContext): Outcome {
  if (x.cpl > 0) return GP0;
  const nr = x.nr;
  if (nr && nr.controls.cr0Mask & Cr0.TS) return undefined; // host owns TS: CR0.TS unchanged (SDM 25.3)
  x.state.cr0 &= ~Cr0.TS;
  return undefined;
}

function lmsw(x: ExecContext, i: DecodedInstr): Outcome {
  if (x.cpl > 0) return GP0;
  const src = x.read(i, 0, 2);
  if (typeof src !== 'bigint') return src;
  const mask = x.nr ? x.nr.controls.cr0Mask : 0n;
  x.state.cr0 = lmswResult(x.state.cr0, src & 0xfn, mask);
  return undefined;
}

/** INVD, WBINVD, WBNOINVD, INVLPG: privileged; no caches or TLBs are modelled, so no other effect. */
function cacheOp(x: ExecContext): Outcome {
  if (x.cpl > 0) return GP0;
  return undefined;
}

/** INVPCID: type in a register, 16-byte descriptor in memory; checks per SDM; no TLB effect. */
function invpcid(x: ExecContext, i: DecodedInstr): Outcome {
  if (x.cpl > 0) return GP0;
  const typeOp = i.ops[0]!;
  if (typeOp.kind !== 'reg' || !i.mem) return UD;
  const type = x.getReg(typeOp.reg, typeOp.size);
  if (type > 3n) return GP0;
  const ea = x.ea(i, i.mem);
  const lo = x.readMem(i.mem.seg, ea, 8);
  if (typeof lo !== 'bigint') return lo;
  const hi = x.readMem(i.mem.seg, ea + 8n, 8);
  if (typeof hi !== 'bigint') return hi;
  if (lo >> 12n) return GP0;
  if (type === 0n && !canonical(hi, x.la57)) return GP0;
  if ((type === 0n || type === 1n) && (lo & 0xfffn) !== 0n && !(x.state.cr4 & Cr4.PCIDE)) return GP0;
  return undefined;
}

function rdtsc(x: ExecContext, i: DecodedInstr): Outcome {
  if (x.state.cr4 & Cr4.TSD && x.cpl > 0) return GP0;
  setEdxEax(x, guestTsc(x));
  if (i.name === 'rdtscp') x.setReg(Reg.RCX, 4, x.state.msr(Msr.IA32_TSC_AUX) & 0xffff_ffffn);
  return undefined;
}

function rdpmc(x: ExecContext): Outcome {
  if (x.cpl > 0 && !(x.state.cr4 & Cr4.PCE)) return GP0;
  const v = x.platform.pmc(Number(x.getReg(Reg.RCX, 4)));
  if (v === undefined) return GP0;
  setEdxEax(x, v);
  return undefined;
}

function xsetbv(x: ExecContext): Outcome {
  const s = x.state;
  if (!(s.cr4 & Cr4.OSXSAVE)) return UD;
  if (x.cpl > 0) return GP0;
  if (x.getReg(Reg.RCX, 4) !== 0n) return GP0;
  const v = edxEax(x);
  if (!(v & 1n) || v & ~XCR0_SUPPORTED || (v & 4n && !(v & 2n))) return GP0;
  x.aux.xcr0 = v;
  return undefined;
}

function xgetbv(x: ExecContext): Outcome {
  if (!(x.state.cr4 & Cr4.OSXSAVE)) return UD;
  const n = x.getReg(Reg.RCX, 4);
  if (n === 0n) setEdxEax(x, x.aux.xcr0);
  else if (n === 1n) setEdxEax(x, x.aux.xcr0 & 1n);
  else return GP0;
  return undefined;
}

/** RDRAND/RDSEED: CF = 1 with a value, or CF = 0 and destination 0; OF, SF, ZF, AF, PF cleared. */
function rdrand(x: ExecContext, i: DecodedInstr): Outcome {
  const o = i.ops[0]!;
  if (o.kind !== 'reg') return UD;
  const bits = (o.size * 8) as 16 | 32 | 64;
  const v = i.name === 'rdseed' ? x.platform.rdseed(bits) : x.platform.rdrand(bits);
  x.setReg(o.reg, o.size, v ?? 0n);
  x.flags = (x.flags & ~0x8d5) | (v === undefined ? 0 : 1);
  return undefined;
}

function monitor(x: ExecContext): Outcome {
  if (x.cpl > 0) return UD;
  if (x.getReg(Reg.RCX, 4) !== 0n) return GP0;
  x.aux.monitorArmed = true;
  return undefined;
}

/**
 * MWAIT: #UD at CPL > 0; ECX must name only supported extensions (bit 0). The model has no wake-up sources
 * other than events, so MWAIT ends immediately (an allowed implementation: "may exit the wait early") and
 * disarms the monitor.
 */
function mwait(x: ExecContext): Outcome {
  if (x.cpl > 0) return UD;
  if (x.getReg(Reg.RCX, 4) & ~1n) return GP0;
  x.aux.monitorArmed = false;
  return undefined;
}

export const SYSTEM_HANDLERS: Record<string, Handler> = {
  cpuid, rdmsr, wrmsr, clts, lmsw,
  invd: cacheOp, wbinvd: cacheOp, wbnoinvd: cacheOp, invlpg: cacheOp, invpcid,
  rdtsc, rdtscp: rdtsc, rdpmc, xsetbv, xgetbv, rdrand, rdseed: rdrand, monitor, mwait,
  pause: () => undefined,
};

/** MOV with a CR or DR operand. */
export function movCrDr(x: ExecContext, i: DecodedInstr): Outcome {
  if (i.ops.some((o) => o.kind === 'cr')) return movCr(x, i);
  if (i.ops.some((o) => o.kind === 'dr')) return movDr(x, i);
  return UNSUPPORTED;
}
