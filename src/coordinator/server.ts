/**
 * Assembles the coordinator process: state store, job manager, the Coordinator and Jobs services, standard
 * grpc.health.v1 (SERVING while the store answers its periodic ping, NOT_SERVING before and while it does not)
 * and server reflection.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { randomBytes } from 'node:crypto';
import { packageDefinition, proto, SERVER_OPTIONS } from '../transport/protocol.ts';
import { acceptPreEncoded } from '../transport/preEncoded.ts';
import { createStateStore } from './state/index.ts';
import type { StateStore } from './state/stateStore.ts';
import { JobManager } from './jobManager.ts';
import { Sessions } from './sessions.ts';
import { coordinatorHandlers } from './coordinatorService.ts';
import { jobsHandlers } from './jobsService.ts';
import { StoreHealthMonitor } from './storeHealth.ts';
import { setInternalErrorLog } from './grpcStatus.ts';

export interface CoordinatorConfig {
  host: string;
  port: number;
  store: { kind: 'memory' } | { kind: 'redis'; url: string; keyPrefix?: string };
  /** Overrides the checkpoint directory of every job. */
  checkpointDir?: string;
  /** Stable id of this coordinator (queue consumer name). */
  id?: string;
  heartbeatIntervalMs?: number;
  heartbeatTtlMs?: number;
  /** How often the store is pinged for the health status, and how long a ping may take (default 1 s, 1 s). */
  storeCheck?: { intervalMs?: number; timeoutMs?: number };
  log?: (message: string) => void;
}

export interface RunningCoordinator {
  address: string;
  port: number;
  manager: JobManager;
  store: StateStore;
  shutdown(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  const log = config.log ?? (() => {});
  // Unexpected errors reach clients only as a ref; their full text goes to this log.
  if (config.log) setInternalErrorLog(config.log);
  const store = createStateStore(config.store);
  const health = new HealthImplementation({
    '': 'NOT_SERVING',
    'phalanx.v1.Coordinator': 'NOT_SERVING',
    'phalanx.v1.Jobs': 'NOT_SERVING',
  });
  await store.connect();
  const manager = new JobManager(store, {
    consumerId: config.id ?? `coordinator-${randomBytes(4).toString('hex')}`,
    checkpointDir: config.checkpointDir,
    log,
  });
  const sessions = new Sessions(store);
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(
    // PullParameters writes chunks serialised once per parameter version (ParameterFeed).
    acceptPreEncoded(proto.phalanx.v1.Coordinator.service, ['PullParameters']),
    coordinatorHandlers(manager, sessions, {
      heartbeatIntervalMs: config.heartbeatIntervalMs ?? 1000,
      heartbeatTtlMs: config.heartbeatTtlMs ?? 6000,
      maxWaitMs: 30_000,
    }),
  );
  server.addService(proto.phalanx.v1.Jobs.service, jobsHandlers(manager));
  health.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(new Error(`cannot listen on ${config.host}:${config.port}: ${err.message}`)) : resolve(p),
    ),
  );
  await manager.start();
  const SERVICES = ['', 'phalanx.v1.Coordinator', 'phalanx.v1.Jobs'];
  for (const s of SERVICES) health.setStatus(s, 'SERVING');
  const storeHealth = new StoreHealthMonitor(store, {
    intervalMs: config.storeCheck?.intervalMs ?? 1000,
    timeoutMs: config.storeCheck?.timeoutMs ?? 1000,
    onChange: (serving) => {
      for (const s of SERVICES) health.setStatus(s, serving ? 'SERVING' : 'NOT_SERVING');
      log(serving ? `state store answers again: SERVING` : `state store does not answer: NOT_SERVING`);
    },
  });
  storeHealth.start();
  log(`coordinator listening on ${config.host}:${port} (store: ${store.kind})`);

  let closed = false;
  return {
    address: `${config.host}:${port}`,
    port,
    manager,
    store,
    async shutdown() {
      if (closed) return;
      closed = true;
      storeHealth.stop();
      for (const s of SERVICES) health.setStatus(s, 'NOT_SERVING');
      await manager.stop();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      await store.close();
    },
  };
}
