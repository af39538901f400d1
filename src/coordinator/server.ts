/**
 * Assembles the coordinator process: state store, job manager, the Coordinator, Jobs and Admin services,
 * standard grpc.health.v1 (SERVING while the store answers its periodic ping, NOT_SERVING before and while it
 * does not) and server reflection, over TLS or mutual TLS when configured. Every Jobs and Admin call and every
 * worker registration needs a credential (auth/). With `metrics`, a Prometheus endpoint on its own HTTP port
 * (http/metricsServer.ts) serves the job manager's round and job events as series (metrics/).
 *
 * Coordinators sharing a store elect one leader (leadership.ts): only it runs jobs and answers the Coordinator
 * and Jobs services; a standby answers them UNAVAILABLE (naming the leader) and reports them NOT_SERVING on
 * grpc.health.v1, so a Kubernetes Service with a readiness probe on them routes to the leader only.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
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
import { startDashboard, type RunningDashboard } from './http/dashboardServer.ts';
import { CoordinatorMetrics, type CoordinatorMetricsOptions } from './metrics/coordinatorMetrics.ts';
import { DEFAULT_METRICS_HOST, startMetricsServer } from './http/metricsServer.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';
import { Leadership, parseLeaseConfig, type LeaseConfigInput } from './leadership.ts';
import { leaderOnly } from './leaderGate.ts';

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
  /**
   * Also serve grpc.health.v1, and nothing else, in plaintext on this port (0: any free port): for probes that
   * cannot speak TLS, such as kubelet's native gRPC probes, while the main port uses TLS or mutual TLS.
   */
  healthPort?: number;
  /** Serve the web dashboard on this port (0 = any free port), on `host`; off when absent. */
  dashboardPort?: number;
  /** Serve Prometheus metrics over plain HTTP (off when absent); host defaults to 127.0.0.1, port 0 = any free. */
  metrics?: { host?: string; port: number } & CoordinatorMetricsOptions;
  /** Leader election among coordinators on one store (lease name, ttl, renew, poll); validated here. */
  lease?: LeaseConfigInput;
  /** The address workers and clients reach this coordinator at, named by standbys (default host:port). */
  advertise?: string;
}

export interface RunningCoordinator {
  address: string;
  port: number;
  /** The plaintext health-only port, when `healthPort` was given. */
  healthPort?: number;
  manager: JobManager;
  store: StateStore;
  leadership: Leadership;
  /** Resolves once this coordinator holds the lease and runs jobs (at once for a single coordinator). */
  whenLeading(): Promise<void>;
  auth: CoordinatorAuth;
  /** The admin token and the file that holds it (mode 0600). */
  adminToken: string;
  adminTokenPath: string;
  /** The dashboard's base URL when it is on (http://host:port or https://…). */
  dashboardUrl?: string;
  /** The Prometheus endpoint (http://host:port/metrics) when metrics are on. */
  metricsUrl?: string;
  shutdown(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  const logger = config.logger ?? silentLogger;
  const log = (message: string) => logger.info(message);
  // Unexpected errors reach clients only as a ref; their full text goes to this log.
  if (config.logger) setInternalErrorLog((message) => logger.error(message));
  // Read the TLS files first: a wrong path should fail before anything listens.
  const transport = serverCredentials(config.tls);
  const lease = parseLeaseConfig(config.lease);
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
  const id = config.id ?? `coordinator-${randomBytes(4).toString('hex')}`;
  const leaderGate = { assertLeading: () => manager.assertLeading() };
  const manager: JobManager = new JobManager(store, {
    consumerId: id,
    // Created once the port is bound (its owner names where the leader can be reached); read on start.
    get leadership() {
      return leadership;
    },
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
  // Metrics listen first: a taken metrics port fails the start before the gRPC port is bound.
  const metrics = config.metrics ? new CoordinatorMetrics(config.metrics) : undefined;
  const metricsServer =
    metrics &&
    (await startMetricsServer(metrics, {
      host: config.metrics!.host ?? DEFAULT_METRICS_HOST,
      port: config.metrics!.port,
    }));
  if (metrics) {
    manager.on('round', (report) => metrics.observeRound(report));
    manager.on('job', (job) => metrics.observeJob(job));
  }
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(
    // PullParameters writes chunks serialised once per parameter version (ParameterFeed).
    acceptPreEncoded(proto.phalanx.v1.Coordinator.service, ['PullParameters']),
    leaderOnly(
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
      leaderGate,
    ),
  );
  server.addService(proto.phalanx.v1.Jobs.service, leaderOnly(jobsHandlers(manager, auth), leaderGate));
  server.addService(proto.phalanx.v1.Admin.service, adminHandlers(store, auth));
  health.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, transport.credentials, (err, p) =>
      err ? reject(listenError(`${config.host}:${config.port}`, err)) : resolve(p),
    ),
  ).catch(async (e: unknown) => {
    await metricsServer?.close();
    throw e;
  });
  // The health statuses are those of the main port: the same HealthImplementation serves both.
  let healthServer: grpc.Server | undefined;
  let healthPort: number | undefined;
  if (config.healthPort !== undefined) {
    healthServer = new grpc.Server();
    health.addToServer(healthServer);
    const address = `${config.host}:${config.healthPort}`;
    healthPort = await new Promise<number>((resolve, reject) =>
      healthServer!.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(listenError(address, err, '--health-port')) : resolve(p),
      ),
    ).catch(async (e: unknown) => {
      server.forceShutdown();
      await metricsServer?.close();
      await store.close();
      throw e;
    });
  }
  let dashboard: RunningDashboard | undefined;
  try {
    if (config.dashboardPort !== undefined)
      dashboard = await startDashboard(manager, auth, {
        host: config.host,
        port: config.dashboardPort,
        tls: config.tls,
        log,
      });
  } catch (e) {
    server.forceShutdown();
    healthServer?.forceShutdown();
    await metricsServer?.close();
    await store.close();
    throw e;
  }
  const advertise = config.advertise ?? `${advertisedHost(config.host)}:${port}`;
  const leadership = new Leadership(
    store,
    `${id}/${randomBytes(3).toString('hex')} at ${advertise}`,
    lease,
    log,
  );
  const SERVICES = ['', 'phalanx.v1.Coordinator', 'phalanx.v1.Jobs', 'phalanx.v1.Admin'];
  const LEADER_ONLY = new Set(['phalanx.v1.Coordinator', 'phalanx.v1.Jobs']);
  let storeServing = true;
  let leading = false;
  const publishHealth = () => {
    for (const s of SERVICES)
      health.setStatus(s, storeServing && (leading || !LEADER_ONLY.has(s)) ? 'SERVING' : 'NOT_SERVING');
  };
  leadership.on('elected', () => {
    leading = true;
    publishHealth();
  });
  leadership.on('deposed', () => {
    leading = false;
    publishHealth();
  });
  await manager.start();
  publishHealth();
  const storeHealth = new StoreHealthMonitor(store, {
    intervalMs: config.storeCheck?.intervalMs ?? 1000,
    timeoutMs: config.storeCheck?.timeoutMs ?? 1000,
    onChange: (serving) => {
      storeServing = serving;
      publishHealth();
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
  logger.info(
    `lease '${lease.name}': ttl ${lease.ttl}ms, renewed every ${lease.renew}ms; advertised as ${advertise}`,
    { lease: lease.name, ttlMs: lease.ttl, renewMs: lease.renew, advertise },
  );
  if (healthPort !== undefined)
    log(`health (grpc.health.v1 only, plaintext) on ${config.host}:${healthPort}`);
  log(`admin token ${admin.created ? 'created in' : 'read from'} ${admin.path}`);
  if (metricsServer) log(`metrics on ${metricsServer.url} (Prometheus text format, no credentials)`);
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
    healthPort,
    manager,
    store,
    auth,
    leadership,
    whenLeading: () =>
      manager.leading
        ? Promise.resolve()
        : new Promise<void>((resolve) => leadership.once('elected', () => resolve())),
    adminToken: admin.token,
    adminTokenPath: admin.path,
    ...(dashboard ? { dashboardUrl: dashboard.url } : {}),
    ...(metricsServer ? { metricsUrl: metricsServer.url } : {}),
    async shutdown() {
      if (closed) return;
      closed = true;
      storeHealth.stop();
      for (const s of SERVICES) health.setStatus(s, 'NOT_SERVING');
      await manager.stop();
      await dashboard?.close();
      await metricsServer?.close();
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
      healthServer?.forceShutdown();
      await store.close();
    },
  };
}

/** A wildcard listen address says nothing to a client: name the host instead. */
function advertisedHost(host: string): string {
  return host === '0.0.0.0' || host === '::' || host === '' ? os.hostname() : host;
}

/** Why bindAsync failed, in words: a taken port is named as such (grpc-js buries EADDRINUSE in its message). */
function listenError(address: string, err: Error, flag = '--port'): StartupError {
  if (/EADDRINUSE/.test(err.message))
    return new StartupError(`cannot listen on ${address}: the port is in use (choose another ${flag})`);
  return new StartupError(`cannot listen on ${address}: ${err.message}`);
}
