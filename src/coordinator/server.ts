/**
/**
 * Assembles the coordinator process: state store, job manager, the Coordinator, Jobs and Admin services,
 * standard grpc.health.v1 (SERVING while the store answers its periodic ping, NOT_SERVING before and while it
 * does not) and server reflection, over TLS or mutual TLS when configured. Every Jobs and Admin call and every
 * worker registration needs a credential (auth/).
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
  log?: (message: string) => void;
  /** TLS certificate and key; with `ca`, clients must present a certificate signed by it (mutual TLS). */
  tls?: TlsFiles;
  /** Serve every call without credentials (anyone is admin). Local experiments only. */
  insecureOpen?: boolean;
  /** Leader election among coordinators on one store (lease name, ttl, renew, poll); validated here. */
  lease?: LeaseConfigInput;
  /** The address workers and clients reach this coordinator at, named by standbys (default host:port). */
  advertise?: string;
}

export interface RunningCoordinator {
  address: string;
  port: number;
  manager: JobManager;
  store: StateStore;
  leadership: Leadership;
  /** Resolves once this coordinator holds the lease and runs jobs (at once for a single coordinator). */
  whenLeading(): Promise<void>;
  auth: CoordinatorAuth;
  /** The admin token and the file that holds it (mode 0600). */
  adminToken: string;
  adminTokenPath: string;
  shutdown(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  const log = config.log ?? (() => {});
  // Unexpected errors reach clients only as a ref; their full text goes to this log.
  if (config.log) setInternalErrorLog(config.log);
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
  );
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
      log(serving ? `state store answers again: SERVING` : `state store does not answer: NOT_SERVING`);
    },
  });
  storeHealth.start();
  log(
    `coordinator listening on ${config.host}:${port} (store: ${store.kind}, ` +
      `${transport.mutual ? 'mutual TLS' : transport.tls ? 'TLS' : 'plaintext'}; ` +
      `lease '${lease.name}' ttl ${lease.ttl}ms, renewed every ${lease.renew}ms, advertised as ${advertise})`,
  );
  log(`admin token ${admin.created ? 'created in' : 'read from'} ${admin.path}`);
  if (admin.looseMode) log(`WARNING: ${admin.path} is readable by other users: chmod 600 it`);
  if (config.insecureOpen) {
    log('WARNING: --insecure-open: anyone who reaches this port is admin and may register any worker name.');
    log('WARNING: --insecure-open is for local experiments only; never expose this coordinator.');
  }

  let closed = false;
  return {
    address: `${config.host}:${port}`,
    port,
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

/** A wildcard listen address says nothing to a client: name the host instead. */
function advertisedHost(host: string): string {
  return host === '0.0.0.0' || host === '::' || host === '' ? os.hostname() : host;
}

/** Why bindAsync failed, in words: a taken port is named as such (grpc-js buries EADDRINUSE in its message). */
function listenError(address: string, err: Error): StartupError {
  if (/EADDRINUSE/.test(err.message))
    return new StartupError(`cannot listen on ${address}: the port is in use (choose another --port)`);
  return new StartupError(`cannot listen on ${address}: ${err.message}`);
}
