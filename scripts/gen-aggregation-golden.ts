/**
 * Writes test/fixtures/aggregation-golden.json: the hash of every aggregation golden case
 * (test/unit/aggregation/goldenCases.ts) as computed by the current code, on the WebAssembly SIMD backend
 * (`cases`) and, where they differ, on the scalar backend (`scalar`: the kernels whose contract allows another
 * float64 summation order — the Gram matrix, squared norms — and what depends on them).
 *
 *   node --import tsx scripts/gen-aggregation-golden.ts
 *
 * Regenerate only for a change that is meant to move the numbers (a different rule definition or summation
 * order), in a commit of its own that says why; a refactoring must leave the file unchanged.
 */
import { writeFileSync } from 'node:fs';
import { setSimdKernels, simdKernelsActive } from '../src/core/aggregation/kernels/registry.ts';
import { computeGolden } from '../test/unit/aggregation/goldenCases.ts';

if (!simdKernelsActive()) {
  throw new Error(
    'the golden fixture records the WebAssembly SIMD kernels; this runtime has no WebAssembly SIMD',
  );
}
const cases = computeGolden();
const prev = setSimdKernels(false);
const scalarAll = computeGolden();
setSimdKernels(prev);
const scalar = Object.fromEntries(Object.entries(scalarAll).filter(([k, h]) => cases[k] !== h));
const file = new URL('../test/fixtures/aggregation-golden.json', import.meta.url);
writeFileSync(file, `${JSON.stringify({ cases, scalar }, null, 2)}\n`);
console.log(
  `wrote ${Object.keys(cases).length} cases (${Object.keys(scalar).length} differ on the scalar backend) to ${file.pathname}`,
);
