/**
 * A real Prometheus server (Debian `prometheus`) for integration tests: a generated config scraping the given
 * targets every second, a temporary TSDB, loopback on a free port, and a client for its HTTP query API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { sleep, tmpDir } from './processes.ts';

export const PROMETHEUS_BIN = process.env['PHALANX_PROMETHEUS'] ?? '/usr/bin/prometheus';

export interface PrometheusServer {
  url: string;
  /** Instant query (/api/v1/query): one sample per series, with its labels. */
  query(promql: string): Promise<{ labels: Record<string, string>; value: number }[]>;
  output(): string;
  stop(): Promise<void>;
}

/** A port nothing listens on right now (bound and released). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Start Prometheus scraping `targets` (host:port, path /metrics) every second; resolves once it is ready. */
export async function startPrometheus(targets: string[]): Promise<PrometheusServer> {
  if (!existsSync(PROMETHEUS_BIN)) {
    throw new Error(
      `${PROMETHEUS_BIN} not found: install the Debian package prometheus (apt-get install prometheus)`,
    );
  }
  const dir = tmpDir('prometheus');
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: phalanx',
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stdout!.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (text += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (const started = Date.now(); ; await sleep(200)) {
    if (child.exitCode !== null)
      throw new Error(`prometheus exited (${child.exitCode}):\n${text.slice(-3000)}`);
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() - started > 60_000) {
      await stop();
      throw new Error(`prometheus not ready after 60 s:\n${text.slice(-3000)}`);
    }
  }
  return {
    url,
    output: () => text,
    stop,
    async query(promql) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await res.json()) as {
        status: string;
        error?: string;
        data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error ?? res.status}`);
      if (body.data!.resultType !== 'vector')
        throw new Error(`query ${promql}: ${body.data!.resultType}, not a vector`);
      return body.data!.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
    },
  };
}
