/**
 * Client commands and the coordinator's main thread do not load tfjs (it takes about a second of CPU to load and
 * only workers, the model host thread, simulate and the teacher report use it).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function run(args: string[]): string {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

describe('cli: startup weight', function () {
  this.timeout(60_000);

  it('phalanx --version loads no tfjs', () => {
    const out = run([
      '--import',
      path.join(ROOT, 'test/support/countTfjsOnExit.mjs'),
      'bin/phalanx.js',
      '--version',
    ]);
    expect(out).to.match(/tfjs-modules-loaded 0\n/);
  });

  it('the bundle the integration tests spawn (dist/phalanx.mjs) loads no tfjs for --version either', () => {
    const out = run([
      '--import',
      path.join(ROOT, 'test/support/countTfjsOnExit.mjs'),
      'dist/phalanx.mjs',
      '--version',
    ]);
    expect(out).to.match(/^0\.\d+\.\d+\ntfjs-modules-loaded 0\n$/);
  });

  it('a worker from the bundle gets the wasm backend from the one tfjs it loads (no second tfjs-core)', () => {
    const r = spawnSync(
      process.execPath,
      [
        'dist/phalanx.mjs',
        'worker',
        '--coordinator',
        '127.0.0.1:1',
        '--backend',
        'wasm',
        '--connect-timeout',
        '1s',
      ],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, PHALANX_LOG_FORMAT: 'json' } },
    );
    const out = r.stdout + r.stderr;
    expect(out).to.match(/"msg":"tfjs backend: wasm — /);
    // A second tfjs-core (one bundled, one under the external wasm backend) announces itself with this warning and
    // leaves the wasm backend registered where the bundled tfjs never looks.
    expect(out).not.to.match(/Platform node has already been set/);
    expect(r.status, out).to.equal(1);
  });

  it('the coordinator server module loads no tfjs; the worker backend module does (the probe sees tfjs)', () => {
    const script = `
      import { createRequire } from 'node:module';
      const cache = createRequire(import.meta.url).cache;
      const count = () => Object.keys(cache).filter((k) => k.includes('@' + 'tensorflow')).length;
      await import('./src/coordinator/server.ts');
      const server = count();
      await import('./src/worker/backend.ts');
      console.log(JSON.stringify({ server, backend: count() }));`;
    const out = run(['--import', 'tsx', '--input-type=module', '-e', script]);
    const { server, backend } = JSON.parse(out.trim().split('\n').at(-1)!) as {
      server: number;
      backend: number;
    };
    expect(server, 'tfjs modules after importing server.ts').to.equal(0);
    expect(backend).to.be.greaterThan(0);
  });
});
