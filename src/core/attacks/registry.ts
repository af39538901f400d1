/**
 * Attack registry: `createAttack(name, options)` builds an attack by name; `listAttacks()` lists the names.
 * Unknown names and unknown or invalid options throw an `AttackError` listing the valid ones.
 */
import { createAlie } from './alie.ts';
import { createCrash } from './crash.ts';
import { createGaussian } from './gaussian.ts';
import { createInf } from './inf.ts';
import { createIpm } from './ipm.ts';
import { createLabelFlip } from './labelflip.ts';
import { createMimic } from './mimic.ts';
import { createMinMax } from './minmax.ts';
import { createMinSum } from './minsum.ts';
import { createNan } from './nan.ts';
import { createOptimalAlie } from './optimalAlie.ts';
import { createOptimalIpm } from './optimalIpm.ts';
import { createReplay } from './replay.ts';
import { createScaledReverse } from './scaledReverse.ts';
import { createSignFlip } from './signflip.ts';
import { createStraggle } from './straggle.ts';
import { AttackError, type Attack, type AttackFactory } from './types.ts';
import { createUniform } from './uniform.ts';
import { createWrongSize } from './wrongSize.ts';

const FACTORIES: Readonly<Record<string, AttackFactory>> = Object.freeze({
  signflip: createSignFlip,
  scaledReverse: createScaledReverse,
  gaussian: createGaussian,
  uniform: createUniform,
  labelflip: createLabelFlip,
  alie: createAlie,
  ipm: createIpm,
  mimic: createMimic,
  minmax: createMinMax,
  minsum: createMinSum,
  optimalAlie: createOptimalAlie,
  optimalIpm: createOptimalIpm,
  inf: createInf,
  nan: createNan,
  wrongSize: createWrongSize,
  replay: createReplay,
  crash: createCrash,
  straggle: createStraggle,
});

/** Names accepted by `createAttack`, in registry order. */
export function listAttacks(): string[] {
  return Object.keys(FACTORIES);
}

/** Builds the named attack. Throws `AttackError` for unknown names (listing the valid ones) or bad options. */
export function createAttack(name: string, options: Record<string, unknown> = {}): Attack {
  if (!Object.hasOwn(FACTORIES, name)) {
    throw new AttackError(`unknown attack '${name}'; valid attacks: ${listAttacks().join(', ')}`);
  }
  return FACTORIES[name](options);
}
