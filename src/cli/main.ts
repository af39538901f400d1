/**
 * The `phalanx` command. Flags > environment (PHALANX_*) > config file > defaults.
 * Exit codes (EXIT): 0 ok, 1 failure (a watched job that failed or was cancelled, a checkpoint missing or corrupt
 * included), 2 usage/invalid input (commander parse errors included), 3 not found, 4 the coordinator cannot be
 * reached or the connection to it was lost.
 */
import { Command, CommanderError, Option } from 'commander';
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  modelSchema,
  parseJobSpec,
  validateJobSpec,
  JobSpecError,
  type JobSpecInput,
} from '../config/jobSpec.ts';
import { DEFAULT_DATA_DIR, parseByteSize } from '../coordinator/admission.ts';
import { demoSpec, DEMO_ATTACK_OPTIONS } from './demoSpec.ts';
import { AdminClient, JobsClient } from './jobsClient.ts';
import {
  addClientAuthOptions,
  ClientAuthError,
  resolveClientAuth,
  type ClientAuthFlags,
} from './clientAuth.ts';
import { CertsError, createCertificates, parseClients } from './certs.ts';
import { TlsConfigError } from '../transport/tls.ts';
import { parseDuration } from '../config/duration.ts';
import { formatRound, ProgressPrinter } from './progress.ts';
import { formatStatus, jobListState } from './jobLines.ts';
import { WatchView } from './watchView.ts';
import type { Job__Output } from '../gen/phalanx/v1/Job.ts';
import type { RoundReport } from '../coordinator/roundReport.ts';
import type { BackendPreference } from '../worker/backendOrder.ts';
import { aggregateCommand } from './aggregateCommand.ts';
import { defaultWorkerName, WorkerNameError } from './workerName.ts';
import { exportCommand, importCommand, inspectCommand, listCommand } from './checkpointCommand.ts';
import { CheckpointError } from '../checkpoint/modelCheckpoint.ts';
import { TeacherReportError } from './teacherReportError.ts';
import { ShardingError } from '../data/sharding.ts';
import { StartupError } from '../coordinator/startupError.ts';
import { AggregationStalledError } from '../core/roundStep.ts';
import { DivergenceError } from '../core/round/divergenceGuard.ts';
import {
  DEFAULT_METRICS_HOST,
  MetricsListenSchema,
  type MetricsListen,
} from '../coordinator/http/metricsServer.ts';
import { REQUEST_ID_PATTERN } from '../coordinator/jobManager.ts';
import { isTerminal } from '../core/jobLifecycle.ts';
import type { JobState } from '../coordinator/state/stateStore.ts';
import { LeaseConfigError, parseLeaseConfig } from '../coordinator/leadership.ts';
import { checkAttack } from '../core/attacks/attackOptionSchemas.ts';
import { listAttacks } from '../core/attacks/registry.ts';
import { listPreAggregators, listRules } from '../core/aggregation/registry.ts';
import { LogConfigError } from '../logging/logger.ts';
import { addLogOptions, serviceLogger, type LogFlags } from './logOptions.ts';
import { BACKEND_ORDER } from '../worker/backendOrder.ts';
import { packagePath } from '../packageRoot.ts';

// tfjs-heavy modules load only for the commands that need them, so `phalanx coordinator` (whose gRPC thread
// must keep a small heap) and the job tools start without tfjs.
const loadWorker = () => import('../worker/workerProcess.ts');
const loadSimulation = async () => ({
  ...(await import('../simulation/simulate.ts')),
  ...(await import('../simulation/report.ts')),
});

const env = process.env;

// A reader that stops early (`phalanx jobs | head -1`) closes stdout: the rest of the output is not wanted, so
// the command ends quietly with 0 instead of dying on an unhandled EPIPE.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

// grpc-js logs a failed bind ("No address added …") itself; the CLI reports it as one line (StartupError), so
// that duplicate is dropped and every other grpc-js log line passes through as grpc-js would print it.
grpc.setLogger({
  error: (message: string, ...rest: unknown[]) => {
    if (!/^No address added out of total/.test(message)) console.error(`E ${message}`, ...rest);
  },
  info: (message: string, ...rest: unknown[]) => console.error(`I ${message}`, ...rest),
  debug: (message: string, ...rest: unknown[]) => console.error(`D ${message}`, ...rest),
});
const DEFAULT_ADDRESS = env['PHALANX_COORDINATOR'] ?? '127.0.0.1:7070';

function parseJsonOption(text: string | undefined, flag: string): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`${flag} must be a JSON object: ${(e as Error).message}`);
  }
}

class UsageError extends Error {}

/** The command's exit codes (documented in `phalanx --help` and the README). */
const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, coordinator: 4 } as const;

/** The coordinator at `address` went away while a command was following a job. */
class LostConnectionError extends Error {
  constructor(address: string, details: string) {
    super(
      `lost connection to the coordinator at ${address} (${details}); the job itself may still be running`,
    );
  }
}

// The valid names, from the registries, for the help of --rule, --pre and --attack/--byzantine.
const RULES_HELP = `one of ${listRules().join(', ')}`;
const PRE_HELP = `from ${listPreAggregators().join(', ')}`;
const ATTACKS_HELP = `one of ${listAttacks().join(', ')}`;

/** Fails with a usage error, before anything starts, on an unknown attack or options it does not take. */
function requireKnownAttack(flag: string, attack: string, options: Record<string, unknown>): void {
  const issues = checkAttack(attack, options);
  if (issues.length === 0) return;
  const where = (path: (string | number)[]) => (path[0] === 'options' ? '--attack-options' : flag);
  throw new UsageError(issues.map((i) => `${where(i.path)}: ${i.message}`).join('; '));
}

function byteSizeOption(text: string, flag: string): number {
  try {
    return parseByteSize(text);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

/** A TCP port flag: undefined when not given, else an integer in [0, 65535] (0 = any free port). */
function portOption(text: string | undefined, flag: string): number | undefined {
  if (text === undefined || text === '') return undefined;
  const port = Number(text);
  if (!/^\d+$/.test(text.trim()) || port > 65535)
    throw new UsageError(`${flag} must be a port number in [0, 65535] (got '${text}')`);
  return port;
}

/** --metrics-port / --metrics-host → where the metrics endpoint listens (undefined: metrics off). */
function metricsOption(port: string | undefined, host: string): MetricsListen | undefined {
  if (port === undefined || port === '') return undefined;
  const parsed = MetricsListenSchema.safeParse({ host, port: /^\d+$/.test(port) ? Number(port) : NaN });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const flag = issue.path[0] === 'host' ? '--metrics-host' : '--metrics-port';
    throw new UsageError(`${flag} '${issue.path[0] === 'host' ? host : port}': ${issue.message}`);
  }
  return parsed.data;
}

function storeConfig(opts: {
  store: string;
  redisUrl?: string;
  redisPrefix?: string;
}): { kind: 'memory' } | { kind: 'redis'; url: string; keyPrefix?: string } {
  if (opts.store === 'memory') return { kind: 'memory' };
  if (opts.store === 'redis') {
    return {
      kind: 'redis',
      url: opts.redisUrl ?? env['PHALANX_REDIS_URL'] ?? 'redis://127.0.0.1:6379',
      keyPrefix: opts.redisPrefix ?? env['PHALANX_REDIS_PREFIX'],
    };
  }
  throw new UsageError(`--store must be memory or redis (got '${opts.store}')`);
}

function loadSpecFile(file: string): JobSpecInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read job spec ${file}: ${(e as Error).message}`);
  }
  // Validate now for a clear error, but pass the raw input on so CLI overrides merge before defaults apply.
  parseJobSpec(text);
  return JSON.parse(JSON.stringify(parseJobSpec(text))) as JobSpecInput;
}

/** The version in the package's own package.json (the one `npm` installed or the checkout). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Every PHALANX_* variable the command reads, for `phalanx --help`. */
const ENVIRONMENT_HELP = `
Environment (a flag given on the command line wins over its variable):
  PHALANX_COORDINATOR        coordinator host:port for worker, submit, jobs, status, watch, cancel, token
                             (default 127.0.0.1:7070)
  PHALANX_HOST, PHALANX_PORT coordinator: listen address and port (--host, --port)
  PHALANX_HEALTH_PORT        coordinator: plaintext grpc.health.v1-only port (--health-port)
  PHALANX_STORE              coordinator, launch, demo: state store, memory or redis (--store)
  PHALANX_REDIS_URL          Redis URL with the redis store (--redis-url)
  PHALANX_REDIS_PREFIX       coordinator: key prefix in Redis (--redis-prefix)
  PHALANX_DATA_DIR           coordinator: its own files, admin.token for the clients (--data-dir);
                             checkpoint ls: <data dir>/checkpoints is the default DIR
  PHALANX_CHECKPOINT_DIR     coordinator: where checkpoints go (--checkpoint-dir); checkpoint ls: default DIR
  PHALANX_DATA_ROOTS         coordinator: data roots, separated by ':' (--data-root)
  PHALANX_MEMORY_BUDGET      coordinator: memory budget, e.g. 2GiB (--memory-budget)
  PHALANX_COORDINATOR_ID     coordinator: stable id (--id)
  PHALANX_LEASE_TTL, PHALANX_LEASE_RENEW, PHALANX_LEASE_POLL
                             coordinator: leader lease timing (--lease-ttl, --lease-renew, --lease-poll)
  PHALANX_ADVERTISE          coordinator: address standbys name as the leader's (--advertise)
  PHALANX_INSECURE_OPEN=1    coordinator: --insecure-open
  PHALANX_DASHBOARD_PORT     coordinator, launch, demo: web dashboard port (--dashboard-port)
  PHALANX_METRICS_PORT, PHALANX_METRICS_HOST
                             coordinator: Prometheus /metrics port and address (--metrics-port, --metrics-host)
  PHALANX_TLS_CERT, PHALANX_TLS_KEY, PHALANX_TLS_CA
                             TLS certificate, key and CA (--tls-cert, --tls-key, --tls-ca)
  PHALANX_TOKEN, PHALANX_TOKEN_FILE
                             access token, or a file holding it (--token, --token-file)
  PHALANX_WORKER_NAME        worker: its name (--name); else worker-$RANK, else worker-$JOB_COMPLETION_INDEX
                             (Kubernetes Indexed Job); RANK must be below WORLD_SIZE when that is set
  PHALANX_BACKEND            worker, simulate: tfjs backend (--backend)
  PHALANX_DATA               Fashion-MNIST directory when the spec gives no data.path
  PHALANX_TEXT               text file of text jobs when the spec gives no data.source
  PHALANX_LOG_FORMAT         coordinator, worker, launch/demo --verbose: json or pretty (--log-format;
                             default json unless the output is a terminal)
  PHALANX_LOG_LEVEL          coordinator, worker: debug, info, warn, error or silent (--log-level)
  PHALANX_DEBUG=1            coordinator, worker: --log-level debug (a worker then logs its
                             wait/pull/compute/push times every 10 rounds)
  PHALANX_TFJS_VERBOSE=1     keep tfjs's warnings

Exit codes:
  0  ok (watch, submit --watch: the job completed)
  1  failure (watch, submit --watch: the job failed or was cancelled; a checkpoint missing or corrupt)
  2  usage error or invalid input (unknown option, bad value, invalid job spec)
  3  not found (unknown job or token)
  4  the coordinator cannot be reached, or the connection to it was lost`;

const program = new Command();
program
  .name('phalanx')
  .description('Byzantine-robust distributed training coordinator')
  .version(packageVersion(), '-V, --version', "print phalanx's version")
  .showHelpAfterError()
  .addHelpText('after', ENVIRONMENT_HELP)
  // Commander's parse errors throw (inherited by every sub-command added below) so they exit 2, not 1.
  .exitOverride();

addLogOptions(program.command('coordinator').description('run the coordinator (gRPC parameter server)'))
  .option('--host <host>', 'listen address', env['PHALANX_HOST'] ?? '0.0.0.0')
  .option('--port <port>', 'listen port', env['PHALANX_PORT'] ?? '7070')
  .option(
    '--health-port <port>',
    'also serve grpc.health.v1 alone, in plaintext, on this port (for probes that cannot speak TLS)',
    env['PHALANX_HEALTH_PORT'],
  )
  .addOption(
    new Option('--store <kind>', 'state store')
      .choices(['memory', 'redis'])
      .default(env['PHALANX_STORE'] ?? 'memory'),
  )
  .option('--redis-url <url>', 'Redis URL (with --store redis)', env['PHALANX_REDIS_URL'])
  .option(
    '--redis-prefix <prefix>',
    'key prefix in Redis (several deployments in one Redis)',
    env['PHALANX_REDIS_PREFIX'],
  )
  .option(
    '--data-dir <dir>',
    "the coordinator's own files: admin.token (mode 0600), checkpoints/ and datasets/ below it",
    env['PHALANX_DATA_DIR'] ?? DEFAULT_DATA_DIR,
  )
  .option(
    '--checkpoint-dir <dir>',
    "where job checkpoints go (default <data-dir>/checkpoints); a spec's checkpoint.dir is a sub-directory",
    env['PHALANX_CHECKPOINT_DIR'],
  )
  .option(
    '--data-root <dir>',
    'a directory job specs may take data.path from (repeatable; default <data-dir>/datasets and /usr/share/datasets)',
    (dir: string, roots: string[] | undefined) => [...(roots ?? []), dir],
    env['PHALANX_DATA_ROOTS']?.split(path.delimiter).filter((r) => r !== ''),
  )
  .option(
    '--memory-budget <size>',
    'refuse jobs whose parameters × buffers need more coordinator memory (e.g. 2GiB, 512MiB)',
    env['PHALANX_MEMORY_BUDGET'] ?? '2GiB',
  )
  .option('--id <id>', 'stable coordinator id (queue consumer name)', env['PHALANX_COORDINATOR_ID'])
  .option('--heartbeat-ttl <ms>', 'worker session heartbeat TTL (ms)', '6000')
  .option(
    '--lease-ttl <duration>',
    'leader lease lifetime: how long a dead leader blocks its standby (e.g. 5s)',
    env['PHALANX_LEASE_TTL'] ?? '5s',
  )
  .option(
    '--lease-renew <duration>',
    'how often the leader renews its lease (at most half of --lease-ttl)',
    env['PHALANX_LEASE_RENEW'] ?? '1s',
  )
  .option(
    '--lease-poll <duration>',
    'how often a standby tries to take the lease',
    env['PHALANX_LEASE_POLL'] ?? '500ms',
  )
  .option(
    '--advertise <host:port>',
    'the address clients reach this coordinator at, named by standbys (default <host>:<port>)',
    env['PHALANX_ADVERTISE'],
  )
  .option('--tls-cert <file>', 'TLS certificate (PEM) of the coordinator', env['PHALANX_TLS_CERT'])
  .option('--tls-key <file>', 'its private key (PEM)', env['PHALANX_TLS_KEY'])
  .option(
    '--tls-ca <file>',
    'CA of client certificates: turns on mutual TLS (every client must present one)',
    env['PHALANX_TLS_CA'],
  )
  .option(
    '--dashboard-port <port>',
    'serve the web dashboard on this port (off unless set; 0 = any free port)',
    env['PHALANX_DASHBOARD_PORT'],
  )
  .option(
    '--insecure-open',
    'LOCAL EXPERIMENTS ONLY: no credentials at all, anyone who reaches the port is admin',
    env['PHALANX_INSECURE_OPEN'] === '1',
  )
  .option(
    '--metrics-port <port>',
    'serve Prometheus metrics at http://<metrics-host>:<port>/metrics (off unless given; 0 = any free port)',
    env['PHALANX_METRICS_PORT'],
  )
  .option(
    '--metrics-host <host>',
    'address of the metrics endpoint (plain HTTP, no credentials)',
    env['PHALANX_METRICS_HOST'] ?? DEFAULT_METRICS_HOST,
  )
  .action(
    async (
      opts: {
        host: string;
        port: string;
        healthPort?: string;
        store: string;
        redisUrl?: string;
        redisPrefix?: string;
        dataDir: string;
        checkpointDir?: string;
        dataRoot?: string[];
        memoryBudget: string;
        id?: string;
        heartbeatTtl: string;
        tlsCert?: string;
        tlsKey?: string;
        tlsCa?: string;
        insecureOpen: boolean;
        dashboardPort?: string;
        metricsPort?: string;
        metricsHost: string;
        leaseTtl: string;
        leaseRenew: string;
        leasePoll: string;
        advertise?: string;
      } & LogFlags,
    ) => {
      const metrics = metricsOption(opts.metricsPort, opts.metricsHost);
      const logger = serviceLogger('coordinator', opts, { timestamps: true });
      const lease = parseLeaseConfig(
        { ttl: opts.leaseTtl, renew: opts.leaseRenew, poll: opts.leasePoll },
        (field) => `--lease-${field}`,
      );
      const { startCoordinator } = await import('../coordinator/server.ts');
      const c = await startCoordinator({
        host: opts.host,
        port: portOption(opts.port, '--port') ?? 7070,
        healthPort: portOption(opts.healthPort, '--health-port'),
        store: storeConfig(opts),
        dataDir: opts.dataDir,
        checkpointDir: opts.checkpointDir,
        dataRoots: opts.dataRoot,
        memoryBudgetBytes: byteSizeOption(opts.memoryBudget, '--memory-budget'),
        id: opts.id,
        heartbeatTtlMs: positiveIntegerOption(opts.heartbeatTtl, '--heartbeat-ttl'),
        lease,
        advertise: opts.advertise,
        tls: { cert: opts.tlsCert, key: opts.tlsKey, ca: opts.tlsCa },
        insecureOpen: opts.insecureOpen,
        dashboardPort: portOption(opts.dashboardPort, '--dashboard-port'),
        ...(metrics ? { metrics } : {}),
        logger,
      });
      const stop = () => void c.shutdown().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
  );

addLogOptions(
  addClientAuthOptions(
    program
      .command('worker')
      .description(
        'run a worker that joins a job and trains on its shard (enrolls with --token, or its certificate under mutual TLS)',
      ),
  ),
)
  .option(
    '--coordinator <addresses>',
    'coordinator host:port, or a comma-separated list (leader and standbys: the worker follows the leader)',
    DEFAULT_ADDRESS,
  )
  .option(
    '--name <name>',
    'stable worker name (keeps its rank across restarts; default: $PHALANX_WORKER_NAME, else worker-$RANK, else worker-$JOB_COMPLETION_INDEX, else worker-<pid>)',
  )
  .option('--job <id>', 'job to join (default: the oldest running job)')
  .addOption(
    new Option('--backend <name>', 'tfjs backend')
      .choices(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'])
      .default(env['PHALANX_BACKEND'] ?? 'auto'),
  )
  .option(
    '--byzantine <attack>',
    `EVALUATION ONLY: behave as a Byzantine worker with this attack (labelled in reports): ${ATTACKS_HELP}`,
  )
  .option('--attack-options <json>', 'options of the attack as JSON')
  .option('--data <dir>', 'Fashion-MNIST directory (overrides the job spec)')
  .option('--once', 'exit when the first job ends (with --job the worker exits when that job ends anyway)')
  .option(
    '--connect-timeout <duration>',
    'exit 1 when the coordinator stays unreachable this long, e.g. 30s, 5m (default: keep retrying)',
  )
  .action(
    async (
      opts: {
        coordinator: string;
        name?: string;
        job?: string;
        backend: string;
        byzantine?: string;
        attackOptions?: string;
        data?: string;
        once?: boolean;
        connectTimeout?: string;
      } & ClientAuthFlags &
        LogFlags,
    ) => {
      if (!(['auto', ...BACKEND_ORDER] as string[]).includes(opts.backend))
        throw new UsageError(
          `--backend / PHALANX_BACKEND must be one of auto, ${BACKEND_ORDER.join(', ')} (got '${opts.backend}')`,
        );
      let connectTimeoutMs: number | undefined;
      if (opts.connectTimeout !== undefined) {
        try {
          connectTimeoutMs = parseDuration(opts.connectTimeout);
        } catch (e) {
          throw new UsageError(`--connect-timeout: ${(e as Error).message}`);
        }
      }
      const attackOptions = parseJsonOption(opts.attackOptions, '--attack-options') ?? {};
      if (opts.byzantine !== undefined) requireKnownAttack('--byzantine', opts.byzantine, attackOptions);
      const name = opts.name ?? defaultWorkerName(env, process.pid);
      const logger = serviceLogger('worker', opts);
      const auth = resolveClientAuth(opts);
      const controller = new AbortController();
      process.once('SIGTERM', () => controller.abort());
      process.once('SIGINT', () => controller.abort());
      const { runWorker, WorkerStopError } = await loadWorker();
      await runWorker({
        coordinator: opts.coordinator,
        name,
        jobId: opts.job,
        backend: opts.backend as BackendPreference,
        byzantine: opts.byzantine ? { attack: opts.byzantine, options: attackOptions } : undefined,
        dataPath: opts.data,
        once: Boolean(opts.once),
        connectTimeoutMs,
        signal: controller.signal,
        token: auth.token,
        credentials: auth.credentials,
        logger,
      }).catch((e: unknown) => {
        if (!(e instanceof WorkerStopError)) throw e;
        // The reason goes to the log (a collector sees it) and, for whoever started the worker, to stderr.
        if (logger.format === 'json') logger.error(e.message, { worker: name, exitCode: e.exitCode });
        console.error(`phalanx: worker ${name}: ${e.message}`);
        process.exit(e.exitCode);
      });
      process.exit(0);
    },
  );

function addLaunchOptions(cmd: Command, defaults: { workers: string; byzantine: string }): Command {
  return cmd
    .option('--config <job.yaml>', 'job spec file')
    .option('--workers <n>', 'worker processes', defaults.workers)
    .option('--byzantine <k>', 'how many of them are Byzantine (evaluation)', defaults.byzantine)
    .option('--attack <name>', `attack of the Byzantine workers: ${ATTACKS_HELP}`, 'signflip')
    .option('--attack-options <json>', 'attack options as JSON')
    .option('--rule <name>', `aggregation rule (overrides the spec): ${RULES_HELP}`)
    .option('--pre <list>', `pre-aggregators, comma-separated (overrides the spec), ${PRE_HELP}`)
    .option('--f <n>', 'declared Byzantine count f (overrides the spec)')
    .option('--rounds <n>', 'rounds (overrides the spec)')
    .option('--seed <n>', 'seed (overrides the spec)')
    .addOption(compressionOption())
    .addOption(
      new Option('--store <kind>', 'state store')
        .choices(['memory', 'redis'])
        .default(env['PHALANX_STORE'] ?? 'memory'),
    )
    .option('--redis-url <url>', 'Redis URL (with --store redis)', env['PHALANX_REDIS_URL'])
    .option('--port <port>', 'coordinator port (0 = any free port)', '0')
    .option(
      '--dashboard-port <port>',
      'serve the web dashboard on this port and print its URL (0 = any free port)',
      env['PHALANX_DASHBOARD_PORT'],
    )
    .option('--data-dir <dir>', "the coordinator's own files (checkpoints/ below it)", DEFAULT_DATA_DIR)
    .option('--checkpoint-dir <dir>', 'where checkpoints go (default <data-dir>/checkpoints)')
    .addOption(
      new Option('--backend <name>', 'tfjs backend for the workers').choices(['auto', ...BACKEND_ORDER]),
    )
    .option('--report <file>', 'write a JSON summary here')
    .option(
      '--metrics-port <port>',
      "serve the coordinator's Prometheus metrics on this port (0 = any free port; off unless given)",
      env['PHALANX_METRICS_PORT'],
    )
    .option(
      '--metrics-host <host>',
      'address of the metrics endpoint',
      env['PHALANX_METRICS_HOST'] ?? DEFAULT_METRICS_HOST,
    )
    .option('--tls', 'run over mutual TLS with certificates made for this run (else: enrollment tokens)')
    .option('-v, --verbose', 'show coordinator and worker logs on stderr');
}

/** `--compression none|uniform|lgreco`: overrides compression.kind (launch, demo, simulate). */
function compressionOption(): Option {
  return new Option('--compression <kind>', 'gradient compression (overrides compression.kind)').choices([
    'none',
    'uniform',
    'lgreco',
  ]);
}

/**
 * The spec's compression section with another kind: the fields the new kind reads are kept (encoding always,
 * the baseline under uniform, everything under lgreco), the others dropped.
 */
function withCompressionKind(
  c: JobSpecInput['compression'],
  kind: string | undefined,
): JobSpecInput['compression'] {
  if (kind === undefined) return c;
  const prev = (c ?? {}) as Record<string, unknown>;
  const keep =
    kind === 'none' ? ['encoding'] : kind === 'uniform' ? ['encoding', 'baseline'] : Object.keys(prev);
  return {
    ...Object.fromEntries(Object.entries(prev).filter(([k]) => keep.includes(k))),
    kind,
  } as JobSpecInput['compression'];
}

interface LaunchCliOptions {
  compression?: string;
  config?: string;
  workers: string;
  byzantine: string;
  attack: string;
  attackOptions?: string;
  rule?: string;
  pre?: string;
  f?: string;
  rounds?: string;
  seed?: string;
  store: string;
  redisUrl?: string;
  port: string;
  dashboardPort?: string;
  dataDir: string;
  checkpointDir?: string;
  backend?: string;
  report?: string;
  metricsPort?: string;
  metricsHost: string;
  tls?: boolean;
  verbose?: boolean;
}

async function runLaunch(base: JobSpecInput, opts: LaunchCliOptions): Promise<void> {
  const spec: JobSpecInput = {
    ...base,
    aggregation: { ...(base.aggregation ?? {}) },
    workers: { ...(base.workers ?? {}) },
  };
  const workers = Number(opts.workers);
  const byzantine = Number(opts.byzantine);
  if (!Number.isInteger(workers) || workers < 1) throw new UsageError('--workers must be a positive integer');
  if (!Number.isInteger(byzantine) || byzantine < 0 || byzantine > workers)
    throw new UsageError('--byzantine must be an integer in [0, workers]');
  if (opts.rule) spec.aggregation!.rule = opts.rule;
  if (opts.pre !== undefined)
    spec.aggregation!.pre = opts.pre ? opts.pre.split(',').map((s) => s.trim()) : [];
  if (opts.f !== undefined) spec.aggregation!.f = Number(opts.f);
  if (opts.rounds) spec.rounds = Number(opts.rounds);
  if (opts.seed) spec.seed = Number(opts.seed);
  if (opts.compression) spec.compression = withCompressionKind(spec.compression, opts.compression);
  spec.workers!.max = workers;
  spec.workers!.min = Math.min(spec.workers?.min ?? workers, workers);
  const attackOptions = parseJsonOption(opts.attackOptions, '--attack-options');
  requireKnownAttack('--attack', opts.attack, attackOptions ?? {});
  const metrics = metricsOption(opts.metricsPort, opts.metricsHost);
  const { launch } = await import('./launch.ts');
  const report = await launch({
    ...(metrics ? { metrics } : {}),
    spec,
    workers,
    byzantine,
    attack: opts.attack,
    attackOptions,
    store: storeConfig({ store: opts.store, redisUrl: opts.redisUrl }),
    port: portOption(opts.port, '--port') ?? 0,
    dashboardPort: portOption(opts.dashboardPort, '--dashboard-port'),
    dataDir: opts.dataDir,
    checkpointDir: opts.checkpointDir,
    report: opts.report,
    backend: opts.backend,
    tls: opts.tls,
    verbose: opts.verbose,
  });
  process.exit(report.state === 'completed' ? 0 : 1);
}

addLaunchOptions(
  program.command('launch').description('run a coordinator and N local worker processes for one job'),
  { workers: '4', byzantine: '0' },
).action(async (opts: LaunchCliOptions) => {
  await runLaunch(opts.config ? loadSpecFile(opts.config) : {}, opts);
});

addLaunchOptions(
  program
    .command('demo')
    .description(
      'Fashion-MNIST demo: 6 worker processes over gRPC, 2 of them Byzantine (sign flip), robust aggregation',
    ),
  { workers: '6', byzantine: '2' },
).action(async (opts: LaunchCliOptions) => {
  // The demo's sign flip sends −4·μ̂: strong enough that the plain mean turns into ascent (see demoSpec.ts).
  if (opts.attack === 'signflip' && opts.attackOptions === undefined)
    opts.attackOptions = JSON.stringify(DEMO_ATTACK_OPTIONS);
  await runLaunch(opts.config ? loadSpecFile(opts.config) : demoSpec(), opts);
});

interface SimulateCliOptions {
  compression?: string;
  config?: string;
  byzantine?: string;
  attack?: string;
  attackOptions?: string;
  rule?: string;
  pre?: string;
  f?: string;
  rounds?: string;
  seed?: string;
  backend: string;
  report?: string;
  output: string;
  verbose?: boolean;
}

program
  .command('simulate')
  .description(
    "EVALUATION: run a job in one process with n simulated workers (Byzantine ones from the spec's simulate section), no network",
  )
  .option('--config <job.yaml>', 'job spec file')
  .option('--byzantine <k>', 'Byzantine workers (overrides simulate.byzantine.count)')
  .option('--attack <name>', `their attack (overrides simulate.byzantine.attack): ${ATTACKS_HELP}`)
  .option('--attack-options <json>', 'attack options as JSON (overrides simulate.byzantine.options)')
  .option('--rule <name>', `aggregation rule (overrides the spec): ${RULES_HELP}`)
  .option('--pre <list>', `pre-aggregators, comma-separated (overrides the spec), ${PRE_HELP}`)
  .option('--f <n>', 'declared Byzantine count f (overrides the spec)')
  .option('--rounds <n>', 'rounds (overrides the spec)')
  .option('--seed <n>', 'seed (overrides the spec)')
  .addOption(compressionOption())
  .addOption(
    new Option('--backend <name>', 'tfjs backend')
      .choices(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'])
      .default(env['PHALANX_BACKEND'] ?? 'auto'),
  )
  .option('--report <file>', 'write the JSON report here')
  .addOption(
    new Option('-o, --output <format>', 'output format (json: the report on stdout, progress on stderr)')
      .choices(['table', 'json'])
      .default('table'),
  )
  .option('-v, --verbose', 'log backend, data and skipped rounds on stderr')
  .action(async (opts: SimulateCliOptions) => {
    const base: JobSpecInput = opts.config ? loadSpecFile(opts.config) : {};
    let byz = { count: 0, attack: 'signflip', options: {}, ...(base.simulate?.byzantine ?? {}) };
    if (opts.byzantine !== undefined) byz.count = Number(opts.byzantine);
    if (opts.attack && opts.attack !== byz.attack) byz = { ...byz, attack: opts.attack, options: {} }; // the spec's options were for its attack
    if (opts.attackOptions !== undefined)
      byz.options = parseJsonOption(opts.attackOptions, '--attack-options') ?? {};
    const input: JobSpecInput = {
      ...base,
      aggregation: { ...(base.aggregation ?? {}) },
      simulate: { byzantine: byz },
    };
    if (opts.rule) input.aggregation!.rule = opts.rule;
    if (opts.pre !== undefined)
      input.aggregation!.pre = opts.pre ? opts.pre.split(',').map((s) => s.trim()) : [];
    if (opts.f !== undefined) input.aggregation!.f = Number(opts.f);
    if (opts.rounds) input.rounds = Number(opts.rounds);
    if (opts.seed) input.seed = Number(opts.seed);
    if (opts.compression) input.compression = withCompressionKind(input.compression, opts.compression);
    const spec = validateJobSpec(input);
    const json = opts.output === 'json';
    const printer = json
      ? undefined
      : new ProgressPrinter(spec.rounds, (line) => console.log(line), spec.evaluation.split);
    const started = Date.now();
    let accuracy = NaN;
    const { simulate, simulationReport, formatSimulationSummary } = await loadSimulation();
    const result = await simulate(spec, {
      backend: opts.backend as BackendPreference,
      log: opts.verbose ? (m) => console.error(`[simulate] ${m}`) : undefined,
      onRound: (r) => {
        if (printer) return printer.round(r);
        if (!Number.isFinite(r.testAccuracy)) return;
        accuracy = r.testAccuracy;
        const elapsed = (Date.now() - started) / 1000;
        console.error(
          formatRound(r, {
            total: spec.rounds,
            accuracy,
            evalLoss: r.testLoss,
            split: spec.evaluation.split,
            rate: elapsed > 0 ? (r.round + 1) / elapsed : undefined,
          }),
        );
      },
    });
    printer?.done();
    const report = simulationReport(spec, result);
    if (opts.report) {
      mkdirSync(path.dirname(path.resolve(opts.report)), { recursive: true });
      writeFileSync(opts.report, `${JSON.stringify(report, null, 2)}\n`);
    }
    if (json) console.log(JSON.stringify(report, null, 2));
    else
      console.log(
        `${formatSimulationSummary(report)}${opts.report ? `\nreport written to ${opts.report}` : ''}`,
      );
  });

program
  .command('shards')
  .description(
    "what each worker of a job trains on: its shard's size and class mix, and the share of each class the simulated Byzantine ranks hold",
  )
  .requiredOption('--config <job.yaml>', 'job spec file')
  .option('--byzantine <k>', 'Byzantine ranks (overrides simulate.byzantine.count)')
  .option('--seed <n>', 'seed (overrides the spec)')
  .option('--json', 'print the summary as JSON')
  .action(async (opts: { config: string; byzantine?: string; seed?: string; json?: boolean }) => {
    const input = loadSpecFile(opts.config);
    // As in simulate: the job spec's schema checks both (its error names the field).
    if (opts.seed !== undefined) input.seed = Number(opts.seed);
    if (opts.byzantine !== undefined) {
      input.simulate = { byzantine: { ...(input.simulate?.byzantine ?? {}), count: Number(opts.byzantine) } };
    }
    const spec = validateJobSpec(input);
    const { shardsRefusal, jobShards, formatShards } = await import('./shardsCommand.ts');
    const refusal = shardsRefusal(spec);
    if (refusal) throw new UsageError(refusal);
    const summary = await jobShards(spec);
    if (opts.json) console.log(JSON.stringify(summary, null, 2));
    else for (const line of formatShards(spec, summary)) console.log(line);
  });

addClientAuthOptions(
  program.command('submit <jobFile>').description('submit a job spec (YAML or JSON) to a coordinator'),
)
  .option('--coordinator <address>', 'coordinator host:port', DEFAULT_ADDRESS)
  .option('--watch', 'follow the job until it ends (exit 1 if it fails or is cancelled)')
  .option(
    '--request-id <id>',
    'id of this submission (default: a new UUID); a submit repeated with the same id returns the job the first one created instead of a duplicate',
  )
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(
    async (
      file: string,
      opts: { coordinator: string; watch?: boolean; output: string; requestId?: string } & ClientAuthFlags,
    ) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
      }
      parseJobSpec(text); // fail fast locally with field-level errors
      const requestId = opts.requestId ?? randomUUID();
      if (!REQUEST_ID_PATTERN.test(requestId)) {
        throw new UsageError('--request-id must be 1–128 characters of A-Z a-z 0-9 . _ : - (a UUID fits)');
      }
      const client = new JobsClient(opts.coordinator, resolveClientAuth(opts));
      // Retried with the same request id when the answer is lost, so a retry never makes a second job.
      const job = await client.submit(text, { requestId });
      if (opts.output === 'json') console.log(JSON.stringify(job, null, 2));
      else console.log(`submitted ${job.id} (${job.state}, request id ${requestId})`);
      if (opts.watch) {
        const final = await watch(client, opts.coordinator, job.id, opts.output);
        client.close();
        if (final && final.state !== 'completed') process.exitCode = EXIT.failure;
        return;
      }
      client.close();
    },
  );

addClientAuthOptions(program.command('jobs').description('list the jobs this credential may see'))
  .option('--coordinator <address>', 'coordinator host:port', DEFAULT_ADDRESS)
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(async (opts: { coordinator: string; output: string } & ClientAuthFlags) => {
    const client = new JobsClient(opts.coordinator, resolveClientAuth(opts));
    const listed = await client.list();
    if (opts.output === 'json') {
      client.close();
      console.log(JSON.stringify(listed, null, 2));
      return;
    }
    // Running jobs only (few): their live detail says whether they wait for workers.min.
    const jobs = await Promise.all(
      listed.map((j) => (j.state === 'running' ? client.get(j.id).catch(() => j) : j)),
    );
    client.close();
    console.log(['ID'.padEnd(28), 'STATE'.padEnd(12), 'ROUND'.padStart(12), '  CREATED'].join(' '));
    for (const j of jobs) {
      console.log(
        [
          j.id.padEnd(28),
          jobListState(j).padEnd(12),
          `${j.round}/${j.totalRounds}`.padStart(12),
          ` ${new Date(j.createdAtMs).toISOString()}`,
        ].join(' '),
      );
    }
  });

addClientAuthOptions(
  program
    .command('status <jobId>')
    .description(
      'explain one job: phase, progress, workers against workers.min, accuracy, ETA, checkpoints, result',
    ),
)
  .option('--coordinator <address>', 'coordinator host:port', DEFAULT_ADDRESS)
  .option('--json', 'the raw Job message as JSON (same as -o json)')
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(
    async (id: string, opts: { coordinator: string; output: string; json?: boolean } & ClientAuthFlags) => {
      const client = new JobsClient(opts.coordinator, resolveClientAuth(opts));
      const job = await client.get(id);
      client.close();
      if (opts.json || opts.output === 'json') {
        console.log(JSON.stringify(job, null, 2));
        return;
      }
      for (const line of formatStatus(job)) console.log(line);
    },
  );

addClientAuthOptions(
  program
    .command('cancel <jobId>')
    .description('cancel a queued or running job (its workers see it end and exit)'),
)
  .option('--coordinator <address>', 'coordinator host:port', DEFAULT_ADDRESS)
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(async (id: string, opts: { coordinator: string; output: string } & ClientAuthFlags) => {
    const client = new JobsClient(opts.coordinator, resolveClientAuth(opts));
    const job = await client.cancel(id);
    client.close();
    if (opts.output === 'json') {
      console.log(JSON.stringify(job, null, 2));
      return;
    }
    // Cancelling a job that has already ended changes nothing: say so (its state is still printed).
    const note = job.state === 'cancelled' ? '' : ' (it had already ended: nothing to cancel)';
    console.log(`job ${job.id}: ${job.state} at round ${job.round}/${job.totalRounds}${note}`);
  });

addClientAuthOptions(
  program
    .command('watch <jobId>')
    .description(
      'follow a job: a line per round (loss, accuracy, who counted, who was excluded or missing and why), stalls as they happen',
    ),
)
  .option('--coordinator <address>', 'coordinator host:port', DEFAULT_ADDRESS)
  .option('--from <round>', 'first replay the stored rounds from this one (rounds count from 1, as shown)')
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(
    async (id: string, opts: { coordinator: string; output: string; from?: string } & ClientAuthFlags) => {
      let from: number | undefined;
      if (opts.from !== undefined) {
        from = Number(opts.from);
        if (!Number.isSafeInteger(from) || from < 1) {
          throw new UsageError(
            `--from must be a round number from 1 (as shown: round 1/N is the first), got '${opts.from}'`,
          );
        }
      }
      const client = new JobsClient(opts.coordinator, resolveClientAuth(opts));
      const final = await watch(client, opts.coordinator, id, opts.output, from);
      client.close();
      if (final && final.state !== 'completed') process.exitCode = EXIT.failure;
    },
  );

/** How often a watch checks whether its job has stalled. */
const STALL_CHECK_MS = 1000;

/**
 * Follow a job to its end: a header, a line per round (with why workers did not count), stall lines while
 * nothing arrives, and the final accuracy and losses. `from`: the first round to replay, counted from 1.
 * Resolves with the job as it ended (undefined if the stream ended without its final state).
 */
async function watch(
  client: JobsClient,
  address: string,
  id: string,
  output: string,
  from?: number,
): Promise<Job__Output | undefined> {
  const json = output === 'json';
  const print = (lines: string[]) => {
    for (const line of lines) console.log(line);
  };
  const view = new WatchView(Date.now);
  const lost = (e: unknown) => {
    const se = e as Partial<grpc.ServiceError>;
    // The CLI never cancels a call itself: CANCELLED, like UNAVAILABLE, means the coordinator went away.
    if (se.code === grpc.status.UNAVAILABLE || se.code === grpc.status.CANCELLED) {
      return new LostConnectionError(address, se.details ?? se.message ?? 'connection closed');
    }
    return e;
  };
  // The job as it is now, with what it waits for: an unknown job fails here at once (NOT_FOUND).
  const start = await client.get(id);
  if (!json) print(view.onJob(start));
  let final: Job__Output | undefined;
  let asking = false;
  const stallTimer = setInterval(() => {
    if (json || asking || !view.stallDue()) return;
    asking = true;
    client
      .get(id)
      .then((job) => print(view.stallLines(job)))
      .catch(() => {}) // the stream reports a lost coordinator
      .finally(() => (asking = false));
  }, STALL_CHECK_MS);
  try {
    await client.watch(id, from === undefined ? undefined : from - 1, (event) => {
      if (event.job && isTerminal(event.job.state as JobState)) final = event.job;
      if (json) {
        console.log(JSON.stringify(event));
        return;
      }
      if (event.job) print(view.onJob(event.job));
      else if (event.round) print(view.onRound(event.round as unknown as RoundReport));
    });
  } catch (e) {
    throw lost(e);
  } finally {
    clearInterval(stallTimer);
  }
  if (final && !json) print(view.finalLines(final));
  return final;
}

const token = program.command('token').description('access tokens (admin)');
addClientAuthOptions(
  token
    .command('create')
    .description(
      'issue an access token: worker (enrollment, --count identities), submitter, viewer or admin; prints the token',
    ),
)
  .requiredOption('--role <role>', 'admin | submitter | viewer | worker')
  .option('--job <id>', 'limit a worker or viewer token to this job')
  .option('--count <n>', 'worker tokens: how many distinct worker names it may enroll', '1')
  .option('--ttl <duration>', 'lifetime, e.g. 30m, 1h, 7d (enrollment window; sessions outlive it)', '24h')
  .option('--coordinator <address>', 'coordinator host:port', DEFAULT_ADDRESS)
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(
    async (
      opts: {
        role: string;
        job?: string;
        count: string;
        ttl: string;
        coordinator: string;
        output: string;
      } & ClientAuthFlags,
    ) => {
      const count = Number(opts.count);
      if (!Number.isInteger(count) || count < 1) throw new UsageError('--count must be a positive integer');
      let ttlMs: number;
      try {
        const days = /^\s*(\d+(?:\.\d+)?)\s*d\s*$/.exec(opts.ttl);
        ttlMs = days ? Math.round(Number(days[1]) * 86_400_000) : parseDuration(opts.ttl);
      } catch (e) {
        throw new UsageError(`--ttl: ${(e as Error).message.replace(/2m$/, '2m, 7d')}`);
      }
      const client = new AdminClient(opts.coordinator, resolveClientAuth(opts));
      const res = await client.createToken({ role: opts.role, jobId: opts.job, count, ttlMs });
      client.close();
      if (opts.output === 'json') {
        console.log(JSON.stringify(res, null, 2));
        return;
      }
      console.log(res.token);
      console.error(
        `phalanx: ${res.role} token ${res.tokenId}${res.jobId ? ` for job ${res.jobId}` : ''}` +
          `${res.role === 'worker' ? `, admits ${res.count} worker name(s)` : ''}` +
          `, expires ${new Date(Number(res.expiresAtMs)).toISOString()} (shown once: store it now)`,
      );
    },
  );

addClientAuthOptions(
  token
    .command('revoke <tokenId>')
    .description('revoke an access token at once (its id t-…, or the token itself)'),
)
  .option('--coordinator <address>', 'coordinator host:port', DEFAULT_ADDRESS)
  .action(async (tokenId: string, opts: { coordinator: string } & ClientAuthFlags) => {
    const id = tokenId.split('.')[0];
    const client = new AdminClient(opts.coordinator, resolveClientAuth(opts));
    await client.revokeToken(id);
    client.close();
    console.log(`phalanx: token ${id} revoked`);
  });

program
  .command('certs')
  .description('certificates for mutual TLS')
  .command('create')
  .description(
    'create a CA, a coordinator certificate, worker certificates and client certificates (openssl)',
  )
  .requiredOption('--out <dir>', 'directory for the PEM files (keys get mode 0600)')
  .option('--workers <n>', 'worker certificates worker-0 … worker-<n-1> (CN = name, OU = worker)', '0')
  .option(
    '--hosts <list>',
    "the coordinator's host names / IPs, comma-separated (localhost and 127.0.0.1 always)",
    '',
  )
  .option('--clients <list>', 'client certificates as name:role, comma-separated', 'admin:admin')
  .option('--days <n>', 'validity in days', '365')
  .action((opts: { out: string; workers: string; hosts: string; clients: string; days: string }) => {
    const files = createCertificates({
      out: opts.out,
      workers: Number(opts.workers),
      hosts: opts.hosts
        .split(',')
        .map((h) => h.trim())
        .filter(Boolean),
      clients: parseClients(opts.clients),
      days: Number(opts.days),
    });
    console.log(`phalanx: wrote ${files.length} files to ${path.resolve(opts.out)}`);
    for (const f of files) console.log(`  ${f}`);
  });

program
  .command('aggregate')
  .description(
    'run a robust aggregation rule on vectors from a JSON file (research tool and conformance check)',
  )
  .requiredOption('--rule <name>', `aggregation rule: ${RULES_HELP}`)
  .requiredOption('--input <file>', 'JSON: {"vectors": [[...], ...], "f": 2, "options": {...}}')
  .option('--f <n>', 'declared Byzantine count (overrides the file)')
  .option('--pre <list>', `pre-aggregators, comma-separated, ${PRE_HELP}`)
  .option('--options <json>', "rule options as JSON (merged over the file's)")
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(
    (opts: { rule: string; input: string; f?: string; pre?: string; options?: string; output: string }) => {
      aggregateCommand(opts);
    },
  );

const checkpoint = program
  .command('checkpoint')
  .description("checkpoints on disk: list, inspect, export (safetensors, our layout or PyTorch's)");

checkpoint
  .command('ls [dir]')
  .description(
    'list the checkpoints below DIR (default $PHALANX_CHECKPOINT_DIR, else <$PHALANX_DATA_DIR or .phalanx>/checkpoints)',
  )
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(async (dir: string | undefined, opts: { output: string }) => {
    const root =
      dir ??
      env['PHALANX_CHECKPOINT_DIR'] ??
      path.join(env['PHALANX_DATA_DIR'] ?? DEFAULT_DATA_DIR, 'checkpoints');
    await listCommand(root, opts.output === 'json');
  });

checkpoint
  .command('inspect <path>')
  .description(
    'config and tensors (name, shape, dtype, norm) of a checkpoint (its directory, config.json or model.safetensors; verified) or of a bare safetensors file',
  )
  .option('--json', 'print JSON')
  .action(async (target: string, opts: { json?: boolean }) => {
    await inspectCommand(target, opts.json === true);
  });

checkpoint
  .command('export <path>')
  .description("write a checkpoint's model tensors as one safetensors file")
  .requiredOption('--out <file>', 'the file to write (replaced atomically)')
  .addOption(
    new Option(
      '--format <format>',
      "safetensors: our names and layouts; pytorch: a PyTorch state_dict (Linear [out, in], conv OIHW, LayerNorm 'weight')",
    )
      .choices(['safetensors', 'pytorch'])
      .default('safetensors'),
  )
  .addOption(
    new Option(
      '--weights <which>',
      'delivered: the iterate average of a job trained with optimizer.ema (else the live parameters); live: the parameters workers trained on',
    )
      .choices(['delivered', 'live'])
      .default('delivered'),
  )
  .action(
    async (
      target: string,
      opts: { out: string; format: 'safetensors' | 'pytorch'; weights: 'delivered' | 'live' },
    ) => {
      await exportCommand(target, opts.out, opts.format, opts.weights);
    },
  );

checkpoint
  .command('import <file>')
  .description(
    'a PyTorch state_dict (safetensors, PyTorch layouts) of the architecture --model as a checkpoint directory',
  )
  .requiredOption(
    '--model <json>',
    'the architecture, as a job spec\'s model section in JSON, e.g. \'{"kind":"mlp","hidden":[128]}\'',
  )
  .requiredOption('--out <dir>', 'the checkpoint directory to write (replaced atomically)')
  .action(async (file: string, opts: { model: string; out: string }) => {
    const parsed = modelSchema.safeParse(parseJsonOption(opts.model, '--model'));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UsageError(`--model: ${issue.path.join('.') || 'kind'}: ${issue.message}`);
    }
    await importCommand(file, parsed.data, opts.out);
  });
/** The --coordinator the command was given (or its default), for messages. */
function coordinatorAddress(): string {
  const i = process.argv.indexOf('--coordinator');
  if (i >= 0 && process.argv[i + 1]) return process.argv[i + 1];
  const inline = process.argv.find((a) => a.startsWith('--coordinator='));
  return inline ? inline.slice('--coordinator='.length) : DEFAULT_ADDRESS;
}

/** A comma-separated list of non-negative integers (--blocks, --ranks). */
function integerListOption(text: string, flag: string, min: number): number[] {
  const values = text.split(',').map((part) => Number(part.trim()));
  if (text.trim() === '' || values.some((v) => !Number.isInteger(v) || v < min)) {
    throw new UsageError(
      `${flag} must be comma-separated integers ≥ ${min}, e.g. ${flag === '--ranks' ? '0,4,8,16' : '1,2'}; got '${text}'`,
    );
  }
  return values;
}

function positiveIntegerOption(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!Number.isInteger(v) || v <= 0)
    throw new UsageError(`${flag} must be a positive integer, got '${text}'`);
  return v;
}

const teacher = program.command('teacher').description('what a teacher checkpoint offers its students');

teacher
  .command('report <checkpoint>')
  .description(
    "a transformer teacher's layer importance (1 − cos(X, X + f(LN X)) per attention and MLP sub-layer) and the SVD energy a rank-r LoRA captures of each tying plan's residuals (docs/students.md)",
  )
  .option(
    '--text <file>',
    'UTF-8 text whose held-out last 10 % feeds the importance scores (default: the bundled KJV excerpt)',
  )
  .option('--sequences <n>', 'sequences in the batch (default 16)')
  .option('--seq-len <n>', "tokens per sequence (default min(64, the model's context))")
  .option('--blocks <list>', 'shared-block counts K to plan (default 1,2,3,⌊L/2⌋, those below L)')
  .option('--ranks <list>', 'LoRA ranks (default 0,4,8,16)')
  .option('--json', 'print JSON')
  .action(
    async (
      target: string,
      opts: {
        text?: string;
        sequences?: string;
        seqLen?: string;
        blocks?: string;
        ranks?: string;
        json?: boolean;
      },
    ) => {
      // Loaded on use: the report runs tfjs, which no other client command needs.
      const { teacherReportCommand } = await import('./teacherCommand.ts');
      await teacherReportCommand(target, {
        text: opts.text,
        sequences: positiveIntegerOption(opts.sequences, '--sequences'),
        seqLen: positiveIntegerOption(opts.seqLen, '--seq-len'),
        blocks: opts.blocks === undefined ? undefined : integerListOption(opts.blocks, '--blocks', 1),
        ranks: opts.ranks === undefined ? undefined : integerListOption(opts.ranks, '--ranks', 0),
        json: opts.json === true,
      });
    },
  );

program.parseAsync(process.argv).catch((e: unknown) => {
  // Help and --version end with exit code 0; every other commander error is a usage error (already printed).
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (
    e instanceof UsageError ||
    e instanceof JobSpecError ||
    e instanceof ClientAuthError ||
    e instanceof TlsConfigError ||
    e instanceof CertsError ||
    e instanceof ShardingError ||
    e instanceof WorkerNameError ||
    e instanceof LogConfigError ||
    e instanceof LeaseConfigError ||
    e instanceof TeacherReportError
  ) {
    console.error(`phalanx: ${(e as Error).message}`);
    process.exit(2);
  }
  if (
    e instanceof StartupError ||
    e instanceof CheckpointError ||
    e instanceof AggregationStalledError ||
    e instanceof DivergenceError
  ) {
    console.error(`phalanx: ${e.message}`);
    process.exit(EXIT.failure);
  }
  if (e instanceof LostConnectionError) {
    console.error(`phalanx: ${e.message}`);
    process.exit(EXIT.coordinator);
  }
  const se = e as Partial<grpc.ServiceError>;
  if (se.code === grpc.status.UNAVAILABLE && se.details?.startsWith('not the leader')) {
    console.error(`phalanx: ${se.details} (point --coordinator / PHALANX_COORDINATOR at the leader)`);
    process.exit(EXIT.coordinator);
  }
  if (se.code === grpc.status.UNAVAILABLE) {
    console.error(
      `phalanx: cannot reach the coordinator at ${coordinatorAddress()}: ${se.details ?? se.message} (is it running there? --coordinator / PHALANX_COORDINATOR)`,
    );
    process.exit(EXIT.coordinator);
  }
  if (typeof se.code === 'number') {
    console.error(`phalanx: ${grpc.status[se.code]}: ${se.details ?? se.message}`);
    process.exit(se.code === grpc.status.NOT_FOUND ? EXIT.notFound : EXIT.failure);
  }
  console.error(
    `phalanx: unexpected error (a bug: please report it with this trace)\n${(e as Error).stack ?? String(e)}`,
  );
  process.exit(1);
});
