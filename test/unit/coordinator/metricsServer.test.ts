/**
 * The metrics endpoint over real loopback HTTP: GET /metrics serves the coordinator's registry in the Prometheus
 * text format (ended jobs swept first), other paths are 404, other methods 405, a taken port is a StartupError
 * naming the flag, and a bad listen address is refused with the field's message.
 */
import { expect } from 'chai';
import net from 'node:net';
import { CoordinatorMetrics } from '../../../src/coordinator/metrics/coordinatorMetrics.ts';
import {
  startMetricsServer,
  type RunningMetricsServer,
} from '../../../src/coordinator/http/metricsServer.ts';
import { StartupError } from '../../../src/coordinator/startupError.ts';
import type { RoundReport } from '../../../src/coordinator/roundReport.ts';

function report(jobId: string): RoundReport {
  return {
    jobId,
    round: 0,
    rule: 'mean',
    workers: [],
    missing: [],
    updateNorm: 1,
    trainLoss: 1,
    testAccuracy: NaN,
    testLoss: NaN,
    timings: { collectMs: 1, aggregateMs: 1, optimizeMs: 1, totalMs: 3 },
    bytesReceived: 0,
    finishedAtMs: 0,
    divergence: [],
    rollbacks: 0,
    replay: false,
  };
}

describe('metrics endpoint (HTTP)', () => {
  const servers: RunningMetricsServer[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  it('serves /metrics in the Prometheus text format; 404 elsewhere, 405 for other methods', async () => {
    const metrics = new CoordinatorMetrics();
    metrics.observeRound(report('job-1'));
    const server = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
    servers.push(server);
    expect(server.url).to.equal(`http://127.0.0.1:${server.port}/metrics`);
    const res = await fetch(server.url);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    expect(await res.text()).to.match(/^phalanx_rounds_total\{job_id="job-1"\} 1$/m);
    expect((await fetch(server.url.replace('/metrics', '/'))).status).to.equal(404);
    expect((await fetch(server.url, { method: 'POST' })).status).to.equal(405);
  });

  it('sweeps ended jobs before it answers', async () => {
    let now = 0;
    const metrics = new CoordinatorMetrics({ retainFinishedMs: 1000, now: () => now });
    metrics.observeRound(report('old'));
    metrics.observeJob({
      id: 'old',
      name: 'old',
      spec: '{}',
      state: 'completed',
      createdAt: 0,
      updatedAt: 0,
      round: 1,
    });
    const server = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
    servers.push(server);
    expect(await (await fetch(server.url)).text()).to.include('job_id="old"');
    now = 1000;
    expect(await (await fetch(server.url)).text()).to.not.include('job_id="old"');
  });

  it('a taken port is a StartupError that names --metrics-port', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const err = await startMetricsServer(new CoordinatorMetrics(), { host: '127.0.0.1', port }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(StartupError);
      expect((err as Error).message).to.equal(
        `cannot serve metrics on 127.0.0.1:${port}: the port is in use (choose another --metrics-port)`,
      );
    } finally {
      busy.close();
    }
  });

  it('refuses a port outside 0..65535', async () => {
    const err = await startMetricsServer(new CoordinatorMetrics(), { host: '127.0.0.1', port: 70000 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).to.match(/metrics port must be in 0\.\.65535/);
  });
});
