// Regression tests for posted interrupts of L1 for L2 on the nested machine (Xeon 8160 as L1's CPU and host): vmcs02
// gets "acknowledge interrupt on exit" with posted-interrupt processing (SDM 26.2.1.1), and an interrupt with vmcs12's
// notification vector is processed by L0 on vmcs12's descriptor instead of exiting (SDM 29.6), so reference and
// nested agree (checkProgram, sdm profile) on L2's virtual interrupt, the descriptor, and other vectors' exits.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { findCpuModel } from '../../../../src/cpu/cpu-model.js';
import { ExitCtl, Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { handlerAddress } from '../../../../src/cpu/interp/l2-env.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import { L1Layout, type L1Config } from '../../../../src/cpu/l1/config.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { ObservationLog } from '../../../../src/cpu/l1/observe.js';
import type { ScheduledEvent } from '../../../../src/cpu/machine/index.js';
import { ReferenceMachine } from '../../../../src/cpu/machine/index.js';
import { checkProgram } from '../../../../src/checker/run.js';
import { NestedRecordLog } from '../../../../src/nested/l0/records.js';
import { NestedMachine } from '../../../../src/nested/machine/nested-machine.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { hexJson } from '../machine/harness.js';

const XEON = findCpuModel('intel-xeon-platinum-8160')!;
const APIC = 0xa_0000n;
const PI_DESC = 0x0100_e000n;
const NV = 0xf2;

function descriptor(pir: readonly number[], on: boolean): Uint8Array {
  const b = new Uint8Array(64);
  const dv = new DataView(b.buffer);
  for (const v of pir) dv.setUint32((v >> 5) * 4, (dv.getUint32((v >> 5) * 4, true) | (1 << (v & 31))) >>> 0, true);
  if (on) dv.setUint32(32, 1, true);
  return b;
}

function config(pir: readonly number[], vtpr = 0): L1Config {
  const vapic = new Uint8Array(4096);
  vapic[0x80] = vtpr;
  return {
    l2: { mode: 'long64', code: asm64`nop; nop; nop; hlt`, gprs: [[3, APIC]], rflags: 0x200n },
    controls: {
      primary: Primary.HLT_EXITING | Primary.USE_TPR_SHADOW, secondary: Secondary.VIRTUALIZE_APIC_ACCESSES | Secondary.VIRTUAL_INTERRUPT_DELIVERY,
      pin: Pin.EXTERNAL_INTERRUPT_EXITING | Pin.PROCESS_POSTED_INTERRUPTS, exit: ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT,
    },
    l1Data: [{ gpa: L1Layout.VIRTUAL_APIC, bytes: vapic }, { gpa: PI_DESC, bytes: descriptor(pir, true) }],
    vmcsWrites: [[Field.APIC_ACCESS_ADDR, APIC], [Field.POSTED_INTR_NV, BigInt(NV)], [Field.POSTED_INTR_DESC_ADDR, PI_DESC]],
    policy: { rules: [{ reason: 12, actions: [{ kind: 'stop' }] }, { reason: 1, actions: [{ kind: 'stop' }] }] },
    maxExits: 2,
  };
}

function unexplained(c: L1Config, schedule: readonly ScheduledEvent[]): string[] {
  const r = checkProgram(builtinL1(c), { schedule }, { cpu: XEON, host: XEON, profile: sdmProfile(), mode: 'all' });
  return r.divergences.filter((d) => d.kind !== 'expected-deviation').map((d) => hexJson(d));
}

function both(c: L1Config, schedule: readonly ScheduledEvent[]): { reference: Observation[]; nested: Observation[]; records: NestedRecordLog } {
  const rlog = new ObservationLog();
  new ReferenceMachine({ cpu: XEON, sink: rlog, schedule }).run(builtinL1(c));
  const nlog = new ObservationLog();
  const records = new NestedRecordLog();
  new NestedMachine({ cpu: XEON, host: XEON, sink: nlog, records, profile: sdmProfile(), schedule }).run(builtinL1(c));
  return { reference: rlog.items, nested: nlog.items, records };
}

const exitsOf = (log: readonly Observation[]) =>
  log.filter((o): o is Extract<Observation, { kind: 'exit-to-l1' }> => o.kind === 'exit-to-l1')
    .map((o) => [o.exit.exitReason, o.exit.interruptionInfo >>> 0, o.guestState.get(Field.GUEST_RIP), o.guestState.get(Field.GUEST_INTR_STATUS)]);

describe('posted interrupts of L1 for L2 (SDM 29.6) on the nested machine', () => {
  it('vmcs02 enters (no ctrl.posted-interrupts.acknowledge-interrupt-on-exit failure): it acknowledges on exit', () => {
    const r = both(config([0x61]), []);
    const entries = r.records.ofKind('l2-entry');
    expect(entries.length).toBeGreaterThan(0);
    for (const e of entries) {
      expect(e.vmcs02.lo(Field.PIN_BASED_VM_EXEC_CONTROL) & Pin.PROCESS_POSTED_INTERRUPTS).toBe(Pin.PROCESS_POSTED_INTERRUPTS);
      expect(e.vmcs02.lo(Field.VM_EXIT_CONTROLS) & ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT).toBe(ExitCtl.ACKNOWLEDGE_INTERRUPT_ON_EXIT);
    }
    expect(r.records.ofKind('l0-internal')).toEqual([]);
    expect(exitsOf(r.nested)).toEqual(exitsOf(r.reference));
  });

  it('the notification vector: PIR → VIRR, ON cleared, L2 takes virtual interrupt 61H, then its HLT exits', () => {
    const schedule: ScheduledEvent[] = [{ at: 1, kind: 'interrupt', vector: NV }];
    const r = both(config([0x61]), schedule);
    expect(exitsOf(r.reference)).toEqual([[12, 0, handlerAddress(0x61), 0x6100n]]);
    expect(exitsOf(r.nested)).toEqual(exitsOf(r.reference));
    expect(r.records.ofKind('l2-exit').some((e) => e.handler === 'posted-interrupt-notification12')).toBe(true);
    expect(unexplained(config([0x61]), schedule)).toEqual([]);
  });

  it('the notification vector with two posted vectors and a VTPR that masks the lower one', () => {
    const schedule: ScheduledEvent[] = [{ at: 2, kind: 'interrupt', vector: NV }];
    expect(unexplained(config([0x45, 0x93], 0x50), schedule)).toEqual([]);
  });

  it('the notification vector with an empty PIR: no virtual interrupt, L2 reaches its HLT', () => {
    const schedule: ScheduledEvent[] = [{ at: 1, kind: 'interrupt', vector: NV }];
    const r = both(config([]), schedule);
    expect(exitsOf(r.reference).map((e) => e[0])).toEqual([12]);
    expect(exitsOf(r.nested)).toEqual(exitsOf(r.reference));
    expect(unexplained(config([]), schedule)).toEqual([]);
  });

  it('another vector is L1\'s external-interrupt exit (acknowledged: vector 30H in the interruption information)', () => {
    const schedule: ScheduledEvent[] = [{ at: 1, kind: 'interrupt', vector: 0x30 }];
    const r = both(config([0x61]), schedule);
    expect(exitsOf(r.reference).map((e) => [e[0], e[1]])).toEqual([[1, 0x8000_0030]]);
    expect(exitsOf(r.nested)).toEqual(exitsOf(r.reference));
    expect(unexplained(config([0x61]), schedule)).toEqual([]);
  });
});
