/// <reference lib="dom" />
/**
 * The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core), during a live
 * job of real worker processes, two of them Byzantine (sign flip) under the Flag Aggregator: the heat map marks
 * the Byzantine workers' cells flagged and only theirs, the alerts name them, the curves are drawn, and the page
 * shows the job's end when it is cancelled. Saves a screenshot to test-output/dashboard.png.
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { AdminClient, JobsClient } from '../../src/cli/jobsClient.ts';
import { startCoordinatorProcess, startWorkerProcess, type Proc } from '../support/processes.ts';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.resolve('test-output/dashboard.png');
const BYZANTINE = ['worker-4', 'worker-5'];
const HONEST = ['worker-0', 'worker-1', 'worker-2', 'worker-3'];
/** Rounds the page must have received before the heat map is judged. */
const ROUNDS_SEEN = 12;

describe('integration: dashboard in headless Chromium', function () {
  this.timeout(300_000);
  const procs: Proc[] = [];
  const clients: { close(): void }[] = [];
  let context: BrowserContext | undefined;
  let profile = '';

  after(async () => {
    await context?.close();
    for (const c of clients) c.close();
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('shows a live job: Byzantine workers flagged in the heat map and alerts, curves drawn, the end', async () => {
    const coordinator = await startCoordinatorProcess(['--dashboard-port', '0']);
    procs.push(coordinator.proc);
    const dashboard = (await coordinator.proc.waitFor(/dashboard on (http:\/\/\S+)\//))[1];
    const jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    const admin = new AdminClient(coordinator.address, { token: coordinator.adminToken });
    clients.push(jobs, admin);
    const job = await jobs.submit(
      JSON.stringify({
        name: 'dashboard',
        seed: 1,
        model: { kind: 'mlp', hidden: [32] },
        data: { batchSize: 32, maxTrain: 3000, maxTest: 200 },
        optimizer: { kind: 'sgd', lr: 0.1 },
        // Long enough to be running while the page is checked; the test cancels it.
        rounds: 1000,
        workers: { min: 6, max: 6, roundTimeout: '30s', momentum: 0.9 },
        // The principal axis' sign test alone flags these −4·g senders in most rounds, which the heat map and the
        // alert are checked on. The default's two tests admit them in about half of the rounds (their axis scores
        // sit around −0.8), at no cost in accuracy (README, "Today's default").
        aggregation: { rule: 'flag', f: 2, options: { signDirection: 'principal-axis' } },
        evaluation: { every: 4, limit: 200 },
      }),
    );
    const viewer = (await admin.createToken({ role: 'viewer', jobId: job.id })).token;
    for (const name of HONEST) procs.push(startWorkerProcess(coordinator.address, name, ['--job', job.id]));
    for (const name of BYZANTINE)
      procs.push(
        startWorkerProcess(coordinator.address, name, [
          '--job',
          job.id,
          '--byzantine',
          'signflip',
          '--attack-options',
          '{"scale":4}',
        ]),
      );

    profile = mkdtempSync(path.join(os.tmpdir(), 'phalanx-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page: Page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });

    // The token in the URL is exchanged for a cookie; the page comes back without it.
    await page.goto(`${dashboard}/jobs/${encodeURIComponent(job.id)}?token=${encodeURIComponent(viewer)}`);
    expect(new URL(page.url()).search).to.equal('');
    await page.waitForSelector('#connection[data-state="live"]', { timeout: 60_000 });

    // Live rounds arrive over the stream while the job runs.
    await page.waitForFunction(
      (n) => Number(document.querySelector('#loss-chart')?.getAttribute('data-points')) >= n,
      ROUNDS_SEEN,
      { timeout: 240_000, polling: 500 },
    );
    expect(await page.textContent('#state')).to.equal('running');

    // Each worker's share of flagged cells in the trust map.
    const shares = await page.evaluate(() => {
      const out: Record<string, { flagged: number; cells: number }> = {};
      for (const cell of Array.from(document.querySelectorAll('#heat-trust rect[data-worker]'))) {
        const w = cell.getAttribute('data-worker')!;
        out[w] ??= { flagged: 0, cells: 0 };
        out[w].cells++;
        if (cell.getAttribute('data-flagged') === 'true') out[w].flagged++;
      }
      return out;
    });
    expect(Object.keys(shares).sort()).to.deep.equal([...HONEST, ...BYZANTINE]);
    const mostlyFlagged = Object.entries(shares)
      .filter(([, s]) => s.flagged > s.cells / 2)
      .map(([w]) => w)
      .sort();
    expect(mostlyFlagged, JSON.stringify(shares)).to.deep.equal(BYZANTINE);

    // A flagged cell says why on hover (its <title>).
    const reason = await page.textContent(
      `#heat-trust rect[data-worker="${BYZANTINE[0]}"][data-flagged="true"] title`,
    );
    expect(reason).to.match(/flagged \(flag: /);
    // The weight map carries the same marks.
    expect(
      await page.locator(`#heat-weight rect[data-worker="${BYZANTINE[1]}"][data-flagged="true"]`).count(),
    ).to.be.greaterThan(0);

    // The flag-rate alert names exactly the Byzantine workers.
    const alerted = await page.$$eval('#alerts [data-kind="flagged"]', (items) =>
      items.map((i) => i.getAttribute('data-worker')).sort(),
    );
    expect(alerted).to.deep.equal(BYZANTINE);

    // The loss curve is drawn: pixels of its series colour (#1f77b4) on the chart's canvas.
    const lossPixels = await countPixels(page, '#loss-chart canvas', [31, 119, 180]);
    expect(lossPixels).to.be.greaterThan(20);
    await page.waitForFunction(
      () => Number(document.querySelector('#accuracy-chart')?.getAttribute('data-points')) >= 1,
      undefined,
      { timeout: 120_000, polling: 500 },
    );
    const accuracyPixels = await countPixels(page, '#accuracy-chart canvas', [31, 119, 180]);
    expect(accuracyPixels).to.be.greaterThan(0);
    expect(await page.locator('#norm-chart canvas').count()).to.equal(1);

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // The end of the job reaches the page through the same stream.
    await jobs.cancel(job.id);
    await page.waitForSelector('#connection[data-state="ended"]', { timeout: 30_000 });
    expect(await page.textContent('#state')).to.equal('cancelled');
    expect(problems).to.deep.equal([]);
  });
});

/** Pixels of one colour (±8 per channel) on the canvas `selector` matches. */
function countPixels(page: Page, selector: string, rgb: [number, number, number]): Promise<number> {
  return page.$eval(
    selector,
    (canvas, color) => {
      const c = canvas as HTMLCanvasElement;
      const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < data.length; i += 4)
        if (
          data[i + 3] > 0 &&
          Math.abs(data[i] - color[0]) <= 8 &&
          Math.abs(data[i + 1] - color[1]) <= 8 &&
          Math.abs(data[i + 2] - color[2]) <= 8
        )
          n++;
      return n;
    },
    rgb,
  );
}
