import { expect } from 'chai';
import { listPreAggregators, listRules } from '../../../src/core/aggregation/registry.ts';
import {
  checkAggregation,
  PRE_OPTION_SCHEMAS,
  RULE_OPTION_SCHEMAS,
} from '../../../src/core/aggregation/ruleOptionSchemas.ts';
import { ATTACK_OPTION_SCHEMAS, checkAttack } from '../../../src/core/attacks/attackOptionSchemas.ts';
import { listAttacks } from '../../../src/core/attacks/registry.ts';

describe('aggregation and attacks: option schemas owned by the registries', () => {
  it('every registered rule, pre-aggregator and attack has an option schema (and nothing else does)', () => {
    expect(Object.keys(RULE_OPTION_SCHEMAS).sort()).to.deep.equal(listRules().sort());
    expect(Object.keys(PRE_OPTION_SCHEMAS).sort()).to.deep.equal(listPreAggregators().sort());
    expect(Object.keys(ATTACK_OPTION_SCHEMAS).sort()).to.deep.equal(listAttacks().sort());
  });

  it('resolves aliases and case like the registry does', () => {
    expect(
      checkAggregation({ rule: 'GM', f: 0, pre: ['Clipping(c=1)'], options: { T: 5 } }, 4),
    ).to.deep.equal([]);
    expect(checkAggregation({ rule: 'nope', f: 0, pre: [], options: {} }, 4)[0].message).to.match(
      /^unknown rule 'nope' \(valid: mean, median/,
    );
  });

  it("flag's step option: the schema names the choices", () => {
    const check = (options: Record<string, unknown>) =>
      checkAggregation({ rule: 'flag', f: 1, pre: [], options }, 4);
    expect(check({ step: 'trusted-mean' })).to.deep.equal([]);
    expect(check({ step: 'projected-mean' })).to.deep.equal([]);
    expect(check({ step: 'mean' })[0].message).to.match(/'subspace', 'trusted-mean', 'projected-mean'/);
    expect(check({ step: 'trusted-mean', rescale: 'none' })).to.deep.equal([]);
  });

  it('attack issues name the option; unknown attacks list the valid ones', () => {
    expect(checkAttack('alie', { tau: 1, z: 1 })).to.deep.equal([
      { path: ['options', 'z'], message: "give 'tau' (μ + τσ) or 'z' (μ − zσ), not both" },
    ]);
    expect(checkAttack('replay', { lag: 1000 })).to.deep.equal([
      { path: ['options', 'lag'], message: 'at most 100' },
    ]);
    expect(checkAttack('nope', {})[0].message).to.match(/^unknown attack 'nope' \(valid: signflip/);
  });
});
