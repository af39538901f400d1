/** Worker liveness: heartbeat expiry drops participants; the last-seen map stays bounded. */
import { expect } from 'chai';
import { Liveness, type LivenessTarget } from '../../../src/coordinator/liveness.ts';
import { MemoryStateStore } from '../../../src/coordinator/state/memoryStore.ts';

function job(ids: string[], ttl: number): LivenessTarget & { left: string[] } {
  const left: string[] = [];
  const participants = new Set(ids);
  return {
    left,
    spec: { workers: { heartbeatTtl: ttl } },
    participantIds: () => [...participants],
    leave(id) {
      participants.delete(id);
      left.push(id);
    },
  };
}

describe('Liveness', () => {
  let now = 0;
  const clock = () => now;

  it('drops a participant whose heartbeats stopped for longer than the job TTL', async () => {
    now = 0;
    const liveness = new Liveness(new MemoryStateStore({ clock }), { clock });
    const rt = job(['a', 'b'], 1000);
    await liveness.heartbeat('a', 1000);
    await liveness.heartbeat('b', 1000);
    now = 900;
    await liveness.heartbeat('b', 1000);
    now = 1001;
    liveness.sweep([rt]);
    expect(rt.left).to.deep.equal(['a']);
    now = 1900;
    liveness.sweep([rt]);
    expect(rt.left).to.deep.equal(['a']);
  });

  it('forgets workers not seen for forgetAfterMs and evicts the least recently seen beyond maxTracked', async () => {
    now = 0;
    const liveness = new Liveness(new MemoryStateStore({ clock }), {
      clock,
      forgetAfterMs: 5000,
      maxTracked: 3,
    });
    for (const id of ['w1', 'w2', 'w3', 'w4']) await liveness.heartbeat(id, 1000);
    expect(liveness.tracked).to.equal(3);
    now = 4000;
    await liveness.heartbeat('w2', 1000);
    now = 6000;
    liveness.sweep([]);
    // w3 and w4 were last seen at 0 (> 5000 ms ago); w2 at 4000.
    expect(liveness.tracked).to.equal(1);
  });
});
