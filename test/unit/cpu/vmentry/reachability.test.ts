// Every catalogue check can fail: some case makes it the first failure. Cases run on the presets; the checks
// listed below need a feature no preset offers, and are reached on a synthetic model (the default preset with that
// feature switched on) instead. An exclusion whose feature a preset starts to offer fails this test.
import { describe, expect, it } from 'vitest';
import type { CpuModel } from '../../../../src/cpu/cpu-model.js';
import { ENTRY_CHECKS } from '../../../../src/cpu/generated/entry-checks.js';
import { CONTROL_CASES } from './cases-controls.js';
import { GUEST_CASES } from './cases-guest.js';
import { HOST_CASES } from './cases-host.js';
import { MSR_LOAD_CASES, NON_REGISTER_CASES } from './cases-non-register.js';
import { SEGMENT_CASES } from './cases-segments.js';
import { presets, runCase } from './support.js';

const ALL_CASES = [...CONTROL_CASES, ...HOST_CASES, ...GUEST_CASES, ...SEGMENT_CASES, ...NON_REGISTER_CASES, ...MSR_LOAD_CASES];

interface Exclusion { feature: string; offered: (cpu: CpuModel) => boolean }
const ctl = (id: string) => (c: CpuModel): boolean => c.controlOffered(id);
const TERTIARY: Exclusion = { feature: 'tertiary processor-based controls (IPI virtualization)', offered: ctl('primary.activate-tertiary-controls') };
const SPP: Exclusion = { feature: 'sub-page write permissions for EPT', offered: ctl('secondary.sub-page-write-permissions') };
const CET_EXIT: Exclusion = { feature: 'the "load CET state" VM-exit control', offered: ctl('exit.load-cet-state') };
const CET_ENTRY: Exclusion = { feature: 'the "load CET state" VM-entry control', offered: ctl('entry.load-cet-state') };
const CR4_CET: Exclusion = { feature: 'CR4.CET in VMX operation (IA32_VMX_CR4_FIXED1[23])', offered: (c) => ((c.cr4Fixed1 >> 23n) & 1n) === 1n };

/** Checks no preset can reach, with the feature that is missing. */
const EXCLUDED: Record<string, Exclusion> = {
  'ctrl.tertiary.allowed-settings': TERTIARY,
  'ctrl.no-tpr-shadow.ipi-virtualization': TERTIARY,
  'ctrl.eptp.accessed-dirty': { feature: 'an EPT processor without EPT accessed/dirty flags', offered: (c) => ctl('secondary.enable-ept')(c) && !c.eptCap(21) },
  'ctrl.spp.requires-ept': SPP,
  'ctrl.spp.alignment': SPP,
  'ctrl.spp.width': SPP,
  'ctrl.ipi-virtualization.pid-table.alignment': TERTIARY,
  'ctrl.ipi-virtualization.pid-table.width': TERTIARY,
  'ctrl.exit2.allowed-settings': { feature: 'secondary VM-exit controls', offered: ctl('exit.activate-secondary-controls') },
  'host.cr4.cet-requires-wp': CR4_CET,
  'host.cet.s-cet-canonical': CET_EXIT,
  'host.cet.s-cet-reserved': CET_EXIT,
  'host.cet.ssp-table-canonical': CET_EXIT,
  'host.cet.ssp-alignment': CET_EXIT,
  'host.addr-size.hass0-ssp': CET_EXIT,
  'host.addr-size.hass1-ssp': CET_EXIT,
  'host.pkrs.reserved': { feature: 'the "load PKRS" VM-exit control', offered: ctl('exit.load-pkrs') },
  // SDM A.4/A.5: without Intel 64 neither control may be 1, so the control checks fire first on any consistent model.
  'host.addr-size.no-intel64': { feature: 'a processor without Intel 64 that still allows "IA-32e mode guest"', offered: (c) => !ctl('exit.host-address-space-size')(c) && ctl('entry.ia32e-mode-guest')(c) },
  'guest.cr4.cet-requires-wp': CR4_CET,
  'guest.cet.s-cet-canonical': CET_ENTRY,
  'guest.cet.s-cet-reserved': CET_ENTRY,
  'guest.cet.ssp-table-canonical': CET_ENTRY,
  'guest.ssp.alignment': CET_ENTRY,
  'guest.ssp.high-bits': CET_ENTRY,
  'guest.ssp.canonical': CET_ENTRY,
  'guest.rtit-ctl.reserved': { feature: 'the "load IA32_RTIT_CTL" VM-entry control', offered: ctl('entry.load-ia32-rtit-ctl') },
  'guest.lbr-ctl.reserved': { feature: 'the "load guest IA32_LBR_CTL" VM-entry control', offered: ctl('entry.load-guest-ia32-lbr-ctl') },
  'guest.pkrs.reserved': { feature: 'the "load PKRS" VM-entry control', offered: ctl('entry.load-pkrs') },
};

describe('every catalogue check is reachable', () => {
  const onPreset = new Set<string>(), onSynthetic = new Set<string>();
  for (const c of ALL_CASES) {
    if (c.expect === 'pass') continue;
    const r = runCase(c);
    if (r.first.failures[0]?.id !== c.expect) continue; // the stage test files report the mismatch
    (r.synthetic ? onSynthetic : onPreset).add(c.expect);
  }

  it('every check fails in some case on a preset, or is excluded with a reason', () => {
    const missing = ENTRY_CHECKS.map((c) => c.id).filter((id) => !onPreset.has(id) && !(id in EXCLUDED));
    expect(missing).toEqual([]);
  });
  it('every excluded check needs a feature no preset offers', () => {
    for (const [id, ex] of Object.entries(EXCLUDED)) {
      expect(ENTRY_CHECKS.some((c) => c.id === id), `${id} is not in the catalogue`).toBe(true);
      expect(presets().filter((p) => ex.offered(p)).map((p) => p.id), `${id}: ${ex.feature}`).toEqual([]);
      expect(onPreset.has(id), `${id} is reached on a preset; drop the exclusion`).toBe(false);
    }
  });
  it('every excluded check fails on a synthetic model offering the feature', () => {
    expect(Object.keys(EXCLUDED).filter((id) => !onSynthetic.has(id))).toEqual([]);
  });
});
