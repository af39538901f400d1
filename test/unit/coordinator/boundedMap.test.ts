import { expect } from 'chai';
import { LruMap } from '../../../src/coordinator/boundedMap.ts';
import { Sessions } from '../../../src/coordinator/sessions.ts';
import { MemoryStateStore } from '../../../src/coordinator/state/memoryStore.ts';

describe('LruMap', () => {
  it('never holds more than its capacity and evicts the least recently used entry', () => {
    const m = new LruMap<string, number>(3);
    for (let i = 0; i < 100; i++) {
      m.set(`k${i}`, i);
      expect(m.size).to.be.at.most(3);
    }
    expect([m.has('k97'), m.has('k98'), m.has('k99'), m.has('k96')]).to.deep.equal([true, true, true, false]);
    // Reading k97 makes it the most recent, so k98 is the next to go.
    expect(m.get('k97')).to.equal(97);
    m.set('new', -1);
    expect([m.has('k97'), m.has('k98'), m.has('k99'), m.has('new')]).to.deep.equal([true, false, true, true]);
  });

  it('rejects a capacity that is not a positive integer', () => {
    expect(() => new LruMap(0)).to.throw(/capacity/);
  });
});

describe('Sessions cache', () => {
  it('stays bounded and still verifies evicted sessions from the store, never forged ones', async () => {
    const store = new MemoryStateStore();
    const sessions = new Sessions(store, 2);
    const issued = [];
    for (let i = 0; i < 5; i++) issued.push(await sessions.register(`worker-${i}`, {}));
    // Forged secrets for a known id, and unknown ids, are refused and do not enter the cache.
    for (const { identity } of issued)
      expect(await sessions.verify(`${identity.id}.forged`)).to.equal(undefined);
    expect(await sessions.verify('w-000000000000.x')).to.equal(undefined);
    for (const { identity, token } of issued)
      expect((await sessions.verify(token))?.name).to.equal(identity.name);
    expect((sessions as unknown as { cache: LruMap<string, unknown> }).cache.size).to.be.at.most(2);
  });

  it('revoke ends a session', async () => {
    const sessions = new Sessions(new MemoryStateStore(), 2);
    const { identity, token } = await sessions.register('worker-0', {});
    await sessions.revoke(identity.id);
    expect(await sessions.verify(token)).to.equal(undefined);
  });
});
