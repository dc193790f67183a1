// L0 made of replaceable parts: the default parts give the reference's observations, and replacing any single part
// with a deliberately wrong one (the bugs a nested hypervisor has had) makes a scenario that exercises it diverge —
// so each part is really what the nested machine uses, and the checker's wrong-L0 variants are one substitution away.
import { describe, expect, it } from 'vitest';
import { assemble } from '../../../../src/asm/index.js';
import { Field } from '../../../../src/cpu/generated/vmcs-fields.js';
import { Primary } from '../../../../src/cpu/generated/controls.js';
import { L2Layout } from '../../../../src/cpu/interp/l2-env.js';
import type { L1Config } from '../../../../src/cpu/l1/config.js';
import { defaultL0Parts, type L0Parts } from '../../../../src/nested/l0/parts.js';
import { composeEpt02 } from '../../../../src/nested/ept02/compose.js';
import { sdmProfile } from '../../../../src/nested/profile.js';
import { firstDifference, runConfigPair } from '../machine/harness.js';

const code = (src: string) => {
  const c = assemble(src, { bitness: 64, ip: L2Layout.CODE });
  if (!c.ok) throw new Error(c.error.message);
  return c.bytes;
};

const base = defaultL0Parts(sdmProfile());

interface Variant {
  readonly name: string;
  readonly parts: L0Parts;
  readonly config: L1Config;
}

const VARIANTS: readonly Variant[] = [
  {
    name: 'exception bitmap not merged (vmcs02 keeps vmcs01\'s)',
    parts: {
      ...base,
      merge: (v01, v12, l0, p) => {
        const r = base.merge(v01, v12, l0, p);
        r.vmcs02.set32(Field.EXCEPTION_BITMAP, l0.exceptionBitmap);
        return r;
      },
    },
    config: { l2: { mode: 'long64', code: code('ud2\n cpuid\n hlt') }, exceptionBitmap: 1 << 6, maxExits: 3, policy: { rules: [{ reason: 0, actions: [{ kind: 'skip' }] }] } },
  },
  {
    name: 'CR0 read shadow taken from vmcs12 as is (not what L2 would read)',
    parts: {
      ...base,
      merge: (v01, v12, l0, p) => {
        const r = base.merge(v01, v12, l0, p);
        if (l0.realEntry) r.vmcs02.set(Field.CR0_READ_SHADOW, v12.get(Field.CR0_READ_SHADOW));
        return r;
      },
    },
    config: { l2: { mode: 'long64', code: code('mov rax, cr0\n cpuid\n hlt') }, cr0Mask: 0x8n, cr0Shadow: 0x8n, maxExits: 2 },
  },
  {
    name: 'EPT02 rights from the union of EPT12 and EPT01',
    parts: {
      ...base,
      composeEpt02: (input) => {
        const out = composeEpt02(input);
        if (out.kind !== 'map') return out;
        const u = { read: out.leaf.perm12.read || out.leaf.perm01.read, write: out.leaf.perm12.write || out.leaf.perm01.write, execute: out.leaf.perm12.execute || out.leaf.perm01.execute, userExecute: true };
        return { ...out, leaf: { ...out.leaf, permissions: u } };
      },
    },
    config: {
      l2: { mode: 'long64', code: code('mov rax, [0x90000]\n mov qword [0x90000], 7\n cpuid\n hlt') },
      ept: { mappings: [{ l2: 0x90000n, l1: 0x0409_0000n, read: true, write: false, execute: false }] }, maxExits: 4,
    },
  },
  {
    name: 'INVEPT ignored',
    parts: { ...base, invept: () => 0 },
    config: {
      l2: { mode: 'long64', code: code('mov qword [0x90000], 1\n cpuid\n mov qword [0x90000], 2\n cpuid\n hlt') },
      ept: {}, maxExits: 5,
      policy: { rules: [{ reason: 10, from: 1, count: 1, actions: [{ kind: 'ept-protect', l2: 0x90000n, read: true, write: false, execute: true }, { kind: 'invept', type: 1 }, { kind: 'emulate' }] }] },
    },
  },
  {
    name: 'I/O bitmap ignored (only unconditional I/O exiting consulted)',
    parts: { ...base, ioExits: (v12) => (v12.lo(Field.CPU_BASED_VM_EXEC_CONTROL) & Primary.UNCONDITIONAL_IO_EXITING) !== 0 },
    config: { l2: { mode: 'long64', code: code('out 0x80, al\n cpuid\n hlt') }, ioBitmap: [0x80], maxExits: 3 },
  },
  {
    name: 'reflected exit without IDT-vectoring information',
    parts: { ...base, writeExitInfo: (v12, exit, pending, p) => base.writeExitInfo(v12, { ...exit, idtVectoringInfo: 0 }, pending, p) },
    config: {
      l2: { mode: 'long64', code: code('cpuid\n cpuid\n hlt'), rflags: 0x200n }, ept: {}, maxExits: 4,
      policy: { rules: [{ reason: 10, from: 1, count: 1, actions: [{ kind: 'ept-unmap', l2: L2Layout.IDT }, { kind: 'invept', type: 2 }, { kind: 'emulate' }, { kind: 'inject', vector: 0x30, type: 0 }] }] },
    },
  },
  {
    name: 'L1 host state not loaded from vmcs12',
    parts: { ...base, loadHostState: (_v12, cpu) => ({ kind: 'ok', state: cpu.clone(), undefinedParts: [] }) },
    config: { l2: { mode: 'long64', code: code('mov rbx, 5\n cpuid\n hlt') }, maxExits: 1 },
  },
  {
    name: 'PFEC mask/match ignored for #PF reflection',
    parts: { ...base, exceptionIntercepted: (v12, vector) => ((v12.lo(Field.EXCEPTION_BITMAP) >>> vector) & 1) === 1 },
    config: {
      l2: { mode: 'long64', code: code('mov rbx, 0x7fff0000000\n mov rax, [rbx]\n cpuid\n hlt') },
      exceptionBitmap: 0, pfecMask: 0x1, pfecMatch: 0x1, maxExits: 3,
    },
  },
];

describe('L0Parts', () => {
  it('the default parts are equivalent to the reference on every variant\'s scenario', () => {
    for (const v of VARIANTS) {
      const p = runConfigPair(v.config);
      expect(firstDifference(p.reference.log, p.nested.log), v.name).toBeUndefined();
    }
  });

  for (const v of VARIANTS) {
    it(`a wrong part is observable: ${v.name}`, () => {
      const p = runConfigPair(v.config, { parts: v.parts });
      expect(firstDifference(p.reference.log, p.nested.log)).toBeDefined();
    });
  }

  it('VPID: a new vpid12 flushes vpid02 at the nested entry; a part that never flushes shows in the records', () => {
    const config: L1Config = { l2: { mode: 'long64', code: code('l: cpuid\n jmp l') }, vpid: 3, maxExits: 3 };
    const good = runConfigPair(config).nested.records.ofKind('vpid-flush').filter((r) => r.cause.startsWith('vpid.'));
    expect(good[0]!.flush).toEqual({ kind: 'context', vpid: 2 });
    expect(good[0]!.cause).toBe('vpid.vpid02-new-vpid12');
    expect(good.slice(1).every((r) => r.cause === 'vpid.vpid02-same-vpid12' && r.flush.kind === 'none')).toBe(true);
    const bad = runConfigPair(config, { parts: { ...base, vpidOnEntry: (...a) => ({ ...base.vpidOnEntry(...a), flush: { kind: 'none' } }) } });
    expect(bad.nested.records.ofKind('vpid-flush').filter((r) => r.cause.startsWith('vpid.')).every((r) => r.flush.kind === 'none')).toBe(true);
  });
});
