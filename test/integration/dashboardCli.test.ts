/**
 * --dashboard-port from the command line: `launch` prints a URL that opens its job's page (with a viewer token
 * for that job); a bad port is a usage error (exit 2) and a taken one a one-line error.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { BIN, startProcess, tmpDir, type Proc } from '../support/processes.ts';

function phalanx(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('integration: --dashboard-port on the command line', function () {
  this.timeout(120_000);
  const procs: Proc[] = [];
  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  });

  it("launch prints a dashboard URL whose token opens the job's page", async () => {
    const launch = startProcess([
      'launch',
      '--workers',
      '1',
      '--rounds',
      '1000',
      '--dashboard-port',
      '0',
      '--data-dir',
      tmpDir('dash-launch'),
    ]);
    procs.push(launch);
    const m = await launch.waitFor(/dashboard (http:\/\/[\d.]+:\d+)\/jobs\/(\S+)\?token=(\S+)/);
    const [, base, job, token] = m;
    const res = await fetch(`${base}/jobs/${job}?token=${token}`, { redirect: 'manual' });
    expect(res.status).to.equal(303);
    const cookie = res.headers.get('set-cookie')!.split(';')[0];
    const page = await fetch(`${base}/jobs/${job}`, { headers: { cookie } });
    expect(page.status).to.equal(200);
    expect(await page.text()).to.contain(`data-job="${job}"`);
    await launch.kill('SIGINT');
  });

  it('a port that is not a number is a usage error (exit 2)', async () => {
    const { code, stderr } = await phalanx(['coordinator', '--dashboard-port', 'eighty']);
    expect(stderr).to.match(/--dashboard-port must be a port number/);
    expect(code).to.equal(2);
  });

  it('a taken port is named in one line, without a stack trace', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const { code, stderr } = await phalanx([
        'coordinator',
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--data-dir',
        tmpDir('dash-busy'),
        '--dashboard-port',
        String(port),
      ]);
      expect(stderr).to.match(/the port is in use \(choose another --dashboard-port\)/);
      expect(stderr).not.to.match(/\n\s+at /);
      expect(code).to.equal(1);
    } finally {
      blocker.close();
    }
  });
});
