/**
 * What a model reads, without tfjs: image sizes, classes, and how a batch's x buffer splits into examples. Kept
 * apart from model.ts so that code which only counts parameters or checks shapes (the coordinator's admission,
 * the CLI) does not load tfjs.
 */
export const IMAGE_SIDE = 28;
export const IMAGE_SIZE = IMAGE_SIDE * IMAGE_SIDE;
export const NUM_CLASSES = 10;

/**
 * How a model reads a Batch. 'image': `exampleSize` floats and one target per example. 'sequence': token
 * sequences of any length T ≤ the model's context, one target per token; T = x.length / examples (batches and
 * splits hold exactly their examples).
 */
export type ModelIo =
  { kind: 'image'; exampleSize: number; numClasses: number } | { kind: 'sequence'; numClasses: number };

export const IMAGE_IO: ModelIo = { kind: 'image', exampleSize: IMAGE_SIZE, numClasses: NUM_CLASSES };

/** Floats of x and targets per example for `count` examples whose x buffer holds `xLength` floats. */
export function exampleShape(
  io: ModelIo,
  xLength: number,
  count: number,
): { exampleSize: number; targets: number } {
  if (io.kind === 'image') return { exampleSize: io.exampleSize, targets: 1 };
  const t = xLength / count;
  if (!Number.isInteger(t) || t <= 0) {
    throw new Error(`sequence model: ${xLength} token ids do not split into ${count} equal sequences`);
  }
  return { exampleSize: t, targets: t };
}
