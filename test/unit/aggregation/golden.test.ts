/**
 * Golden test: every rule and pre-aggregator gives, bit for bit, what the fixture recorded (update, trust,
 * weight, inclusion and reason of every worker; output vectors and mixing matrices of the pre-aggregators). See
 * goldenCases.ts for the cases and scripts/gen-aggregation-golden.ts for the fixture.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { simdKernelsActive } from '../../../src/core/aggregation/kernels/registry.ts';
import { computeGolden } from './goldenCases.ts';

describe('aggregation golden hashes', function () {
  this.timeout(120_000);

  it('every case matches the committed fixture bit for bit', () => {
    expect(simdKernelsActive(), 'the fixture records the WebAssembly SIMD kernels').to.equal(true);
    const url = new URL('../../fixtures/aggregation-golden.json', import.meta.url);
    const fixture = JSON.parse(readFileSync(url, 'utf8')) as { cases: Record<string, string> };
    const actual = computeGolden();
    expect(Object.keys(actual).sort(), 'case list').to.deep.equal(Object.keys(fixture.cases).sort());
    const changed = Object.keys(fixture.cases).filter((k) => actual[k] !== fixture.cases[k]);
    expect(changed, `${changed.length} case(s) changed`).to.deep.equal([]);
  });
});
