import { expect } from 'chai';
import { MemoryStateStore } from '../../../src/coordinator/state/memoryStore.ts';

/** The memory store takes all its time from the injected clock, so expiry is exact and needs no waiting. */
describe('state: MemoryStateStore with an injected clock', () => {
  let now: number;
  let store: MemoryStateStore;
  beforeEach(() => {
    now = 1_000_000;
    store = new MemoryStateStore({ clock: () => now });
  });

  it('stamps transitions with the clock', async () => {
    await store.submitJob({
      id: 'j',
      name: 'j',
      spec: '{}',
      state: 'queued',
      createdAt: 1,
      updatedAt: 1,
      round: 0,
    });
    now += 500;
    expect((await store.transitionJob('j', 'start'))?.updatedAt).to.equal(1_000_500);
    now += 1;
    await store.setJobRound('j', 3);
    expect(await store.getJob('j')).to.include({ round: 3, updatedAt: 1_000_501 });
  });

  it('expires heartbeats, claims and leases exactly at their deadline', async () => {
    await store.putWorker({ id: 'w', name: 'w', sessionHash: 'h', capabilities: '{}', registeredAt: 0 });
    await store.touchWorker('w', 100);
    expect(await store.liveWorkers(now + 99)).to.deep.equal(['w']);
    expect(await store.liveWorkers(now + 100)).to.deep.equal([]);

    await store.submitJob({
      id: 'j',
      name: 'j',
      spec: '{}',
      state: 'queued',
      createdAt: 1,
      updatedAt: 1,
      round: 0,
    });
    expect(await store.claimQueuedJob('a', 50)).to.equal('j');
    now += 49;
    expect(await store.claimQueuedJob('b', 50)).to.equal(undefined);
    now += 1;
    expect(await store.claimQueuedJob('b', 50)).to.equal('j');

    expect(await store.acquireLease('l', 'a', 10)).to.equal(1);
    now += 9;
    expect(await store.acquireLease('l', 'b', 10)).to.equal(undefined);
    now += 1;
    expect(await store.renewLease('l', 'a', 10)).to.equal(false);
    expect(await store.acquireLease('l', 'b', 10)).to.equal(2);
  });

  it('returns copies, not its own records', async () => {
    await store.putWorker({ id: 'w', name: 'w', sessionHash: 'h', capabilities: '{}', registeredAt: 0 });
    const w = await store.getWorker('w');
    w!.name = 'changed';
    expect((await store.getWorker('w'))?.name).to.equal('w');
  });
});
