import { expect } from 'chai';
import { StoreHealthMonitor } from '../../../src/coordinator/storeHealth.ts';

/** A store whose ping answers true, false, throws, or never settles, as the test says. */
function fakeStore() {
  let mode: 'up' | 'down' | 'error' | 'hang' = 'up';
  return {
    set: (m: typeof mode) => (mode = m),
    store: {
      ping: (): Promise<boolean> =>
        mode === 'up'
          ? Promise.resolve(true)
          : mode === 'down'
            ? Promise.resolve(false)
            : mode === 'error'
              ? Promise.reject(new Error('connection reset'))
              : new Promise<boolean>(() => {}),
    },
  };
}

describe('StoreHealthMonitor', () => {
  it('publishes each change between answering and not answering once, including a ping that never returns', async () => {
    const fake = fakeStore();
    const changes: boolean[] = [];
    const monitor = new StoreHealthMonitor(fake.store, {
      intervalMs: 1000,
      timeoutMs: 20,
      onChange: (serving) => changes.push(serving),
    });
    expect(await monitor.check()).to.equal(true);
    fake.set('hang');
    expect(await monitor.check()).to.equal(false);
    expect(await monitor.check()).to.equal(false);
    fake.set('up');
    expect(await monitor.check()).to.equal(true);
    fake.set('error');
    expect(await monitor.check()).to.equal(false);
    fake.set('down');
    expect(await monitor.check()).to.equal(false);
    fake.set('up');
    expect(await monitor.check()).to.equal(true);
    expect(changes).to.deep.equal([false, true, false, true]);
    expect(monitor.isServing).to.equal(true);
  });

  it('probes on its own once started, and publishes nothing after stop', async () => {
    const fake = fakeStore();
    const changes: boolean[] = [];
    const monitor = new StoreHealthMonitor(fake.store, {
      intervalMs: 5,
      timeoutMs: 20,
      onChange: (serving) => changes.push(serving),
    });
    fake.set('down');
    monitor.start();
    while (changes.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(changes).to.deep.equal([false]);
    monitor.stop();
    fake.set('up');
    await new Promise((r) => setTimeout(r, 50));
    expect(changes).to.deep.equal([false]);
  });
});
