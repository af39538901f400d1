/** Byzantine attack suite (pure core, no I/O). See types.ts for the contract and registry.ts for the names. */
export * from './types.ts';
export { createAttack, listAttacks } from './registry.ts';
export { normalQuantile } from './normal.ts';
export { GradientHistory, estimateFromOwnHistory, meanInto, meanStdInto, type OwnEstimate } from './stats.ts';
export { createSignFlip, type SignFlipMode, type SignFlipOptions } from './signflip.ts';
export { createScaledReverse, type ReverseSource, type ScaledReverseOptions } from './scaledReverse.ts';
export { createGaussian, type GaussianOptions } from './gaussian.ts';
export { createUniform, type UniformOptions } from './uniform.ts';
export { createLabelFlip, flipLabels, type LabelFlipOptions } from './labelflip.ts';
export { alieZ, createAlie, meanPlusStd, type AlieOptions, type AlieZVariant } from './alie.ts';
export { createIpm, type IpmOptions } from './ipm.ts';
export { createMimic, type MimicOptions } from './mimic.ts';
export {
  shejwalkarAttack,
  type DeviationType,
  type ShejwalkarObjective,
  type ShejwalkarOptions,
  type ShejwalkarResult,
} from './shejwalkar.ts';
export { createMinMax, type MinMaxAttack, type MinMaxOptions } from './minmax.ts';
export { createMinSum, type MinSumAttack, type MinSumOptions } from './minsum.ts';
export { lineSearchMax, type LineSearchOptions } from './lineSearch.ts';
export { createOptimalIpm, type OptimalAttack } from './optimalIpm.ts';
export { createOptimalAlie } from './optimalAlie.ts';
export { createInf, type InfOptions } from './inf.ts';
export { createNan, type NanOptions } from './nan.ts';
export { createWrongSize, type WrongSizeOptions } from './wrongSize.ts';
export { createReplay, type ReplayOptions } from './replay.ts';
export { createCrash, type CrashOptions } from './crash.ts';
export { createStraggle, type StraggleOptions } from './straggle.ts';
