/**
 * Writes test/fixtures/aggregation-golden.json: the hash of every aggregation golden case
 * (test/unit/aggregation/goldenCases.ts) as computed by the current code.
 *
 *   node --import tsx scripts/gen-aggregation-golden.ts
 *
 * Regenerate only for a change that is meant to move the numbers (a different rule definition or summation
 * order), in a commit of its own that says why; a refactoring must leave the file unchanged.
 */
import { writeFileSync } from 'node:fs';
import { simdKernelsActive } from '../src/core/aggregation/kernels/registry.ts';
import { computeGolden } from '../test/unit/aggregation/goldenCases.ts';

if (!simdKernelsActive()) {
  throw new Error(
    'the golden fixture records the WebAssembly SIMD kernels; this runtime has no WebAssembly SIMD',
  );
}
const cases = computeGolden();
const file = new URL('../test/fixtures/aggregation-golden.json', import.meta.url);
writeFileSync(file, `${JSON.stringify({ backend: 'simd', cases }, null, 2)}\n`);
console.log(`wrote ${Object.keys(cases).length} cases to ${file.pathname}`);
