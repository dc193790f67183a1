// The oracle (DESIGN.md §3) on APIC virtualization: the same built-in L1 and L2 program on the reference machine and on
// the nested machine (L0 over a host that has the controls) give identical observations — APIC-access, APIC-write,
// TPR-below-threshold and EOI-induced exits, virtualized reads and writes, virtual-interrupt delivery.
// Expectations: equality of the two observation streams, not values from the code.
import { describe, expect, it } from 'vitest';
import { asm64 } from '../../../../src/asm/index.js';
import { findCpuModel, type CpuModel } from '../../../../src/cpu/cpu-model.js';
import { Pin, Primary, Secondary } from '../../../../src/cpu/generated/controls.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { builtinL1 } from '../../../../src/cpu/l1/builtin.js';
import { L1Layout, type L1Config } from '../../../../src/cpu/l1/config.js';
import type { Observation } from '../../../../src/cpu/l1/observation.js';
import { ObservationLog } from '../../../../src/cpu/l1/observe.js';
import { ReferenceMachine } from '../../../../src/cpu/machine/index.js';
import { NestedRecordLog } from '../../../../src/nested/l0/records.js';
import { NestedMachine } from '../../../../src/nested/machine/nested-machine.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { firstDifference } from '../../nested/machine/harness.js';

const XEON = findCpuModel('intel-xeon-platinum-8160')!;
const KVM_L1 = findCpuModel('kvm-l1')!;
const APIC = 0xa_0000n;
const VAA = Secondary.VIRTUALIZE_APIC_ACCESSES;
const ARV = Secondary.APIC_REGISTER_VIRTUALIZATION;
const VID = Secondary.VIRTUAL_INTERRUPT_DELIVERY;
const X2 = Secondary.VIRTUALIZE_X2APIC_MODE;

interface Scenario {
  readonly name: string;
  readonly code: Uint8Array;
  readonly secondary: number;
  readonly pin?: number;
  readonly threshold?: number;
  readonly writes?: readonly (readonly [number, bigint])[];
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'unvirtualized read: APIC-access exit', code: asm64`mov eax, [rbx + 0x80]; mov eax, [rbx + 0x30]; hlt`, secondary: VAA },
  { name: 'VTPR write below threshold', code: asm64`mov dword [rbx + 0x80], 0x10; hlt`, secondary: VAA, threshold: 2 },
  { name: 'APIC-write exit', code: asm64`mov dword [rbx + 0x380], 0x30; hlt`, secondary: VAA | ARV },
  { name: 'virtual-interrupt delivery', code: asm64`nop; hlt`, secondary: VAA | VID, pin: Pin.EXTERNAL_INTERRUPT_EXITING },
  {
    name: 'EOI-induced exit', code: asm64`cli; mov dword [rbx + 0xb0], 0; hlt`, secondary: VAA | VID, pin: Pin.EXTERNAL_INTERRUPT_EXITING,
    writes: [[Field.EOI_EXIT_BITMAP0, 1n << 0x31n]],
  },
  { name: 'self-IPI', code: asm64`cli; mov dword [rbx + 0x300], 0x40052; sti; nop; hlt`, secondary: VAA | VID, pin: Pin.EXTERNAL_INTERRUPT_EXITING },
  { name: 'x2APIC TPR write below threshold', code: asm64`mov ecx, 0x808; mov eax, 0x20; xor edx, edx; wrmsr; hlt`, secondary: X2, threshold: 3 },
  { name: 'x2APIC reads with APIC-register virtualization', code: asm64`mov ecx, 0x80a; rdmsr; mov ecx, 0x808; rdmsr; hlt`, secondary: X2 | ARV },
  {
    name: 'x2APIC EOI', code: asm64`cli; mov ecx, 0x80b; xor eax, eax; xor edx, edx; wrmsr; hlt`, secondary: X2 | VID, pin: Pin.EXTERNAL_INTERRUPT_EXITING,
    writes: [[Field.EOI_EXIT_BITMAP0, 1n << 0x31n]],
  },
  { name: 'x2APIC self-IPI', code: asm64`mov ecx, 0x83f; mov eax, 0x55; xor edx, edx; wrmsr; nop; hlt`, secondary: X2 | VID, pin: Pin.EXTERNAL_INTERRUPT_EXITING },
];

function config(s: Scenario, ept: boolean): L1Config {
  const vapic = new Uint8Array(4096);
  vapic[0x220] = 2; // VIRR[41H]
  vapic[0x112] = 2; // VISR[31H]
  vapic[0x80] = 0x30; // VTPR
  return {
    l2: { mode: 'long64', code: s.code, gprs: [[3, APIC]], rflags: 0x200n },
    ...(ept ? { ept: {} } : {}),
    controls: { primary: Primary.HLT_EXITING | Primary.USE_TPR_SHADOW, secondary: s.secondary, ...(s.pin !== undefined ? { pin: s.pin } : {}) },
    tprThreshold: s.threshold ?? 0,
    msrBitmap: { read: [0x10] },
    l1Data: [{ gpa: L1Layout.VIRTUAL_APIC, bytes: vapic }],
    vmcsWrites: [
      ...(s.secondary & VAA ? [[Field.APIC_ACCESS_ADDR, ept ? L1Layout.L2_BASE + APIC : APIC] as const] : []),
      [Field.GUEST_INTR_STATUS, 0x3141n], ...(s.writes ?? []),
    ],
    policy: { rules: [{ reason: 12, actions: [{ kind: 'stop' }] }] },
    maxExits: 4,
  };
}

function both(c: L1Config, cpu: CpuModel, host: CpuModel): { reference: Observation[]; nested: Observation[] } {
  const program = builtinL1(c);
  const rlog = new ObservationLog();
  new ReferenceMachine({ cpu, sink: rlog }).run(program);
  const nlog = new ObservationLog();
  new NestedMachine({ cpu, host, sink: nlog, records: new NestedRecordLog(), profile: sdmProfile() }).run(program);
  return { reference: rlog.items, nested: nlog.items };
}

describe('reference and nested machines agree under APIC virtualization', () => {
  for (const s of SCENARIOS) {
    for (const ept of [false, true]) {
      it(`${s.name} (EPT ${ept}, L1 and host: Xeon 8160)`, () => {
        const r = both(config(s, ept), XEON, XEON);
        // L2 ran and L1 saw its exit (no VM-entry failure hides the scenario).
        const exits = r.reference.filter((o) => o.kind === 'exit-to-l1');
        expect(exits.length).toBeGreaterThan(0);
        expect(r.reference.some((o) => o.kind === 'l2-state')).toBe(true);
        expect(firstDifference(r.reference, r.nested)).toBeUndefined();
      });
    }
  }

  it('kvm-l1 over the default host (controls L1 cannot have are adjusted away) agrees too', () => {
    for (const s of SCENARIOS) {
      const r = both(config(s, true), KVM_L1, findCpuModel('intel-core-i7-6700k')!);
      expect(firstDifference(r.reference, r.nested), s.name).toBeUndefined();
    }
  });
});
