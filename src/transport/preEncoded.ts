/**
 * Messages serialised ahead of time. grpc-js serialises every message it writes; a parameter set that many
 * workers pull is the same bytes for each of them, so the coordinator encodes it once per version and writes the
 * bytes through a serializer that passes them on unchanged (and serialises anything else as usual).
 */
import type * as grpc from '@grpc/grpc-js';

const ENCODED = Symbol('phalanx.preEncoded');

interface Carrier {
  [ENCODED]: Buffer;
}

/** A message already serialised to `bytes`, to be written where a message of type T is expected. */
export function preEncoded<T>(bytes: Buffer): T {
  const carrier: Carrier = { [ENCODED]: bytes };
  return carrier as unknown as T;
}

function isCarrier(value: unknown): value is Carrier {
  return typeof value === 'object' && value !== null && ENCODED in value;
}

/** `service` with the responses of `methods` accepting {@link preEncoded} messages. */
export function acceptPreEncoded(
  service: grpc.ServiceDefinition,
  methods: readonly string[],
): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = { ...service };
  for (const name of methods) {
    const method = service[name];
    if (!method) throw new Error(`service has no method ${name}`);
    const serialize = method.responseSerialize;
    out[name] = {
      ...method,
      responseSerialize: (value: unknown) => (isCarrier(value) ? value[ENCODED] : serialize(value)),
    };
  }
  return out;
}
