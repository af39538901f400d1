/**
 * The dataset a job's `data` section names, as train and evaluation splits: Fashion-MNIST images
 * (fashionMnist.ts) or the sequences of a text in the transformer's vocabulary (text.ts). Workers, the
 * coordinator's evaluation and `phalanx simulate` load through here.
 */
import type { JobSpec } from '../config/jobSpec.ts';
import { loadFashionMnist, type FashionMnist } from './fashionMnist.ts';
import { loadText, textDataset } from './text.ts';

export interface JobDataOptions {
  /** Overrides data.path (Fashion-MNIST directory) or data.source (text file). */
  path?: string;
  maxTrain?: number;
  maxTest?: number;
}

export async function loadJobData(spec: Pick<JobSpec, 'data' | 'model'>, options: JobDataOptions = {}): Promise<FashionMnist> {
  const { data, model } = spec;
  if (data.kind !== 'text') {
    return loadFashionMnist({ path: options.path ?? data.path, maxTrain: options.maxTrain, maxTest: options.maxTest });
  }
  if (model.kind !== 'transformer') throw new Error('text data needs model.kind transformer');
  const text = loadText({ source: options.path ?? data.source });
  return textDataset(text, model.vocab, data.seqLen ?? model.context, {
    maxTrain: options.maxTrain,
    maxTest: options.maxTest,
  });
}
