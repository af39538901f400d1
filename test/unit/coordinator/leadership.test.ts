import { expect } from 'chai';
import { performance } from 'node:perf_hooks';
import {
  Leadership,
  LeaseConfigError,
  NotLeaderError,
  parseLeaseConfig,
} from '../../../src/coordinator/leadership.ts';
import { MemoryStateStore } from '../../../src/coordinator/state/memoryStore.ts';

/** Two coordinators on one store; `pause(ms)` moves both clocks as if the processes had been stopped for ms. */
function cluster(config = { ttl: 300, renew: 50, poll: 20 }) {
  let skew = 0;
  const store = new MemoryStateStore({ clock: () => Date.now() + skew });
  const lease = parseLeaseConfig(config);
  const make = (owner: string) =>
    new Leadership(
      store,
      owner,
      lease,
      () => {},
      () => performance.now() + skew,
    );
  return { store, a: make('a at a:1'), b: make('b at b:1'), pause: (ms: number) => (skew += ms) };
}

const once = <T extends unknown[]>(l: Leadership, event: 'elected' | 'deposed') =>
  new Promise<T>((resolve) => l.once(event, (...args: unknown[]) => resolve(args as T)));

describe('Leadership', () => {
  const started: Leadership[] = [];
  afterEach(async () => {
    for (const l of started.splice(0)) await l.stop();
  });

  it('elects one leader; the other stands by and names it', async () => {
    const { a, b } = cluster();
    started.push(a, b);
    await a.start();
    await b.start();
    expect(a.leading).to.equal(true);
    expect(a.fence).to.equal(1);
    expect(b.leading).to.equal(false);
    expect(b.fence).to.equal(undefined);
    expect(b.describeLeader()).to.equal('a at a:1 (token 1)');
    expect(() => b.assertHolds(1)).to.throw(NotLeaderError);
  });

  it('a leader paused past its lease refuses its own writes on waking and steps down; the standby has a larger token', async () => {
    const { a, b, pause } = cluster();
    started.push(a, b);
    await a.start();
    await b.start();
    a.assertHolds(1); // holds while renewed
    const deposed = once<[number, string]>(a, 'deposed');
    const elected = once<[number]>(b, 'elected');
    pause(400); // both processes frozen longer than the ttl (300 ms)
    // On waking, before any renewal has run, A knows from the monotonic clock that its lease ran out.
    expect(() => a.assertHolds(1)).to.throw(NotLeaderError, /ran out/);
    expect((await deposed)[0]).to.equal(1);
    expect((await elected)[0]).to.equal(2);
    expect(a.leading).to.equal(false);
    expect(b.leading).to.equal(true);
  });

  it('a leader whose renewal is refused steps down, and the standby takes over once the lease is free', async () => {
    const { store, a, b } = cluster();
    started.push(a, b);
    await a.start();
    await b.start();
    const deposed = once<[number, string]>(a, 'deposed');
    // Listening before the intruder's lease can expire: on a loaded machine B may be elected before A's renewal.
    const elected = once<[number]>(b, 'elected');
    // Another owner took the lease (as after an expiry A did not notice).
    await store.releaseLease('coordinator', 'a at a:1');
    expect(await store.acquireLease('coordinator', 'intruder', 100)).to.equal(2);
    expect((await deposed)[1]).to.match(/another coordinator holds the lease/);
    // A stands by and polls too: stopped, it cannot win the race for the freed lease, so B is the one to take it.
    await a.stop();
    const [token] = await elected;
    expect(token).to.be.greaterThan(2);
    expect(() => a.assertHolds(1)).to.throw(NotLeaderError);
  });

  it('steps down when its lease runs out while a renewal hangs on an unreachable store', async () => {
    const store = new MemoryStateStore();
    let hang = false;
    const unreachable = new Proxy(store, {
      get(target, prop) {
        if (prop === 'renewLease' && hang) return () => new Promise(() => {}); // never answers
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const a = new Leadership(unreachable, 'a at a:1', parseLeaseConfig({ ttl: 300, renew: 50, poll: 20 }));
    started.push(a);
    await a.start();
    const deposed = once<[number, string]>(a, 'deposed');
    hang = true;
    const [token, reason] = await deposed;
    expect(token).to.equal(1);
    expect(reason).to.match(/ran out before a renewal succeeded/);
    expect(a.leading).to.equal(false);
  });

  it('validates its settings and names the field and the fix', () => {
    expect(parseLeaseConfig()).to.deep.equal({ name: 'coordinator', ttl: 5000, renew: 1000, poll: 500 });
    expect(parseLeaseConfig({ ttl: '2s', renew: '500ms', poll: 100 })).to.include({ ttl: 2000, renew: 500 });
    expect(() => parseLeaseConfig({ ttl: '1s', renew: '800ms' })).to.throw(
      LeaseConfigError,
      /^lease\.renew: must be between 10ms and half of ttl \(1000ms\).*lower renew or raise ttl$/,
    );
    expect(() => parseLeaseConfig({ ttl: 'soon' }, (f) => `--lease-${f}`)).to.throw(
      LeaseConfigError,
      /^--lease-ttl: invalid duration 'soon'/,
    );
  });
});
