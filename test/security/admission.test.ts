/**
 * Admission at SubmitJob against a real coordinator over loopback gRPC: specs that would freeze it, exhaust its
 * memory, write outside its data directory or probe its filesystem are refused with a precise status, and nothing
 * is queued (ListJobs is unchanged). Every request goes through `submit()`, the one place to add credentials.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { cpSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { startCoordinator, type RunningCoordinator } from '../../src/coordinator/server.ts';
import type { Job__Output } from '../../src/gen/phalanx/v1/Job.ts';

const BUNDLED = fileURLToPath(new URL('../../data/fashion-mnist-subset/', import.meta.url));

describe('security: admission at SubmitJob', function () {
  this.timeout(60_000);
  let tmp: string;
  let dataDir: string;
  let dataRoot: string;
  let outside: string;
  let coordinator: RunningCoordinator;
  let client: JobsClient;

  /** The single entry point of these tests into the Jobs service. */
  function submit(spec: unknown): Promise<Job__Output> {
    return client.submit(typeof spec === 'string' ? spec : JSON.stringify(spec));
  }

  async function jobIds(): Promise<string[]> {
    return (await client.list()).map((j) => `${j.id}:${j.state}`).sort();
  }

  /** Submits `spec`, expects `code`, checks nothing was queued; returns the status details. */
  async function refused(spec: unknown, code: grpc.status): Promise<string> {
    const before = await jobIds();
    let error: grpc.ServiceError | undefined;
    try {
      await submit(spec);
    } catch (e) {
      error = e as grpc.ServiceError;
    }
    expect(error, `accepted: ${JSON.stringify(spec)}`).to.not.equal(undefined);
    expect(grpc.status[error!.code], error!.details).to.equal(grpc.status[code]);
    expect(await jobIds(), 'ListJobs after a refused submit').to.deep.equal(before);
    // short, and no path of the coordinator's machine
    expect(error!.details)
      .to.not.include(tmp)
      .and.not.include(os.tmpdir())
      .and.not.match(/\n\s+at /);
    return error!.details;
  }

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'phalanx-admission-'));
    dataDir = path.join(tmp, 'coordinator');
    dataRoot = path.join(tmp, 'datasets');
    outside = path.join(tmp, 'outside');
    mkdirSync(path.join(dataDir, 'checkpoints'), { recursive: true });
    mkdirSync(path.join(dataRoot, 'empty'), { recursive: true });
    cpSync(BUNDLED, path.join(dataRoot, 'fmnist'), { recursive: true });
    cpSync(BUNDLED, path.join(outside, 'fmnist'), { recursive: true });
    symlinkSync(path.join(outside, 'fmnist'), path.join(dataRoot, 'link-out'));
    symlinkSync(outside, path.join(dataDir, 'checkpoints', 'escape'));
    coordinator = await startCoordinator({
      host: '127.0.0.1',
      port: 0,
      store: { kind: 'memory' },
      dataDir,
      dataRoots: [dataRoot],
    });
    client = new JobsClient(coordinator.address, { token: coordinator.adminToken });
  });

  after(async () => {
    client?.close();
    await coordinator?.shutdown();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('refuses rule options that would freeze the coordinator (unbounded iterations, zero tolerance)', async () => {
    const gm = await refused(
      { aggregation: { rule: 'geometricMedian', options: { maxIterations: 1e12, tolerance: 0 } } },
      grpc.status.INVALID_ARGUMENT,
    );
    expect(gm).to.include('aggregation.options.maxIterations: unknown option (known: compat, nu, T, tol)');
    expect(
      await refused(
        { aggregation: { rule: 'geometricMedian', options: { T: 1e12, tol: 0 } } },
        grpc.status.INVALID_ARGUMENT,
      ),
    ).to.include('aggregation.options.T: at most 10000');
    expect(
      await refused(
        { aggregation: { rule: 'flag', options: { maxIterations: 1e12, tolerance: 0 } } },
        grpc.status.INVALID_ARGUMENT,
      ),
    ).to.include('aggregation.options.maxIterations: at most 1000');
    expect(
      await refused(
        { aggregation: { rule: 'centeredClipping', options: { L: 1e9 } } },
        grpc.status.INVALID_ARGUMENT,
      ),
    ).to.include('aggregation.options.L: at most 100');
    expect(
      await refused({ aggregation: { rule: 'flag', pre: ['bucketing(s=0)'] } }, grpc.status.INVALID_ARGUMENT),
    ).to.include("aggregation.pre.0: bucketing: option 's': at least 1");
    expect(
      await refused(
        { simulate: { byzantine: { count: 1, attack: 'minmax', options: { tol: 0 } } } },
        grpc.status.INVALID_ARGUMENT,
      ),
    ).to.include('simulate.byzantine.options.tol: at least 1e-12');
  });

  it('refuses a rule whose precondition workers.max cannot meet', async () => {
    expect(
      await refused(
        { workers: { min: 3, max: 3 }, aggregation: { rule: 'krum', f: 1 } },
        grpc.status.INVALID_ARGUMENT,
      ),
    ).to.include('aggregation.f: krum needs n > 2f + 2 (n = workers.max = 3, f = 1)');
  });

  it('refuses a model that needs gigabytes, before building it', async () => {
    expect(await refused({ model: { kind: 'mlp', hidden: [1e9] } }, grpc.status.INVALID_ARGUMENT)).to.include(
      'model.hidden',
    );
    // every layer within bounds, but 4.3 billion parameters in all
    expect(
      await refused({ model: { kind: 'mlp', hidden: [65536, 65536] } }, grpc.status.INVALID_ARGUMENT),
    ).to.match(/model\.hidden: 4,347,\d{3},\d{3} parameters; at most 268,435,456/);
    // within the schema's bounds, but parameters × buffers exceed the 2 GiB default budget
    const big = await refused(
      { model: { kind: 'mlp', hidden: [65536, 2048] } },
      grpc.status.RESOURCE_EXHAUSTED,
    );
    expect(big).to.match(/over the budget of 2\.0 GiB/);
    // the same for many workers: one push buffer each
    expect(
      await refused({ model: { kind: 'cnn' }, workers: { max: 1024 } }, grpc.status.RESOURCE_EXHAUSTED),
    ).to.match(/workers\.max = 1024/);
  });

  it('refuses checkpoint directories outside its own: .., absolute paths, symbolic links', async () => {
    expect(await refused({ checkpoint: { dir: '../../x' } }, grpc.status.INVALID_ARGUMENT)).to.match(
      /checkpoint\.dir: must not contain '\.\.'/,
    );
    expect(
      await refused({ checkpoint: { dir: path.join(tmp, 'abs') } }, grpc.status.INVALID_ARGUMENT),
    ).to.match(/checkpoint\.dir: must be relative/);
    expect(await refused({ checkpoint: { dir: 'escape/a' } }, grpc.status.INVALID_ARGUMENT)).to.match(
      /checkpoint\.dir: leads out of the coordinator's checkpoint directory/,
    );
    expect(existsSync(path.join(tmp, 'abs'))).to.equal(false);
    expect(existsSync(path.join(dataDir, '..', '..', 'x'))).to.equal(false);
  });

  it('answers every data.path outside its data roots the same, whether or not it exists', async () => {
    const probes = [
      '/etc', // exists
      path.join(tmp, 'no-such-dir'), // does not exist
      path.join(outside, 'fmnist'), // a valid dataset, outside the roots
      '../outside/fmnist', // the same, relative
      'link-out', // inside a root, a symbolic link to it
      'empty', // inside a root, not a dataset
      'absent', // inside a root, absent
    ];
    const answers = new Set<string>();
    for (const p of probes) answers.add(await refused({ data: { path: p } }, grpc.status.INVALID_ARGUMENT));
    expect([...answers]).to.have.length(1);
    expect([...answers][0]).to.match(
      /data\.path: no Fashion-MNIST dataset by that name in the coordinator's data roots/,
    );
  });

  it('accepts a dataset inside a data root and a checkpoint sub-directory, and stores where they resolve', async () => {
    const before = (await client.list()).length;
    const job = await submit({
      name: 'admitted',
      data: { path: 'fmnist' },
      checkpoint: { dir: './runs/a' },
      rounds: 1,
    });
    try {
      const spec = JSON.parse(job.specJson) as { data: { path: string }; checkpoint: { dir: string } };
      expect(spec.checkpoint.dir).to.equal('runs/a');
      expect(spec.data.path).to.equal(realpathSync(path.join(dataRoot, 'fmnist')));
      expect((await client.list()).length).to.equal(before + 1);
    } finally {
      await client.cancel(job.id);
    }
  });
});
