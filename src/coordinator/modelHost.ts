/**
 * What the round engine needs from the model side of a job spec — the parameter layout, deterministic initial
 * parameters, and evaluation on the split `evaluation.split` names (the test set, or the validation examples held
 * out of the training set) — served by a worker thread (modelHostWorker.ts) so that tfjs never loads on the
 * coordinator's gRPC thread.
 */
import { Worker } from 'node:worker_threads';
import type { JobSpec } from '../config/jobSpec.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import { PublicError } from './grpcStatus.ts';
import type { ModelHost } from './jobRuntime.ts';
import { threadEntry } from '../packageRoot.ts';

export interface CoordinatorModelHost extends ModelHost {
  layout: ParameterLayout;
  /** The job's initial parameters (studentInit.ts: its teacher or its seed; a fresh copy each call). */
  initialParameters(): Float32Array;
  /** For a recursive student, a line saying where it started (teacher or seed). */
  startLine?: string;
  dispose(): Promise<void>;
}

type FromWorker =
  | { type: 'ready'; layout: ParameterLayout; params: Float32Array; line?: string }
  | { type: 'evaluated'; id: number; accuracy?: number; loss?: number; error?: string }
  | { type: 'failed'; error: string }
  /** The job cannot run as specified; `error` is written for the submitter. */
  | { type: 'refused'; error: string };

const BOOT = threadEntry('src/coordinator', 'modelHostWorker');

export async function buildModelHost(spec: JobSpec): Promise<CoordinatorModelHost> {
  const worker = new Worker(BOOT, { workerData: { spec } });
  const pending = new Map<
    number,
    { resolve(v: { accuracy: number; loss: number }): void; reject(e: Error): void }
  >();
  let nextId = 0;
  let failure: Error | undefined;
  const fail = (e: Error) => {
    failure = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  const ready = await new Promise<{ layout: ParameterLayout; params: Float32Array; line?: string }>(
    (resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') resolve(m);
        else if (m.type === 'refused') {
          const e = new PublicError(m.error);
          fail(e);
          reject(e);
          void worker.terminate();
        } else if (m.type === 'failed') {
          const e = new Error(`model host: ${m.error}`);
          fail(e);
          reject(e);
        } else {
          const p = pending.get(m.id);
          pending.delete(m.id);
          if (m.error !== undefined) p?.reject(new Error(`evaluation failed: ${m.error}`));
          else p?.resolve({ accuracy: m.accuracy!, loss: m.loss! });
        }
      });
      worker.on('error', (e) => {
        fail(e);
        reject(e);
      });
      worker.on('exit', (code) => {
        if (code !== 0) fail(new Error(`model host thread exited with code ${code}`));
      });
    },
  );
  return {
    layout: ready.layout,
    initialParameters: () => ready.params.slice(),
    ...(ready.line ? { startLine: ready.line } : {}),
    evaluate(params: Float32Array) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      const copy = params.slice();
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ type: 'evaluate', id, params: copy }, [copy.buffer]);
      });
    },
    async dispose() {
      await worker.terminate();
    },
  };
}
