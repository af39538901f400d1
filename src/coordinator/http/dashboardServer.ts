/**
 * The coordinator's web dashboard, on its own port (HTTPS with the coordinator's certificate when it has one):
 *
 *   GET /                  the jobs this credential may read
 *   GET /jobs/:id          the job's page (drawn by static/job.js)
 *   GET /jobs/:id/events   Server-Sent Events: `hello` (server clock, job), every stored round report as `round`,
 *                          then live `round` and `job` events, then `end` when the job is over
 *   GET /static/…          the page's ES modules and CSS, and uPlot from its npm package
 *
 * Reading needs the same right as WatchJob (a viewer, the job's submitter, or admin); see dashboardAuth.ts.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { CoordinatorAuth } from '../auth/authenticator.ts';
import { requireJobsAccess, requireRead } from '../auth/access.ts';
import { mayReadJob, type Principal } from '../auth/roles.ts';
import { ConcurrencyLimiter } from '../concurrencyLimiter.ts';
import { isTerminal, type JobManager } from '../jobManager.ts';
import type { RoundReport } from '../roundReport.ts';
import type { JobRecord } from '../state/stateStore.ts';
import { StartupError } from '../startupError.ts';
import type { TlsFiles } from '../../transport/tls.ts';
import { cookieName, httpStatusOf, principalOf, requestToken } from './dashboardAuth.ts';
import { errorPage, jobListPage, jobPage } from './dashboardPages.ts';
import { packagePath } from '../../packageRoot.ts';

export interface DashboardConfig {
  host: string;
  port: number;
  /** The coordinator's TLS files: with cert and key the dashboard is HTTPS; with ca it also accepts client certs. */
  tls?: TlsFiles;
  log?: (message: string) => void;
}

export interface RunningDashboard {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Open event streams one credential may hold, and all together. */
export const STREAMS_PER_CREDENTIAL = 16;
const STREAMS_TOTAL = 1024;
/** Bytes a stream may have queued unread before it is ended. */
const MAX_STREAM_BACKLOG_BYTES = 8 * 1024 * 1024;
/** A comment line this often keeps idle proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;
const HISTORY_BATCH = 500;

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const COMMON_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** The static files, read once at start: the page's own modules and CSS, and uPlot's browser build. */
function loadAssets(): Map<string, { body: Buffer; type: string }> {
  const assets = new Map<string, { body: Buffer; type: string }>();
  const own = packagePath('src', 'coordinator', 'dashboard', 'static');
  for (const name of ['job.js', 'model.js', 'heatmap.js', 'dashboard.css'])
    assets.set(`/static/${name}`, {
      body: readFileSync(path.join(own, name)),
      type: TYPES[path.extname(name)],
    });
  const uplot = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
  for (const name of ['uPlot.iife.min.js', 'uPlot.min.css'])
    assets.set(`/static/vendor/${name}`, {
      body: readFileSync(path.join(uplot, name)),
      type: TYPES[path.extname(name)],
    });
  return assets;
}

export async function startDashboard(
  manager: JobManager,
  auth: CoordinatorAuth,
  config: DashboardConfig,
): Promise<RunningDashboard> {
  const log = config.log ?? (() => {});
  const assets = loadAssets();
  const streams = new ConcurrencyLimiter(STREAMS_PER_CREDENTIAL, STREAMS_TOTAL);
  const secure = Boolean(config.tls?.cert && config.tls?.key);
  let cookie = '';

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    void route(req, res).catch((e: unknown) => {
      const status = httpStatusOf(e);
      if (status === 500) log(`dashboard: ${req.method} ${req.url}: ${(e as Error).stack ?? e}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const message = status === 500 ? 'internal error (see the coordinator log)' : (e as Error).message;
      const hint =
        status === 401
          ? 'Open this page with ?token=<token> once (a viewer token: phalanx token create --role viewer), ' +
            'or send Authorization: Bearer <token>.'
          : '';
      send(res, status, 'text/html; charset=utf-8', errorPage(status, message, hint));
    });
  };

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const asset = assets.get(url.pathname);
    if (asset) {
      res.writeHead(200, { ...COMMON_HEADERS, 'content-type': asset.type, 'cache-control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : asset.body);
      return;
    }
    const m = /^\/jobs\/([^/]+)(\/events)?$/.exec(url.pathname);
    if (url.pathname !== '/' && !m) {
      send(res, 404, 'text/html; charset=utf-8', errorPage(404, `no page ${url.pathname}`));
      return;
    }

    const token = requestToken(req.headers, url, cookie);
    const principal = await principalOf(auth, req, token);
    requireJobsAccess(principal);
    const isPage = !m?.[2];
    if (token?.source === 'query' && isPage) {
      // The token leaves the address bar (and history, and Referer) for an HttpOnly cookie.
      url.searchParams.delete('token');
      res.writeHead(303, {
        ...COMMON_HEADERS,
        location: url.pathname + url.search,
        'set-cookie': `${cookie}=${encodeURIComponent(token.token)}; Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`,
        'cache-control': 'no-store',
      });
      res.end();
      return;
    }

    if (!m) {
      const jobs = (await manager.store.listJobs()).filter((j) => mayReadJob(principal, j));
      send(res, 200, 'text/html; charset=utf-8', jobListPage(jobs));
      return;
    }
    let id: string;
    try {
      id = decodeURIComponent(m[1]);
    } catch {
      send(res, 400, 'text/html; charset=utf-8', errorPage(400, 'malformed job id in the URL'));
      return;
    }
    const job = await manager.store.getJob(id);
    if (!job) {
      send(res, 404, 'text/html; charset=utf-8', errorPage(404, `job '${id}' not found`));
      return;
    }
    requireRead(principal, job);
    if (isPage) send(res, 200, 'text/html; charset=utf-8', jobPage(job));
    else if (req.method === 'HEAD') send(res, 200, 'text/event-stream; charset=utf-8', '');
    else streamJob(req, res, job, principal);
  }

  /** The job's history, then its live events, as SSE; ends after the job ends (or the coordinator stops). */
  function streamJob(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    job: JobRecord,
    principal: Principal,
  ): void {
    const release = streams.acquire(principal.id);
    if (!release) {
      send(
        res,
        429,
        'text/plain; charset=utf-8',
        `too many open streams for this credential (at most ${STREAMS_PER_CREDENTIAL})\n`,
      );
      return;
    }
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    let closed = false;
    let replaying = true;
    const held: (() => void)[] = [];
    let lastRound = -1;
    let lastRollbacks = 0;

    const write = (event: string, data: string) => {
      if (closed) return;
      res.write(`event: ${event}\ndata: ${data}\n\n`);
      if (res.writableLength > MAX_STREAM_BACKLOG_BYTES) {
        log(`dashboard: stream of job ${job.id} ended: the reader fell too far behind`);
        finish();
      }
    };
    const sendRound = (report: RoundReport | string) => {
      const r = typeof report === 'string' ? (JSON.parse(report) as RoundReport) : report;
      // Once per (rollback, round): after a divergence-guard rollback, rounds are reported again.
      const rollbacks = r.rollbacks ?? 0;
      if (rollbacks < lastRollbacks || (rollbacks === lastRollbacks && r.round <= lastRound)) return;
      lastRollbacks = rollbacks;
      lastRound = r.round;
      write('round', typeof report === 'string' ? report : JSON.stringify(report));
    };
    const sendJob = (event: 'job' | 'end', j: JobRecord) => write(event, JSON.stringify(jobSummary(j)));
    const onRound = (report: RoundReport) => {
      if (report.jobId !== job.id) return;
      if (replaying) held.push(() => sendRound(report));
      else sendRound(report);
    };
    const onJob = (j: JobRecord) => {
      if (j.id !== job.id) return;
      const deliver = () => {
        if (isTerminal(j.state)) {
          sendJob('end', j);
          finish();
        } else sendJob('job', j);
      };
      if (replaying) held.push(deliver);
      else deliver();
    };
    const onStopping = () => finish();
    const keepalive = setInterval(() => {
      if (!closed) res.write(': keepalive\n\n');
    }, KEEPALIVE_MS);
    function finish() {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      manager.off('round', onRound);
      manager.off('job', onJob);
      manager.off('stopping', onStopping);
      release!();
      res.end();
    }
    req.on('close', finish);
    manager.on('round', onRound);
    manager.on('job', onJob);
    manager.on('stopping', onStopping);

    void (async () => {
      try {
        write('hello', JSON.stringify({ serverNow: Date.now(), job: jobSummary(job) }));
        for (;;) {
          const batch = await manager.store.listRoundReports(job.id, lastRound + 1, HISTORY_BATCH);
          for (const r of batch) sendRound(r.report);
          if (closed || batch.length < HISTORY_BATCH) break;
          if (res.writableNeedDrain) await new Promise((resolve) => res.once('drain', resolve));
        }
        replaying = false;
        for (const deliver of held.splice(0)) deliver();
        if (isTerminal(job.state)) {
          sendJob('end', job);
          finish();
        }
      } catch (e) {
        log(`dashboard: stream of job ${job.id}: ${(e as Error).message}`);
        finish();
      }
    })();
  }

  const server = secure
    ? https.createServer(
        {
          cert: readFileSync(config.tls!.cert!),
          key: readFileSync(config.tls!.key!),
          ...(config.tls?.ca ? { ca: readFileSync(config.tls.ca), requestCert: true } : {}),
          // A browser without a client certificate may still come in with a token.
          rejectUnauthorized: false,
        },
        handler,
      )
    : http.createServer(handler);
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new StartupError(
          e.code === 'EADDRINUSE'
            ? `cannot listen on ${config.host}:${config.port}: the port is in use (choose another --dashboard-port)`
            : `dashboard: cannot listen on ${config.host}:${config.port}: ${e.message}`,
        ),
      ),
    );
    server.listen(config.port, config.host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : config.port);
    });
  });
  cookie = cookieName(port);
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `${secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log(`dashboard on ${url}/`);
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What the page needs of a job record (not its spec or owner). */
function jobSummary(job: JobRecord) {
  let totalRounds = 0;
  try {
    totalRounds = (JSON.parse(job.spec) as { rounds?: number }).rounds ?? 0;
  } catch {
    // A record without a readable spec shows 0 rounds.
  }
  return {
    id: job.id,
    state: job.state,
    round: job.round,
    totalRounds,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    ...(job.error ? { error: job.error } : {}),
  };
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': type, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
