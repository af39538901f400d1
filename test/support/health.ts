/** A grpc.health.v1 client (the standard health protocol the coordinator serves) for tests and benches. */
import * as grpc from '@grpc/grpc-js';
import { service } from 'grpc-health-check';

export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

const HealthClientCtor = grpc.makeGenericClientConstructor(
  service as unknown as grpc.ServiceDefinition,
  'grpc.health.v1.Health',
);

export class HealthClient {
  private readonly raw: grpc.Client & {
    Check(
      req: { service: string },
      options: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res?: { status: HealthStatus }) => void,
    ): void;
  };

  constructor(address: string) {
    this.raw = new HealthClientCtor(
      address,
      grpc.credentials.createInsecure(),
    ) as unknown as HealthClient['raw'];
  }

  check(serviceName = '', timeoutMs = 10_000): Promise<HealthStatus> {
    return new Promise((resolve, reject) =>
      this.raw.Check({ service: serviceName }, { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(err) : resolve(res!.status),
      ),
    );
  }

  close(): void {
    this.raw.close();
  }
}
