import { expect } from 'chai';
import { ConcurrencyLimiter } from '../../../src/coordinator/concurrencyLimiter.ts';

describe('ConcurrencyLimiter', () => {
  it('caps open calls per key and in total, and frees slots on release', () => {
    const limiter = new ConcurrencyLimiter(2, 3);
    const a1 = limiter.acquire('a');
    const a2 = limiter.acquire('a');
    expect(a1 && a2).to.be.a('function');
    expect(limiter.acquire('a'), 'third call of one key').to.equal(undefined);
    const b1 = limiter.acquire('b');
    expect(b1).to.be.a('function');
    expect(limiter.acquire('c'), 'total reached').to.equal(undefined);
    a1!();
    a1!(); // idempotent
    expect(limiter.count('a')).to.equal(1);
    expect(limiter.acquire('c')).to.be.a('function');
    expect(limiter.count()).to.equal(3);
  });

  it('forgets keys with no open call (the map stays bounded by open calls)', () => {
    const limiter = new ConcurrencyLimiter(1, 10);
    for (let i = 0; i < 1000; i++) limiter.acquire(`k${i % 7}`)?.();
    expect(limiter.keys).to.equal(0);
    expect(limiter.count()).to.equal(0);
  });
});
