/**
 * Assembles the coordinator process: state store, job manager, the Coordinator and Jobs services, standard
 * grpc.health.v1 (NOT_SERVING until the store answers) and server reflection.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { packageDefinition, proto, SERVER_OPTIONS } from '../transport/protocol.ts';
import { acceptPreEncoded } from '../transport/preEncoded.ts';
import { createStateStore } from './state/index.ts';
import type { StateStore } from './state/stateStore.ts';
import { JobManager } from './jobManager.ts';
import { DEFAULT_DATA_DIR, DEFAULT_MEMORY_BUDGET_BYTES, SYSTEM_DATA_ROOT } from './admission.ts';
import { Sessions } from './sessions.ts';
import { coordinatorHandlers } from './coordinatorService.ts';
import { jobsHandlers } from './jobsService.ts';

export interface CoordinatorConfig {
  host: string;
  port: number;
  store: { kind: 'memory' } | { kind: 'redis'; url: string; keyPrefix?: string };
  /** The coordinator's own files (default .phalanx): checkpoints/ and datasets/ live below it. */
  dataDir?: string;
  /** Where job checkpoints go (default <dataDir>/checkpoints); a spec's checkpoint.dir is a sub-directory. */
  checkpointDir?: string;
  /** Directories a spec's data.path may point into (default <dataDir>/datasets and /usr/share/datasets). */
  dataRoots?: string[];
  /** Jobs whose parameters × buffers need more coordinator memory are refused (default 2 GiB). */
  memoryBudgetBytes?: number;
  /** Stable id of this coordinator (queue consumer name). */
  id?: string;
  heartbeatIntervalMs?: number;
  heartbeatTtlMs?: number;
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
  const store = createStateStore(config.store);
  const health = new HealthImplementation({
    '': 'NOT_SERVING',
    'phalanx.v1.Coordinator': 'NOT_SERVING',
    'phalanx.v1.Jobs': 'NOT_SERVING',
  });
  await store.connect();
  const dataDir = path.resolve(config.dataDir ?? DEFAULT_DATA_DIR);
  const manager = new JobManager(store, {
    consumerId: config.id ?? `coordinator-${randomBytes(4).toString('hex')}`,
    admission: {
      checkpointRoot: path.resolve(config.checkpointDir ?? path.join(dataDir, 'checkpoints')),
      dataRoots: (config.dataRoots ?? [path.join(dataDir, 'datasets'), SYSTEM_DATA_ROOT]).map((r) =>
        path.resolve(r),
      ),
      memoryBudgetBytes: config.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_BYTES,
    },
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
  for (const s of ['', 'phalanx.v1.Coordinator', 'phalanx.v1.Jobs']) health.setStatus(s, 'SERVING');
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
      for (const s of ['', 'phalanx.v1.Coordinator', 'phalanx.v1.Jobs']) health.setStatus(s, 'NOT_SERVING');
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
