/** Raw-Buffer service definition shared by the bare grpc-js baseline server and the benchmark client. */
import type * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer) => b;

export const bareService: grpc.ServiceDefinition = {
  upload: {
    path: '/bench.Bare/Upload',
    requestStream: true,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  download: {
    path: '/bench.Bare/Download',
    requestStream: false,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
