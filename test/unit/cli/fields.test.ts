// `turtles fields --json` matches the reference table field for field; `turtles checks --json` lists the catalogue.
import { describe, expect, it } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../support/cli.js';
import { ENTRY_CHECKS } from '../../../src/cpu/generated/entry-checks.js';

const root = join(import.meta.dirname, '../../..');
const ref = JSON.parse(
  readFileSync(existsSync(join(root, '../shared/reference/vmcs-fields.json')) ? join(root, '../shared/reference/vmcs-fields.json') : join(root, 'test/fixtures/reference/vmcs-fields.json'), 'utf8'),
) as { name: string; encoding: string; width: string; type: string }[];

describe('turtles fields', () => {
  it('--json prints every reference row with the same name, encoding, width and type', async () => {
    const r = await runCli(['fields', '--json']);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; encoding: string; width: string; type: string; source: string }[];
    const byEnc = new Map(rows.map((x) => [x.encoding, x]));
    for (const f of ref) {
      const got = byEnc.get(f.encoding)!;
      expect({ name: got.name, encoding: got.encoding, width: got.width, type: got.type }).toEqual(f);
    }
    expect(rows.filter((x) => x.source === 'linux')).toHaveLength(ref.length);
    for (const x of rows) expect(x.encoding).toMatch(/^0x[0-9a-f]{8}$/);
  });

  it('prints a text table with a count', async () => {
    const r = await runCli(['fields']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('0x0000681e  natural  guest state     GUEST_RIP');
    expect(r.stdout).toMatch(/\d+ fields \(200 in Linux enum vmcs_field/);
  });
});

describe('turtles checks', () => {
  it('--json prints { id, sdm, stage, class, description } for every catalogue row, in order', async () => {
    const r = await runCli(['checks', '--json']);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { id: string; sdm: string; stage: string; class: string; description: string }[];
    expect(rows.map((x) => x.id)).toEqual(ENTRY_CHECKS.map((c) => c.id));
    for (const x of rows) {
      expect(x.sdm).toMatch(/^2[67]\./);
      expect(x.description.length).toBeGreaterThan(10);
    }
  });

  it('an unknown command is a usage error with exit code 2', async () => {
    const r = await runCli(['no-such-command']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command/);
  });
});
