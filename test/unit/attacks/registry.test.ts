import { expect } from 'chai';
import { createAttack, listAttacks } from '../../../src/core/attacks/registry.ts';
import { AttackError } from '../../../src/core/attacks/types.ts';

describe('attacks: registry', () => {
  const expected = [
    'signflip',
    'scaledReverse',
    'gaussian',
    'uniform',
    'labelflip',
    'alie',
    'ipm',
    'mimic',
    'minmax',
    'minsum',
    'optimalAlie',
    'optimalIpm',
    'inf',
    'nan',
    'wrongSize',
    'replay',
    'crash',
    'straggle',
  ];

  it('lists every attack; each is built with default options and carries its name', () => {
    expect(listAttacks()).to.have.members(expected);
    for (const name of listAttacks()) expect(createAttack(name).name).to.equal(name);
  });

  it('throws on an unknown name, listing the valid ones', () => {
    expect(() => createAttack('krum-killer')).to.throw(
      AttackError,
      /unknown attack 'krum-killer'.*signflip.*straggle/,
    );
    expect(() => createAttack('toString')).to.throw(AttackError, /unknown attack/);
  });

  it('throws on unknown options, listing the valid ones', () => {
    expect(() => createAttack('alie', { sigma: 1 })).to.throw(
      AttackError,
      /unknown option 'sigma'.*tau, z, zVariant, ddof/,
    );
    expect(() => createAttack('inf', { foo: 1 })).to.throw(AttackError, /valid options: negative, fraction/);
  });

  it('throws on invalid option values', () => {
    expect(() => createAttack('ipm', { epsilon: '2' })).to.throw(
      AttackError,
      /'epsilon' must be a finite number/,
    );
    expect(() => createAttack('minmax', { devType: 'l2' })).to.throw(
      AttackError,
      /'std', 'unit_vec', 'sign'/,
    );
    expect(() => createAttack('minmax', { tol: 0 })).to.throw(AttackError, /> 0/);
    expect(() => createAttack('mimic', { epsilon: 1.5 })).to.throw(AttackError, /integer/);
    expect(() => createAttack('gaussian', { sigma: -1 })).to.throw(AttackError, /≥ 0/);
    expect(() => createAttack('replay', { freeze: 1 })).to.throw(AttackError, /boolean/);
    expect(() => createAttack('optimalIpm', { ratio: 0.5 })).to.throw(AttackError, /> 0.5/);
    expect(() => createAttack('inf', { fraction: 0 })).to.throw(AttackError);
  });

  it('returns independent instances (replay state is per instance)', () => {
    expect(createAttack('replay')).to.not.equal(createAttack('replay'));
  });
});
