/**
 * The coordinator's Prometheus endpoint: GET /metrics serves the registry of a CoordinatorMetrics in the text
 * exposition format; anything else is 404 (405 for other methods on /metrics). Plain HTTP, no credentials:
 * bind it to loopback or a monitoring network (the default host is 127.0.0.1).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { CoordinatorMetrics } from '../metrics/coordinatorMetrics.ts';
import { StartupError } from '../startupError.ts';

export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** Where the endpoint listens; port 0 takes any free port (the log line names it). */
export const MetricsListenSchema = z.object({
  host: z.string().min(1, 'metrics host must not be empty (e.g. 127.0.0.1 or 0.0.0.0)'),
  port: z
    .number({ error: 'metrics port must be an integer in 0..65535 (0 = any free port)' })
    .int('metrics port must be an integer')
    .min(0, 'metrics port must be in 0..65535 (0 = any free port)')
    .max(65535, 'metrics port must be in 0..65535 (0 = any free port)'),
});
export type MetricsListen = z.infer<typeof MetricsListenSchema>;

export interface RunningMetricsServer {
  /** http://host:port/metrics */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(
  metrics: CoordinatorMetrics,
  listen: MetricsListen,
): Promise<RunningMetricsServer> {
  const { host, port } = MetricsListenSchema.parse(listen);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('use GET\n');
      return;
    }
    metrics.sweep();
    metrics.registry
      .metrics()
      .then((body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      })
      .catch((e: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(e as Error).message}\n`);
      });
  });
  // Scrapers keep connections alive; they must not hold the coordinator's shutdown.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new StartupError(
          e.code === 'EADDRINUSE'
            ? `cannot serve metrics on ${host}:${port}: the port is in use (choose another --metrics-port)`
            : `cannot serve metrics on ${host}:${port}: ${e.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${bound}/metrics`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
