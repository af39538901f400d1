/**
 * The logs of the service processes as a collector and a person see them: JSON lines when stdout is a pipe,
 * human lines with --log-format pretty (or PHALANX_LOG_FORMAT), levels from PHALANX_LOG_LEVEL, and a wrong
 * setting refused at start.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { BIN, logLines, startCoordinatorProcess, startProcess, type Proc } from '../support/processes.ts';

const exitOf = (proc: Proc): Promise<number | null> => proc.exit();

describe('integration: service logs', function () {
  this.timeout(120_000);

  it('a coordinator whose stdout is a pipe logs one JSON object per line', async () => {
    const c = await startCoordinatorProcess();
    try {
      const lines = c.proc
        .output()
        .split('\n')
        .filter((l) => l !== '');
      expect(lines.length).to.be.greaterThan(1);
      const parsed = logLines(c.proc.output());
      expect(parsed).to.have.length(lines.length);
      const listening = parsed.find((l) => l.msg.startsWith('coordinator listening on'));
      expect(listening).to.include({
        level: 'info',
        component: 'coordinator',
        address: c.address,
        store: 'memory',
        security: 'plaintext',
      });
      expect(listening?.pid).to.equal(c.proc.child.pid);
    } finally {
      await c.proc.kill();
    }
  });

  it('--log-format pretty: human lines, the time first', async () => {
    const c = await startCoordinatorProcess(['--log-format', 'pretty']);
    try {
      expect(c.proc.output()).to.match(
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z coordinator listening on 127\.0\.0\.1:\d+ \(store: memory, plaintext\)$/m,
      );
      expect(logLines(c.proc.output())).to.deep.equal([]);
    } finally {
      await c.proc.kill();
    }
  });

  it('a worker with PHALANX_LOG_FORMAT=pretty and PHALANX_LOG_LEVEL=warn: its warnings alone, as [name] lines', async () => {
    const w = startProcess(
      [
        'worker',
        '--coordinator',
        '127.0.0.1:1',
        '--name',
        'w-pretty',
        '--backend',
        'cpu',
        '--connect-timeout',
        '2s',
      ],
      { PHALANX_LOG_FORMAT: 'pretty', PHALANX_LOG_LEVEL: 'warn' },
    );
    expect(await exitOf(w)).to.equal(1);
    const lines = w
      .output()
      .split('\n')
      .filter((l) => l !== '');
    expect(lines.length).to.be.greaterThan(1);
    expect(lines.at(-1)).to.match(/^phalanx: worker w-pretty: cannot reach coordinator at 127\.0\.0\.1:1 /);
    for (const line of lines.slice(0, -1))
      expect(line).to.match(
        /^\[w-pretty\] cannot reach coordinator at 127\.0\.0\.1:1 \(ECONNREFUSED\); retrying in /,
      );
  });

  it('a worker whose stdout is a terminal (a pseudo-TTY from script(1)) logs human lines, no JSON', async function () {
    const env = { ...process.env };
    delete env['PHALANX_LOG_FORMAT'];
    const quote = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;
    const command = [process.execPath, BIN, 'worker', '--coordinator', '127.0.0.1:1', '--name', 'w-tty']
      .concat(['--backend', 'cpu', '--connect-timeout', '2s'])
      .map(quote)
      .join(' ');
    const run = spawnSync('script', ['-qec', command, '/dev/null'], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (run.error && (run.error as NodeJS.ErrnoException).code === 'ENOENT') this.skip(); // no script(1)
    const lines = run.stdout.split(/\r?\n/).filter((l) => l !== '');
    expect(run.status, run.stdout).to.equal(1);
    expect(lines.some((l) => l.startsWith('{'))).to.equal(false);
    expect(lines.at(-1)).to.match(/^phalanx: worker w-tty: cannot reach coordinator at 127\.0\.0\.1:1 /);
    const retries = lines.filter((l) => /^\[w-tty\] cannot reach coordinator at 127\.0\.0\.1:1 /.test(l));
    expect(retries.length).to.be.greaterThan(0);
  });

  it('a wrong PHALANX_LOG_FORMAT or --log-level is a usage error (exit 2) naming the valid values', async () => {
    const bad = startProcess(['coordinator', '--port', '0'], { PHALANX_LOG_FORMAT: 'xml' });
    expect(await exitOf(bad)).to.equal(2);
    expect(bad.output()).to.contain("phalanx: PHALANX_LOG_FORMAT must be one of json, pretty (got 'xml')");
    const level = startProcess(['worker', '--log-level', 'loud']);
    expect(await exitOf(level)).to.equal(2);
    expect(level.output()).to.contain(
      "argument 'loud' is invalid. Allowed choices are debug, info, warn, error, silent",
    );
  });
});
