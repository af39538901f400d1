/**
/**
 * Assembles the coordinator process: state store, job manager, the Coordinator, Jobs and Admin services,
 * standard grpc.health.v1 (SERVING while the store answers its periodic ping, NOT_SERVING before and while it
 * does not) and server reflection, over TLS or mutual TLS when configured. Every Jobs and Admin call and every
 * worker registration needs a credential (auth/).
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
import { StoreHealthMonitor } from './storeHealth.ts';
import { setInternalErrorLog } from './grpcStatus.ts';
import { adminHandlers } from './adminService.ts';
import { CoordinatorAuth } from './auth/authenticator.ts';
import { ensureAdminToken } from './auth/tokens.ts';
import { serverCredentials, type TlsFiles } from '../transport/tls.ts';
import { StartupError } from './startupError.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';

export interface CoordinatorConfig {
  host: string;
  port: number;
  store: { kind: 'memory' } | { kind: 'redis'; url: string; keyPrefix?: string };
  /** The coordinator's own files (default .phalanx): admin.token, checkpoints/ and datasets/ live below it. */
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
  /** How often the store is pinged for the health status, and how long a ping may take (default 1 s, 1 s). */
  storeCheck?: { intervalMs?: number; timeoutMs?: number };
  /** Where the coordinator logs (default: nowhere). */
  logger?: Logger;
  /** TLS certificate and key; with `ca`, clients must present a certificate signed by it (mutual TLS). */
  tls?: TlsFiles;
  /** Serve every call without credentials (anyone is admin). Local experiments only. */
  insecureOpen?: boolean;
}

export interface RunningCoordinator {
  address: string;
  port: number;
  manager: JobManager;
  store: StateStore;
  auth: CoordinatorAuth;
  /** The admin token and the file that holds it (mode 0600). */
  adminToken: string;
  adminTokenPath: string;
  shutdown(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  const logger = config.logger ?? silentLogger;
  const log = (message: string) => logger.info(message);
  // Unexpected errors reach clients only as a ref; their full text goes to this log.
  if (config.logger) setInternalErrorLog((message) => logger.error(message));
  // Read the TLS files first: a wrong path should fail before anything listens.
  const transport = serverCredentials(config.tls);
  const store = createStateStore(config.store);
  const health = new HealthImplementation({
    '': 'NOT_SERVING',
    'phalanx.v1.Coordinator': 'NOT_SERVING',
    'phalanx.v1.Jobs': 'NOT_SERVING',
    'phalanx.v1.Admin': 'NOT_SERVING',
  });
  await store.connect();
  const dataDir = path.resolve(config.dataDir ?? DEFAULT_DATA_DIR);
  const admin = await ensureAdminToken(store, dataDir);
  const auth = new CoordinatorAuth(store, {
    mutualTls: transport.mutual,
    insecureOpen: Boolean(config.insecureOpen),
  });
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
    coordinatorHandlers(
      manager,
      sessions,
      {
        heartbeatIntervalMs: config.heartbeatIntervalMs ?? 1000,
        heartbeatTtlMs: config.heartbeatTtlMs ?? 6000,
        maxWaitMs: 30_000,
      },
      auth,
    ),
  );
  server.addService(proto.phalanx.v1.Jobs.service, jobsHandlers(manager, auth));
  server.addService(proto.phalanx.v1.Admin.service, adminHandlers(store, auth));
  health.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, transport.credentials, (err, p) =>
      err ? reject(listenError(`${config.host}:${config.port}`, err)) : resolve(p),
    ),
  );
  await manager.start();
  const SERVICES = ['', 'phalanx.v1.Coordinator', 'phalanx.v1.Jobs', 'phalanx.v1.Admin'];
  for (const s of SERVICES) health.setStatus(s, 'SERVING');
  const storeHealth = new StoreHealthMonitor(store, {
    intervalMs: config.storeCheck?.intervalMs ?? 1000,
    timeoutMs: config.storeCheck?.timeoutMs ?? 1000,
    onChange: (serving) => {
      for (const s of SERVICES) health.setStatus(s, serving ? 'SERVING' : 'NOT_SERVING');
      if (serving) logger.info('state store answers again: SERVING', { store: store.kind });
      else logger.warn('state store does not answer: NOT_SERVING', { store: store.kind });
    },
  });
  storeHealth.start();
  const security = transport.mutual ? 'mutual TLS' : transport.tls ? 'TLS' : 'plaintext';
  logger.info(`coordinator listening on ${config.host}:${port} (store: ${store.kind}, ${security})`, {
    address: `${config.host}:${port}`,
    store: store.kind,
    security,
  });
  log(`admin token ${admin.created ? 'created in' : 'read from'} ${admin.path}`);
  if (admin.looseMode) logger.warn(`WARNING: ${admin.path} is readable by other users: chmod 600 it`);
  if (config.insecureOpen) {
    logger.warn(
      'WARNING: --insecure-open: anyone who reaches this port is admin and may register any worker name.',
    );
    logger.warn('WARNING: --insecure-open is for local experiments only; never expose this coordinator.');
  }

  let closed = false;
  return {
    address: `${config.host}:${port}`,
    port,
    manager,
    store,
    auth,
    adminToken: admin.token,
    adminTokenPath: admin.path,
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

/** Why bindAsync failed, in words: a taken port is named as such (grpc-js buries EADDRINUSE in its message). */
function listenError(address: string, err: Error): StartupError {
  if (/EADDRINUSE/.test(err.message))
    return new StartupError(`cannot listen on ${address}: the port is in use (choose another --port)`);
  return new StartupError(`cannot listen on ${address}: ${err.message}`);
}
