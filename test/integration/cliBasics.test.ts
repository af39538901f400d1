/** The `phalanx` command's basics as a user meets them: exit codes, one-line errors, --version, help text. */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { demoSpec } from '../../src/cli/demoSpec.ts';
import { listAttacks } from '../../src/core/attacks/registry.ts';
import { FASHION_MNIST_CLASSES } from '../../src/data/fashionMnist.ts';
import { listPreAggregators, listRules } from '../../src/core/aggregation/registry.ts';
import { BIN, tmpDir } from '../support/processes.ts';

function phalanx(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { timeout: 60_000, env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('integration: phalanx CLI basics', function () {
  this.timeout(60_000);

  describe('usage errors exit 2', () => {
    it('an unknown option', async () => {
      const { code, stderr } = await phalanx(['launch', '--bogus']);
      expect(stderr).to.match(/unknown option '--bogus'/);
      expect(code).to.equal(2);
    });

    it('a missing option argument', async () => {
      const { code, stderr } = await phalanx(['launch', '--workers']);
      expect(stderr).to.match(/argument missing/);
      expect(code).to.equal(2);
    });

    it('a port or a TTL that is not a number (coordinator, launch)', async () => {
      const dir = tmpDir('cli-basics');
      const port = await phalanx(['coordinator', '--insecure-open', '--port', 'abc', '--data-dir', dir]);
      expect(port.stderr.trim()).to.equal("phalanx: --port must be a port number in [0, 65535] (got 'abc')");
      expect(port.code).to.equal(2);
      const ttl = await phalanx(['coordinator', '--insecure-open', '--port', '0', '--heartbeat-ttl', 'abc']);
      expect(ttl.stderr.trim()).to.equal("phalanx: --heartbeat-ttl must be a positive integer, got 'abc'");
      expect(ttl.code).to.equal(2);
      const launch = await phalanx(['launch', '--port', 'abc', '--data-dir', dir]);
      expect(launch.stderr.trim()).to.match(/^phalanx: --port must be a port number/);
      expect(launch.code).to.equal(2);
    });

    it('a value outside the choices', async () => {
      const { code, stderr } = await phalanx(['launch', '--store', 'disk']);
      expect(stderr).to.match(/Allowed choices are memory, redis/);
      expect(code).to.equal(2);
    });

    it('an unknown nested command', async () => {
      const { code } = await phalanx(['token', 'frobnicate']);
      expect(code).to.equal(2);
    });

    it('--help still exits 0', async () => {
      const { code, stdout } = await phalanx(['launch', '--help']);
      expect(stdout).to.match(/Usage: phalanx launch/);
      expect(code).to.equal(0);
    });
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const { code, stdout } = await phalanx(['--version']);
    expect(stdout.trim()).to.equal(pkg.version);
    expect(code).to.equal(0);
  });

  describe('expected errors: one line `phalanx: …`, no stack trace', () => {
    const dir = tmpDir('cli-basics');
    const oneLine = (stderr: string) => {
      expect(stderr).not.to.match(/^\s+at /m);
      expect(stderr.trim().split('\n')).to.have.length(1);
      expect(stderr).to.match(/^phalanx: /);
    };

    it('launch --attack alien: exit 2, lists the valid attacks', async () => {
      const { code, stderr } = await phalanx(['launch', '--attack', 'alien', '--data-dir', dir]);
      oneLine(stderr);
      expect(stderr).to.match(/unknown attack 'alien'/);
      for (const a of listAttacks()) expect(stderr).to.include(a);
      expect(code).to.equal(2);
    });

    it('launch --rule alien: exit 2 before anything starts, lists the valid rules', async () => {
      const { code, stderr } = await phalanx(['launch', '--rule', 'alien', '--data-dir', dir]);
      expect(stderr).not.to.match(/^\s+at /m);
      expect(stderr).to.match(/^phalanx: invalid job spec:\n {2}- aggregation\.rule: unknown rule 'alien'/);
      for (const r of listRules()) expect(stderr).to.include(r);
      expect(code).to.equal(2);
    });

    it('simulate whose aggregation stalls (crashed workers below workers.min): the reason, exit 1', async () => {
      const config = path.join(dir, 'stall.json');
      writeFileSync(config, JSON.stringify({ ...demoSpec(), rounds: 20 }));
      const args = [
        'simulate',
        '--config',
        config,
        '--byzantine',
        '2',
        '--attack',
        'crash',
        '--backend',
        'cpu',
      ];
      const { code, stderr } = await phalanx(args);
      oneLine(stderr);
      expect(stderr.trim()).to.equal(
        'phalanx: aggregation failed 10 rounds in a row: quorum not met: 4 of workers.min = 6 gradients accepted',
      );
      expect(code).to.equal(1);
    });

    it('shards of a text job: nothing to show, says why, exit 2', async () => {
      const config = path.join(dir, 'text-shards.json');
      writeFileSync(config, JSON.stringify({ model: { kind: 'transformer' }, data: { kind: 'text' } }));
      const { code, stderr } = await phalanx(['shards', '--config', config]);
      oneLine(stderr);
      expect(stderr.trim()).to.equal(
        'phalanx: data.kind text is sharded by sequence: no classes to show (phalanx shards reads image labels)',
      );
      expect(code).to.equal(2);
    });

    it('coordinator whose --data-dir cannot be used (a file, or a broken admin.token): names it, exit 1', async () => {
      const file = path.join(dir, 'not-a-dir');
      writeFileSync(file, '');
      const under = await phalanx(['coordinator', '--insecure-open', '--port', '0', '--data-dir', file]);
      oneLine(under.stderr);
      expect(under.stderr).to.include(`data dir ${file}: cannot use ${file}/admin.token (ENOTDIR`);
      expect(under.code).to.equal(1);
      const broken = path.join(dir, 'broken');
      mkdirSync(broken, { recursive: true });
      writeFileSync(path.join(broken, 'admin.token'), 'garbage\n');
      const token = await phalanx(['coordinator', '--insecure-open', '--port', '0', '--data-dir', broken]);
      oneLine(token.stderr);
      expect(token.stderr).to.include('admin.token does not hold a Phalanx admin token');
      expect(token.code).to.equal(1);
    });

    it('worker --byzantine alien fails at start with exit 2', async () => {
      const { code, stderr } = await phalanx([
        'worker',
        '--byzantine',
        'alien',
        '--coordinator',
        '127.0.0.1:1',
      ]);
      oneLine(stderr);
      expect(stderr).to.match(/--byzantine: unknown attack 'alien'/);
      expect(code).to.equal(2);
    });

    it('coordinator on a busy port: says the port is in use, exit 1', async () => {
      const busy = net.createServer();
      await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
      const port = (busy.address() as net.AddressInfo).port;
      try {
        const { code, stderr } = await phalanx([
          'coordinator',
          '--insecure-open',
          '--host',
          '127.0.0.1',
          '--port',
          String(port),
          '--data-dir',
          dir,
        ]);
        oneLine(stderr);
        expect(stderr)
          .to.include(`127.0.0.1:${port}`)
          .and.to.match(/port is in use/);
        expect(code).to.equal(1);
      } finally {
        busy.close();
      }
    });

    it('coordinator with Redis down: names the Redis URL, exit 1', async () => {
      const { code, stderr } = await phalanx([
        'coordinator',
        '--insecure-open',
        '--store',
        'redis',
        '--redis-url',
        'redis://127.0.0.1:1',
        '--data-dir',
        dir,
      ]);
      oneLine(stderr);
      expect(stderr).to.match(/cannot connect to Redis at redis:\/\/127\.0\.0\.1:1/);
      expect(code).to.equal(1);
    });
  });

  it('a reader that closes stdout early (`phalanx … | head -1`, EPIPE): exit 0, nothing on stderr', async () => {
    const input = path.join(tmpDir('cli-basics'), 'vectors.json');
    writeFileSync(
      input,
      JSON.stringify({
        vectors: [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
        f: 0,
      }),
    );
    const child = spawn(
      process.execPath,
      [BIN, 'aggregate', '--rule', 'mean', '--input', input, '-o', 'json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    // Closed before the CLI has started (it loads its sources first), so its first write meets EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(stderr).to.equal('');
    expect(code).to.equal(0);
  });

  it('shards: one row per rank with its class mix, and the Byzantine ranks’ share of each class', async () => {
    const config = path.join(tmpDir('cli-shards'), 'job.json');
    const job = {
      seed: 1,
      workers: { min: 12, max: 12 },
      data: { kind: 'fashion-mnist', shardBy: 'dirichlet', alpha: 0.3 },
      simulate: { byzantine: { count: 3, attack: 'labelflip' } },
    };
    writeFileSync(config, JSON.stringify(job));
    const { code, stdout } = await phalanx(['shards', '--config', config, '--byzantine', '2']);
    expect(code).to.equal(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(
      /^12 shards of \d+ training examples, Dirichlet α = 0\.3 label proportions, seed 1;/,
    );
    expect(lines[1].trim().split(/\s{2,}/)).to.deep.equal(['rank', 'examples', ...FASHION_MNIST_CLASSES]);
    expect(lines.slice(2, 14).map((l) => l.trim().split(/\s+/)[0])).to.deep.equal([
      ...Array.from({ length: 10 }, (_, i) => String(i)),
      '10*',
      '11*',
    ]);
    expect(lines[14]).to.equal(
      "* Byzantine in simulate (simulate.byzantine.count 2): of each class's training examples they hold",
    );
    expect(lines[15]).to.match(/^ {2}T-shirt\/top \d+%, Trouser \d+%, .*, Ankle boot \d+%$/);
    const json = JSON.parse((await phalanx(['shards', '--config', config, '--json'])).stdout) as {
      byzantineRanks: number[];
      ranks: unknown[];
    };
    expect(json.byzantineRanks).to.deep.equal([9, 10, 11]);
    expect(json.ranks).to.have.length(12);
  });

  it('worker --help names its default name instead of showing its own PID', async () => {
    const { code, stdout } = await phalanx(['worker', '--help'], {
      PHALANX_WORKER_NAME: undefined,
      RANK: undefined,
    });
    expect(code).to.equal(0);
    expect(stdout).to.include('worker-<pid>');
    expect(stdout).not.to.match(/worker-\d+/);
  });

  describe('--help lists the valid rules, pre-aggregators and attacks (from the registries)', () => {
    const names = (help: string) => new Set(help.split(/[\s,:()]+/));
    const expectAll = (help: string, expected: string[]) => {
      const words = names(help);
      for (const n of expected) expect(words, `${n} in help`).to.include(n);
    };
    for (const cmd of ['launch', 'demo', 'simulate']) {
      it(`${cmd} --help: rules, pre-aggregators and attacks`, async () => {
        const { stdout } = await phalanx([cmd, '--help']);
        expectAll(stdout, [...listRules(), ...listPreAggregators(), ...listAttacks()]);
      });
    }
    it('worker --help: attacks of --byzantine', async () => {
      expectAll((await phalanx(['worker', '--help'])).stdout, listAttacks());
    });
    it('aggregate --help: rules and pre-aggregators', async () => {
      expectAll((await phalanx(['aggregate', '--help'])).stdout, [...listRules(), ...listPreAggregators()]);
    });
  });

  describe('environment variables', () => {
    it('phalanx --help documents every PHALANX_* variable the sources read', async () => {
      const src = new URL('../../src/', import.meta.url);
      const read = new Set<string>();
      for (const file of readdirSync(src, { recursive: true, encoding: 'utf8' })) {
        if (!file.endsWith('.ts')) continue;
        const text = readFileSync(new URL(file, src), 'utf8');
        // process.env['X'], env['X'], env.X, and the named constants (DATA_ENV_VAR = 'X')
        for (const m of text.matchAll(/(?:env(?:\[['"]|\.)|_ENV_VAR = ')(PHALANX_[A-Z_]+)/g)) read.add(m[1]);
      }
      expect(read.size).to.be.greaterThan(10);
      const { code, stdout } = await phalanx(['--help']);
      expect(code).to.equal(0);
      for (const name of read) expect(stdout, name).to.match(new RegExp(`\\b${name}\\b`));
    });

    it('launch --store defaults to PHALANX_STORE (and --redis-url to PHALANX_REDIS_URL)', async () => {
      const env = { PHALANX_STORE: 'redis', PHALANX_REDIS_URL: 'redis://127.0.0.1:1' };
      const help = await phalanx(['launch', '--help'], env);
      expect(help.stdout.replace(/\s+/g, ' ')).to.include('default: "redis"');
      const run = await phalanx(
        ['launch', '--workers', '1', '--rounds', '1', '--data-dir', tmpDir('cli-basics')],
        env,
      );
      expect(run.stderr).to.match(/cannot connect to Redis at redis:\/\/127\.0\.0\.1:1/);
      expect(run.code).to.equal(1);
    });
  });
});
