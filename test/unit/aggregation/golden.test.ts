/**
 * Golden test: every rule and pre-aggregator gives, bit for bit, what the fixture recorded (update, trust,
 * weight, inclusion and reason of every worker; output vectors and mixing matrices of the pre-aggregators), on
 * the WebAssembly SIMD backend and on the scalar backend. See goldenCases.ts for the cases and
 * scripts/gen-aggregation-golden.ts for the fixture.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { setSimdKernels, simdKernelsActive } from '../../../src/core/aggregation/kernels/registry.ts';
import { computeGolden } from './goldenCases.ts';

interface Fixture {
  /** Hashes on the WebAssembly SIMD backend. */
  cases: Record<string, string>;
  /** Hashes on the scalar backend, where they differ from `cases`. */
  scalar: Record<string, string>;
}

function loadFixture(): Fixture {
  const url = new URL('../../fixtures/aggregation-golden.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as Fixture;
}

function expectMatches(actual: Record<string, string>, expected: Record<string, string>): void {
  expect(Object.keys(actual).sort(), 'case list').to.deep.equal(Object.keys(expected).sort());
  const changed = Object.keys(expected).filter((k) => actual[k] !== expected[k]);
  expect(changed, `${changed.length} case(s) changed`).to.deep.equal([]);
}

describe('aggregation golden hashes', function () {
  this.timeout(120_000);

  it('WebAssembly SIMD backend: every case matches the committed fixture bit for bit', () => {
    expect(simdKernelsActive(), 'the fixture records the WebAssembly SIMD kernels').to.equal(true);
    expectMatches(computeGolden(), loadFixture().cases);
  });

  it('scalar backend: every case matches the committed fixture bit for bit', () => {
    const fixture = loadFixture();
    const prev = setSimdKernels(false);
    try {
      expectMatches(computeGolden(), { ...fixture.cases, ...fixture.scalar });
    } finally {
      setSimdKernels(prev);
    }
  });
});
