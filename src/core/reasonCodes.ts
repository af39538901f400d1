/**
 * Why a worker's gradient did not count (fully) in a round, as a closed set of codes: the aggregation rules and
 * the round engine attach one to every excluded or missing worker, the round report carries it next to the
 * human text (wire enum phalanx.v1.Reason), and metrics count flags by it. Codes are stable identifiers; the text
 * beside them may say more (which rule, which numbers).
 */

/** Every code with what it means, in wire order (the wire enum value is the index + 1; 0 is "no reason"). */
export const REASON_CODES = {
  'non-finite': 'the vector holds NaN or ±Inf',
  'wrong-length': 'the vector has the wrong number of elements',
  'zero-vector': 'the vector is all zeros',
  'not-selected': 'a selection rule (Krum, Multi-Krum, Bulyan, MDA, MoNNA) left the worker out',
  'coordinates-unused': 'a coordinate-wise rule used none of its values',
  'zero-weight': 'the rule gave the worker zero weight',
  'against-robust-direction': "Flag's sign test: the worker points against the robust direction",
  'low-trust': "Flag's reconstruction ratio is below minTrust",
  rejected: 'the push was refused at the wire (bad shape, non-finite, bad plan)',
  late: 'no push before the round closed',
  left: 'the worker left the job or its heartbeat expired',
  absent: 'the worker delivered nothing this round',
  'round-skipped': 'the round was skipped (no quorum, rule precondition, compute deadline)',
} as const;

export type ReasonCode = keyof typeof REASON_CODES;

export const REASON_CODE_LIST = Object.keys(REASON_CODES) as ReasonCode[];

/** The wire name of a code: 'against-robust-direction' → 'REASON_AGAINST_ROBUST_DIRECTION'. */
export function reasonWireName(code: ReasonCode | undefined): string {
  return code === undefined ? 'REASON_UNSPECIFIED' : `REASON_${code.toUpperCase().replace(/-/g, '_')}`;
}

/** The code of a wire name (undefined for REASON_UNSPECIFIED or a name this build does not know). */
export function reasonFromWire(name: string): ReasonCode | undefined {
  return REASON_CODE_LIST.find((c) => reasonWireName(c) === name);
}

/**
 * Flag's text for a worker it excluded, from the numbers its test compared and the worker's reported cosine to
 * the update (the `cosine` field of its record, so text and field agree).
 */
export function flagExclusionText(
  code: 'against-robust-direction' | 'low-trust',
  score: number,
  threshold: number,
  cosine: number,
  /** What set the threshold: signThreshold, or (signAxisThreshold) the combined test's axis cutoff. */
  option: 'signThreshold' | 'signAxisThreshold' = 'signThreshold',
): string {
  const test =
    option === 'signThreshold'
      ? `sign score ${score.toFixed(3)} < signThreshold ${threshold}`
      : `principal-axis score ${score.toFixed(3)} < axis cutoff ${Number(threshold.toFixed(3))}`;
  return code === 'against-robust-direction'
    ? `flag: points against the robust direction (${test}; cosine to the update ${cosine.toFixed(3)})`
    : `flag: reconstruction ratio ${score.toFixed(3)} below minTrust ${threshold} (cosine to the update ${cosine.toFixed(3)})`;
}
