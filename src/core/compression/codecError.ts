/**
 * The one error a compressed-layer decoder may throw. `code` names the class of defect (stable, for status
 * mapping and tests); `message` says where and what, e.g. "topk: index 12 at entry 3 is not above 12".
 */
export type CodecErrorCode =
  | 'invalid-setting' // the plan's setting cannot apply to this layer (e.g. k > numel, powersgd on a vector)
  | 'wrong-length' // byte length differs from what the plan implies
  | 'too-large' // more bytes than the plan allows (also for chunked accumulation)
  | 'chunk-out-of-order' // a chunk does not start where the previous one ended
  | 'incomplete' // a layer's bytes were declared complete before the planned length arrived
  | 'varint-overlong' // a varint longer than 5 bytes, or not in its shortest form
  | 'varint-truncated' // the bytes end inside a varint
  | 'varint-overflow' // a varint above 2^32 - 1
  | 'index-not-increasing' // a delta of 0: index repeats
  | 'index-out-of-range' // index >= numel
  | 'non-finite' // NaN or ±Inf in values, scales or factors
  | 'negative-scale' // a quantisation scale below zero
  | 'nonzero-padding' // padding bits after the last code are not zero
  | 'code-out-of-range' // an integer factor code of −L − 1 (the codes are symmetric, [−L, L])
  | 'non-finite-output'; // finite factors whose product overflows float32

export class CodecError extends Error {
  readonly code: CodecErrorCode;
  constructor(code: CodecErrorCode, message: string) {
    super(message);
    this.name = 'CodecError';
    this.code = code;
  }
}
