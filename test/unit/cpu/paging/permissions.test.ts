// Access rights and #PF error codes on hand-picked cases: U/S, R/W with CR0.WP, XD with NXE, SMEP, SMAP with
// RFLAGS.AC and implicit supervisor accesses, protection keys (AD, WD with WP), the I/D bit rule.
// SDM Vol. 3A 4.6 (access rights), 4.6.2 (protection keys), 4.7 (#PF error code).
import { describe, expect, it } from 'vitest';
import { Cr0, Cr4, Efer, Rflags } from '../../../../src/cpu/state.js';
import { accessFaultCode } from '../../../../src/cpu/paging/permissions.js';
import { PfErr, type LinearAccess, type LinearRights, type PagingControls, type PagingMode } from '../../../../src/cpu/paging/types.js';

const base: PagingControls = {
  cr0: Cr0.PE | Cr0.PG, cr3: 0n, cr4: Cr4.PAE, efer: Efer.LMA | Efer.LME | Efer.NXE, rflags: 2n, pkru: 0, maxPhysAddr: 46,
};
const rights = (r: Partial<LinearRights> = {}): LinearRights => ({ user: true, writable: true, executeDisable: false, protectionKey: 0, ...r });
const acc = (kind: LinearAccess['kind'], mode: LinearAccess['mode']): LinearAccess => ({ kind, mode });
const code = (r: LinearRights, a: LinearAccess, c: Partial<PagingControls> = {}, mode: PagingMode = '4level'): number =>
  accessFaultCode(r, a, mode, { ...base, ...c });

describe('access rights', () => {
  it('user accesses need U/S = 1 everywhere, writes R/W = 1; XD blocks fetches only with NXE', () => {
    expect(code(rights({ user: false }), acc('read', 'user'))).toBe(PfErr.P | PfErr.U);
    expect(code(rights({ writable: false }), acc('write', 'user'))).toBe(PfErr.P | PfErr.W | PfErr.U);
    expect(code(rights({ writable: false }), acc('rmw', 'user'))).toBe(PfErr.P | PfErr.W | PfErr.U);
    expect(code(rights({ executeDisable: true }), acc('fetch', 'user'))).toBe(PfErr.P | PfErr.U | PfErr.ID);
    expect(code(rights({ executeDisable: true }), acc('fetch', 'user'), { efer: Efer.LMA })).toBe(0);
    // 32-bit paging has no XD at all.
    expect(code(rights({ executeDisable: true }), acc('fetch', 'user'), { cr4: 0n, efer: Efer.NXE }, '32bit')).toBe(0);
  });

  it('supervisor writes to read-only pages fault only with CR0.WP', () => {
    expect(code(rights({ writable: false, user: false }), acc('write', 'supervisor'))).toBe(0);
    expect(code(rights({ writable: false, user: false }), acc('write', 'supervisor'), { cr0: base.cr0 | Cr0.WP })).toBe(PfErr.P | PfErr.W);
  });

  it('SMEP stops supervisor fetches from user pages; I/D is set with SMEP even without NXE', () => {
    const smep = { cr4: Cr4.PAE | Cr4.SMEP };
    expect(code(rights(), acc('fetch', 'supervisor'), smep)).toBe(PfErr.P | PfErr.ID);
    expect(code(rights({ user: false }), acc('fetch', 'supervisor'), smep)).toBe(0);
    expect(code(rights({ user: false, executeDisable: true }), acc('fetch', 'supervisor'), { cr4: 0n, efer: 0n }, '32bit')).toBe(0);
    expect(code(rights({ user: false }), acc('read', 'user'), { cr4: Cr4.SMEP, efer: 0n }, '32bit')).toBe(PfErr.P | PfErr.U);
    expect(code(rights(), acc('fetch', 'supervisor'), { cr4: Cr4.SMEP, efer: 0n }, '32bit')).toBe(PfErr.P | PfErr.ID);
  });

  it('SMAP stops supervisor data accesses to user pages unless RFLAGS.AC = 1 and the access is explicit', () => {
    const smap = { cr4: Cr4.PAE | Cr4.SMAP };
    expect(code(rights(), acc('read', 'supervisor'), smap)).toBe(PfErr.P);
    expect(code(rights(), acc('read', 'supervisor'), { ...smap, rflags: Rflags.AC })).toBe(0);
    expect(code(rights(), acc('read', 'implicit-supervisor'), { ...smap, rflags: Rflags.AC })).toBe(PfErr.P);
    expect(code(rights(), acc('write', 'implicit-supervisor'), smap)).toBe(PfErr.P | PfErr.W);
    // Implicit accesses are supervisor-mode: U/S = 0 in the error code even from CPL 3.
    expect(code(rights({ user: false }), acc('read', 'implicit-supervisor'), smap)).toBe(0);
    // With WP = 0, SMAP aside, supervisor writes to read-only user pages are allowed; with WP = 1 they are not.
    expect(code(rights({ writable: false }), acc('write', 'supervisor'), { rflags: Rflags.AC })).toBe(0);
    expect(code(rights({ writable: false }), acc('write', 'supervisor'), { cr0: base.cr0 | Cr0.WP })).toBe(PfErr.P | PfErr.W);
  });

  it('protection keys: AD blocks data accesses to user pages, WD blocks user writes and supervisor writes with WP', () => {
    const pke = { cr4: Cr4.PAE | Cr4.PKE };
    const key5 = rights({ protectionKey: 5 });
    const ad5 = { ...pke, pkru: 1 << 10 };
    const wd5 = { ...pke, pkru: 1 << 11 };
    expect(code(key5, acc('read', 'user'), ad5)).toBe(PfErr.P | PfErr.U | PfErr.PK);
    expect(code(key5, acc('read', 'supervisor'), ad5)).toBe(PfErr.P | PfErr.PK);
    expect(code(key5, acc('fetch', 'user'), ad5)).toBe(0);
    expect(code(rights({ protectionKey: 5, user: false }), acc('read', 'supervisor'), ad5)).toBe(0);
    expect(code(key5, acc('read', 'user'), wd5)).toBe(0);
    expect(code(key5, acc('write', 'user'), wd5)).toBe(PfErr.P | PfErr.W | PfErr.U | PfErr.PK);
    expect(code(key5, acc('write', 'supervisor'), wd5)).toBe(0);
    expect(code(key5, acc('write', 'supervisor'), { ...wd5, cr0: base.cr0 | Cr0.WP })).toBe(PfErr.P | PfErr.W | PfErr.PK);
    // PK is reported with an ordinary rights fault too.
    expect(code(rights({ protectionKey: 5, writable: false }), acc('write', 'user'), ad5)).toBe(PfErr.P | PfErr.W | PfErr.U | PfErr.PK);
    // Keys only exist in IA-32e paging with CR4.PKE.
    expect(code(key5, acc('read', 'user'), { pkru: 1 << 10 })).toBe(0);
    expect(code(key5, acc('read', 'user'), { ...ad5, efer: Efer.NXE }, 'pae')).toBe(0);
  });
});
