// Mutation testing of the oracle: every wrong L0 of variants.ts (one L0Parts member substituted, each a real kind of
// nested-hypervisor bug) must be caught — some oracle property must report an unexplained divergence for it within the
// property's usual budget. Properties run hint-first and stop at the first catch (no shrinking). The run ends with
// the line "N/M wrong L0 variants caught". Run alone with `npx vitest run test/mutants`.
import { afterAll, describe, expect, it } from 'vitest';
import { sdmProfile } from '../../src/nested/profile.js';
import { ORACLE_PROPERTIES, runOracleProperty, type OracleProperty } from '../support/arbitraries/oracle.js';
import { propertyParams } from '../support/property.js';
import { WRONG_L0S, type WrongL0 } from './variants.js';

interface Catch {
  readonly property: string;
  readonly message: string;
}

const caught = new Map<string, Catch>();

/** The properties in the order this variant tries them: its hints, then the others in catalogue order. */
function order(v: WrongL0): OracleProperty[] {
  const hinted = v.hint.map((id) => ORACLE_PROPERTIES.find((p) => p.id === id)!);
  return [...hinted, ...ORACLE_PROPERTIES.filter((p) => !hinted.includes(p))];
}

function hunt(v: WrongL0): Catch | undefined {
  for (const p of order(v)) {
    try {
      // The same seed and budget as the property tests; stop at the first failure instead of shrinking it.
      runOracleProperty(p, sdmProfile(), { ...propertyParams({ numRuns: p.numRuns }), endOnFailure: true }, v.parts);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      return { property: p.id, message };
    }
  }
  return undefined;
}

describe('wrong L0 variants are caught by the oracle properties', () => {
  it('there are at least 15 variants, each replacing one L0Parts member, with distinct ids', () => {
    expect(WRONG_L0S.length).toBeGreaterThanOrEqual(15);
    expect(new Set(WRONG_L0S.map((v) => v.id)).size).toBe(WRONG_L0S.length);
  });

  for (const v of WRONG_L0S) {
    it(`${v.id} (${v.member})`, () => {
      const c = hunt(v);
      if (c) caught.set(v.id, c);
      expect(c, `no oracle property caught the wrong L0 "${v.id}": ${v.bug}`).toBeDefined();
      // What caught it is an unexplained divergence report, not a coverage or harness problem.
      expect(c!.message).toMatch(/property failed/);
    });
  }

  afterAll(() => {
    const lines = WRONG_L0S.map((v) => {
      const c = caught.get(v.id);
      const rules = c ? [...new Set([...c.message.matchAll(/\[([a-z0-9.-]+)\] event/g)].map((m) => m[1]))].join(', ') : '';
      return `  ${c ? 'caught' : 'MISSED'} ${v.id} (${v.member})${c ? ` by ${c.property}: ${rules}` : ''}`;
    });
    process.stdout.write(`${lines.join('\n')}\n${caught.size}/${WRONG_L0S.length} wrong L0 variants caught\n`);
  });
});
