// VMX instructions executed by L2 that do not exit: outside VMX non-root operation every VMX instruction is
// #UD (L2 never executes VMXON here); in non-root operation only VMREAD/VMWRITE let through by VMCS
// shadowing (served by the shadow VMCS) and a successful VMFUNC EPTP switch reach execution.
// Must not: emulate root-mode VMX (src/cpu/vmx owns that). SDM Vol. 3C 30.3 (VMREAD, VMWRITE, VMFUNC), 24.10.
import { Reg } from '../state.js';
import { readQword } from '../nonroot/rules-instructions.js';
import type { DecodedInstr } from './decoded.js';
import { UD, type ExecContext } from './exec-context.js';
import { UNSUPPORTED, type Handler, type Outcome } from './handler.js';

/** VMsucceed / VMfailInvalid / VMfailValid flag settings (SDM 30.2). */
function vmResult(x: ExecContext, kind: 'succeed' | 'fail-invalid' | 'fail-valid'): void {
  const cleared = x.flags & ~0x8d5;
  x.flags = kind === 'succeed' ? cleared : kind === 'fail-invalid' ? cleared | 0x1 : cleared | 0x40;
}

function notInVmx(x: ExecContext): Outcome {
  return x.nr ? UNSUPPORTED : UD;
}

function vmread(x: ExecContext, i: DecodedInstr): Outcome {
  const nr = x.nr;
  if (!nr) return UD;
  const shadow = nr.shadowVmcs;
  if (shadow === undefined) return UNSUPPORTED;
  const encOp = i.ops[1]!;
  if (encOp.kind !== 'reg') return UD;
  if (shadow === null) {
    vmResult(x, 'fail-invalid');
    return undefined;
  }
  const enc = Number(x.getReg(encOp.reg, 4));
  const v = shadow.read(enc);
  if (v === undefined) {
    vmResult(x, 'fail-valid');
    return undefined;
  }
  const size = x.state.longMode64 ? 8 : 4;
  const f = x.write(i, 0, v, size);
  if (f) return f;
  vmResult(x, 'succeed');
  return undefined;
}

function vmwrite(x: ExecContext, i: DecodedInstr): Outcome {
  const nr = x.nr;
  if (!nr) return UD;
  const shadow = nr.shadowVmcs;
  if (shadow === undefined) return UNSUPPORTED;
  const encOp = i.ops[0]!;
  if (encOp.kind !== 'reg') return UD;
  const size = x.state.longMode64 ? 8 : 4;
  const v = x.read(i, 1, size);
  if (typeof v !== 'bigint') return v;
  if (shadow === null) {
    vmResult(x, 'fail-invalid');
    return undefined;
  }
  const r = shadow.write(Number(x.getReg(encOp.reg, 4)), v);
  vmResult(x, r === 'ok' ? 'succeed' : 'fail-valid');
  return undefined;
}

/** VMFUNC that did not exit: EPTP switching with an index and entry the rule already validated. */
function vmfunc(x: ExecContext): Outcome {
  const nr = x.nr;
  if (!nr) return UD;
  if (!nr.switchEptp) return UNSUPPORTED;
  const index = Number(x.getReg(Reg.RCX, 4));
  const entry = readQword(nr.env, nr.controls.eptpListAddress + BigInt(index) * 8n);
  if (entry === undefined) return UNSUPPORTED;
  nr.switchEptp(index, entry);
  return undefined;
}

export const VMX_HANDLERS: Record<string, Handler> = {
  vmread, vmwrite, vmfunc,
  vmcall: notInVmx, vmclear: notInVmx, vmlaunch: notInVmx, vmptrld: notInVmx, vmptrst: notInVmx,
  vmresume: notInVmx, vmxoff: notInVmx, vmxon: notInVmx, invept: notInVmx, invvpid: notInVmx,
};
