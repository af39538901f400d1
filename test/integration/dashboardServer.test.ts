/**
 * The dashboard's HTTP adapter over loopback with a real (memory) state store and the coordinator's access
 * tokens: who may read what, the token → cookie hand-over, headers, and the event stream (history, then live
 * rounds, then the end).
 */
import { expect } from 'chai';
import http from 'node:http';
import { CoordinatorAuth } from '../../src/coordinator/auth/authenticator.ts';
import { startDashboard, type RunningDashboard } from '../../src/coordinator/http/dashboardServer.ts';
import { JobManager } from '../../src/coordinator/jobManager.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { MemoryStateStore } from '../../src/coordinator/state/index.ts';
import type { JobRecord } from '../../src/coordinator/state/stateStore.ts';

function report(jobId: string, round: number, rollbacks = 0): RoundReport {
  return {
    jobId,
    round,
    rule: 'flag',
    workers: [
      {
        workerId: 'w0',
        name: 'worker-0',
        rank: 0,
        included: true,
        trust: 1,
        weight: 0.5,
        norm: 1,
        cosine: 0.9,
        reason: '',
        byzantine: '',
        loss: 0.5,
      },
    ],
    missing: [],
    updateNorm: 1,
    trainLoss: 1 / (round + 1),
    testAccuracy: NaN,
    testLoss: NaN,
    timings: { collectMs: 1, aggregateMs: 1, optimizeMs: 1, totalMs: 3 },
    bytesReceived: 100,
    finishedAtMs: Date.now(),
    divergence: [],
    rollbacks,
    replay: false,
  };
}

interface SseEvent {
  event: string;
  data: string;
}

/** Opens an event stream and collects its events until it ends; `onEvent` may act on each as it arrives. */
function openStream(
  url: string,
  headers: Record<string, string>,
  onEvent: (e: SseEvent, all: SseEvent[]) => void = () => {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; events: SseEvent[] }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        const events: SseEvent[] = [];
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event === undefined || data === undefined) continue;
            events.push({ event, data });
            onEvent({ event, data }, events);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, events }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

describe('integration: dashboard HTTP server', function () {
  this.timeout(30_000);
  const store = new MemoryStateStore();
  const auth = new CoordinatorAuth(store, { mutualTls: false, insecureOpen: false });
  // Never started: no scheduler claims the jobs this test puts in the store by hand.
  const manager = new JobManager(store, {
    consumerId: 'test',
    admission: { checkpointRoot: '/tmp', dataRoots: [], memoryBudgetBytes: 1 },
  });
  let dashboard: RunningDashboard;
  let admin: string;
  let viewerOfA: string;
  let worker: string;
  const jobA = 'job-a';
  const jobB = 'job-b';

  async function addJob(id: string): Promise<JobRecord> {
    const now = Date.now();
    await store.submitJob({
      id,
      name: id,
      spec: JSON.stringify({ rounds: 5 }),
      state: 'queued',
      createdAt: now,
      updatedAt: now,
      round: 0,
    });
    await store.transitionJob(id, 'start');
    return (await store.transitionJob(id, 'run'))!;
  }

  before(async () => {
    await store.connect();
    await addJob(jobA);
    await addJob(jobB);
    admin = (await auth.issue({ role: 'admin' })).token;
    viewerOfA = (await auth.issue({ role: 'viewer', jobId: jobA })).token;
    worker = (await auth.issue({ role: 'worker' })).token;
    dashboard = await startDashboard(manager, auth, { host: '127.0.0.1', port: 0 });
  });

  after(async () => {
    await dashboard?.close();
    await store.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${dashboard.url}${path}`, { headers, redirect: 'manual' });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('refuses a request without a credential (401) and says how to give one', async () => {
    const res = await get(`/jobs/${jobA}`);
    expect(res.status).to.equal(401);
    expect(await res.text()).to.match(/\?token=/);
    expect((await get(`/jobs/${jobA}/events`)).status).to.equal(401);
    expect((await get('/')).status).to.equal(401);
  });

  it('refuses an unknown token (401), a worker token (403) and a viewer of another job (403)', async () => {
    expect((await get('/', bearer(`${viewerOfA.slice(0, -4)}AAAA`))).status).to.equal(401);
    expect((await get(`/jobs/${jobA}`, bearer(worker))).status).to.equal(403);
    expect((await get(`/jobs/${jobB}`, bearer(viewerOfA))).status).to.equal(403);
    expect((await get(`/jobs/${jobB}/events`, bearer(viewerOfA))).status).to.equal(403);
  });

  it('moves a ?token= into an HttpOnly cookie and redirects to the URL without it', async () => {
    const res = await get(`/jobs/${jobA}?token=${encodeURIComponent(viewerOfA)}`);
    expect(res.status).to.equal(303);
    expect(res.headers.get('location')).to.equal(`/jobs/${jobA}`);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie)
      .to.match(/HttpOnly/)
      .and.match(/SameSite=Lax/);
    const page = await get(`/jobs/${jobA}`, { cookie: cookie.split(';')[0] });
    expect(page.status).to.equal(200);
    expect(await page.text()).to.contain(`data-job="${jobA}"`);
  });

  it('lists only the jobs the credential may read', async () => {
    const asViewer = await (await get('/', bearer(viewerOfA))).text();
    expect(asViewer).to.contain(`data-job="${jobA}"`).and.not.contain(`data-job="${jobB}"`);
    const asAdmin = await (await get('/', bearer(admin))).text();
    expect(asAdmin).to.contain(`data-job="${jobA}"`).and.contain(`data-job="${jobB}"`);
  });

  it('serves pages with a Content-Security-Policy, the static modules and uPlot; 404 for the rest', async () => {
    const page = await get(`/jobs/${jobA}`, bearer(admin));
    expect(page.headers.get('content-security-policy')).to.match(/default-src 'none'/);
    expect(page.headers.get('content-type')).to.match(/^text\/html/);
    expect(page.headers.get('cache-control')).to.equal('no-store');
    for (const asset of ['/static/job.js', '/static/model.js', '/static/vendor/uPlot.iife.min.js']) {
      const res = await get(asset);
      expect(res.status, asset).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/javascript/);
    }
    expect((await get('/static/../package.json')).status).to.equal(404);
    expect((await get('/jobs/nope', bearer(admin))).status).to.equal(404);
    expect((await fetch(`${dashboard.url}/`, { method: 'POST', headers: bearer(admin) })).status).to.equal(
      405,
    );
  });

  it('streams the stored history, then live rounds once each, then an end event when the job ends', async () => {
    for (const r of [0, 1]) {
      await store.appendRoundReport({ jobId: jobA, round: r, report: JSON.stringify(report(jobA, r)) }, 100);
    }
    let stepped = false;
    const stream = await openStream(`${dashboard.url}/jobs/${jobA}/events`, bearer(viewerOfA), (e, all) => {
      // After the history: a live round, the same round again (dropped), another job's round (not ours),
      // a replay after a rollback (kept), then the job completes.
      if (e.event === 'round' && all.filter((x) => x.event === 'round').length === 2 && !stepped) {
        stepped = true;
        void (async () => {
          manager.emit('round', report(jobA, 2));
          manager.emit('round', report(jobA, 2));
          manager.emit('round', report(jobB, 3));
          manager.emit('round', report(jobA, 1, 1));
          manager.emit('job', (await store.transitionJob(jobA, 'complete'))!);
        })();
      }
    });
    expect(stream.status).to.equal(200);
    expect(stream.headers['content-type']).to.match(/^text\/event-stream/);
    expect(stream.headers['cache-control']).to.equal('no-store');
    const kinds = stream.events.map((e) => e.event);
    expect(kinds).to.deep.equal(['hello', 'round', 'round', 'round', 'round', 'end']);
    const rounds = stream.events
      .filter((e) => e.event === 'round')
      .map((e) => JSON.parse(e.data) as RoundReport)
      .map((r) => [r.jobId, r.round, r.rollbacks]);
    expect(rounds).to.deep.equal([
      [jobA, 0, 0],
      [jobA, 1, 0],
      [jobA, 2, 0],
      [jobA, 1, 1],
    ]);
    expect(JSON.parse(stream.events.at(-1)!.data).state).to.equal('completed');
    // NaN travels as null (JSON), which the page reads back as NaN.
    expect(JSON.parse(stream.events[1].data).testAccuracy).to.equal(null);
  });

  it('holds live events that arrive while the history is read, and sends them after it', async () => {
    const jobC = 'job-c';
    await addJob(jobC);
    for (const r of [0, 1])
      await store.appendRoundReport({ jobId: jobC, round: r, report: JSON.stringify(report(jobC, r)) }, 100);
    const read = store.listRoundReports.bind(store);
    // The next round closes, and the job completes, while the stream is still reading the stored rounds.
    store.listRoundReports = async (jobId, from, limit) => {
      store.listRoundReports = read;
      manager.emit('round', report(jobC, 2));
      manager.emit('job', (await store.transitionJob(jobC, 'complete'))!);
      return read(jobId, from, limit);
    };
    const stream = await openStream(`${dashboard.url}/jobs/${jobC}/events`, bearer(admin));
    expect(stream.events.map((e) => e.event)).to.deep.equal(['hello', 'round', 'round', 'round', 'end']);
    const rounds = stream.events.filter((e) => e.event === 'round').map((e) => JSON.parse(e.data).round);
    expect(rounds).to.deep.equal([0, 1, 2]);
  });

  it('ends the stream of a job that has already ended right after its history', async () => {
    const stream = await openStream(`${dashboard.url}/jobs/${jobA}/events`, bearer(admin));
    expect(stream.events.map((e) => e.event)).to.deep.equal(['hello', 'round', 'round', 'end']);
  });
});
