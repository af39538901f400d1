import { expect } from 'chai';
import { defaultWorkerName, WorkerNameError } from '../../../src/cli/workerName.ts';

describe('cli: default worker name from the launcher environment', () => {
  it('PHALANX_WORKER_NAME wins over RANK and the Job completion index', () => {
    const env = { PHALANX_WORKER_NAME: 'gpu-a', RANK: '3', JOB_COMPLETION_INDEX: '5' };
    expect(defaultWorkerName(env, 42)).to.equal('gpu-a');
  });

  it('RANK (torchrun, PyTorchJob) gives worker-<rank>, before the completion index', () => {
    expect(defaultWorkerName({ RANK: '3', JOB_COMPLETION_INDEX: '5' }, 42)).to.equal('worker-3');
  });

  it('a Kubernetes Indexed Job without RANK gives worker-<completion index>', () => {
    expect(defaultWorkerName({ JOB_COMPLETION_INDEX: '7' }, 42)).to.equal('worker-7');
  });

  it('with none of them, worker-<pid>', () => {
    expect(defaultWorkerName({}, 42)).to.equal('worker-42');
    expect(defaultWorkerName({ RANK: '' }, 42)).to.equal('worker-42');
  });

  it('refuses a rank that is not a non-negative integer, naming the variable', () => {
    expect(() => defaultWorkerName({ RANK: '-1' }, 1)).to.throw(WorkerNameError, /RANK must be/);
    expect(() => defaultWorkerName({ JOB_COMPLETION_INDEX: 'x' }, 1)).to.throw(
      WorkerNameError,
      /JOB_COMPLETION_INDEX must be/,
    );
  });

  it('refuses a rank at or above WORLD_SIZE, and a WORLD_SIZE below 1', () => {
    expect(defaultWorkerName({ RANK: '3', WORLD_SIZE: '4' }, 1)).to.equal('worker-3');
    expect(() => defaultWorkerName({ RANK: '4', WORLD_SIZE: '4' }, 1)).to.throw(
      WorkerNameError,
      /RANK=4 is not below WORLD_SIZE=4/,
    );
    expect(() => defaultWorkerName({ JOB_COMPLETION_INDEX: '9', WORLD_SIZE: '8' }, 1)).to.throw(
      WorkerNameError,
      /JOB_COMPLETION_INDEX=9/,
    );
    expect(() => defaultWorkerName({ WORLD_SIZE: '0' }, 1)).to.throw(WorkerNameError, /WORLD_SIZE/);
  });
});
