/**
 * Runs on a worker thread: everything the coordinator needs from tfjs (parameter layout, initial parameters, test
 * evaluation). Keeping tfjs off the main thread keeps the gRPC thread's heap small — every V8 mark-compact that
 * grpc-js's per-message buffers trigger costs in proportion to that heap (bench:transport).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { JobSpec } from '../config/jobSpec.ts';
import { createTrainer } from '../models/trainer.ts';
import { loadFashionMnist } from '../data/fashionMnist.ts';

const { spec } = workerData as { spec: JobSpec };
const port = parentPort!;

async function main(): Promise<void> {
  const trainer = await createTrainer(spec.model);
  const data = await loadFashionMnist({ path: spec.data.path, maxTrain: 1, maxTest: spec.data.maxTest });
  const params = trainer.initialParameters(spec.seed);
  port.postMessage({ type: 'ready', layout: trainer.layout, params }, [params.buffer as ArrayBuffer]);
  port.on('message', (m: { type: 'evaluate'; id: number; params: Float32Array }) => {
    trainer.evaluate(m.params, data.test, spec.evaluation.limit).then(
      (r) => port.postMessage({ type: 'evaluated', id: m.id, accuracy: r.accuracy, loss: r.loss }),
      (e: unknown) => port.postMessage({ type: 'evaluated', id: m.id, error: (e as Error).message }),
    );
  });
}

main().catch((e: unknown) => port.postMessage({ type: 'failed', error: (e as Error).stack ?? String(e) }));
