/**
 * The PullParameters stream of each running job: the current parameters as serialised ParameterChunk messages,
 * built once per (parameter version, encoding) and written unchanged to every worker that pulls them. Encodings
 * that have been asked for are rebuilt as soon as a new round opens, so pulls stream without encoding work.
 */
import type { ParameterChunk } from '../gen/phalanx/v1/ParameterChunk.ts';
import { bytesPerElement, denseBytes, type DenseEncoding } from '../core/compression/denseCodec.ts';
import { wireEncoding } from '../transport/wireVocabulary.ts';
import { CHUNK_BYTES, proto } from '../transport/protocol.ts';
import { preEncoded } from '../transport/preEncoded.ts';
import type { JobRuntime } from './jobRuntime.ts';

export interface ParameterStream {
  version: number;
  /** Serialised ParameterChunk messages, in order (write with {@link preEncoded}). */
  messages: Buffer[];
}

const serializeChunk = proto.phalanx.v1.Coordinator.service.PullParameters.responseSerialize as (
  chunk: ParameterChunk,
) => Buffer;

export class ParameterFeed {
  private readonly built = new WeakMap<JobRuntime, Map<DenseEncoding, ParameterStream>>();

  /** The current parameters of `rt` in `encoding`, building them if this version has not been built yet. */
  stream(rt: JobRuntime, encoding: DenseEncoding): ParameterStream {
    let perEncoding = this.built.get(rt);
    if (!perEncoding) {
      const map = new Map<DenseEncoding, ParameterStream>();
      perEncoding = map;
      this.built.set(rt, map);
      rt.on('round-open', () => {
        for (const [enc, built] of map) {
          if (rt.phase === 'running' && built.version !== rt.paramsVersion) this.build(rt, enc, map);
        }
      });
    }
    const cached = perEncoding.get(encoding);
    if (cached && cached.version === rt.paramsVersion) return cached;
    return this.build(rt, encoding, perEncoding);
  }

  /** Wraps a serialised chunk for `call.write`. */
  static message(bytes: Buffer): ParameterChunk {
    return preEncoded<ParameterChunk>(bytes);
  }

  private build(
    rt: JobRuntime,
    encoding: DenseEncoding,
    into: Map<DenseEncoding, ParameterStream>,
  ): ParameterStream {
    const params = rt.params;
    const width = bytesPerElement(encoding);
    const perChunk = Math.floor(CHUNK_BYTES / width);
    const count = Math.ceil(params.length / perChunk);
    const messages: Buffer[] = [];
    for (let i = 0, from = 0; from < params.length; i++, from += perChunk) {
      const n = Math.min(perChunk, params.length - from);
      messages.push(
        serializeChunk({
          jobId: rt.jobId,
          version: rt.paramsVersion,
          offset: from,
          totalElements: params.length,
          encoding: wireEncoding(encoding),
          data: denseBytes(params, from, n, encoding),
          chunkIndex: i,
          chunkCount: count,
          layoutFingerprint: rt.fingerprint,
        }),
      );
    }
    const built: ParameterStream = { version: rt.paramsVersion, messages };
    into.set(encoding, built);
    return built;
  }
}
