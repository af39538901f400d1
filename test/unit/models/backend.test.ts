import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tf } from '../../../src/models/tf.ts';
import { BACKEND_ORDER, selectBackend } from '../../../src/worker/backend.ts';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

function isInstalled(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

describe('worker: tfjs backend selection', function () {
  this.timeout(30_000);
  after(async () => {
    await selectBackend('cpu');
  });

  it('activates the requested backend and reports it', async () => {
    for (const name of ['wasm', 'cpu'] as const) {
      const sel = await selectBackend(name);
      expect(sel.backend).to.equal(name);
      expect(sel.tfBackend).to.equal(name).and.equal(tf.getBackend());
      expect(sel.tried).to.deep.equal([{ name, ok: true }]);
      expect(sel.reason).to.contain(name);
    }
  });

  it("'auto' walks tensorflow-gpu → tensorflow → wasm → cpu and records each failure", async () => {
    const sel = await selectBackend('auto');
    expect(sel.tried.map((t) => t.name)).to.deep.equal(BACKEND_ORDER.slice(0, sel.tried.length));
    expect(sel.tried.at(-1)).to.deep.equal({ name: sel.backend, ok: true });
    for (const t of sel.tried.slice(0, -1)) {
      expect(t.ok).to.equal(false);
      expect(t.error).to.be.a('string').and.not.equal('');
      expect(sel.reason).to.contain(t.name);
    }
    if (!isInstalled('@tensorflow/tfjs-node-gpu') && !isInstalled('@tensorflow/tfjs-node')) {
      expect(sel.backend).to.equal('wasm');
      expect(sel.tried[0].error).to.match(/tfjs-node-gpu is not installed/);
    }
  });

  it('falls back past an absent native package unless strict', async function () {
    if (isInstalled('@tensorflow/tfjs-node')) this.skip();
    const sel = await selectBackend('tensorflow');
    expect(sel.backend).to.equal('wasm');
    expect(sel.tried[0]).to.deep.include({ name: 'tensorflow', ok: false });
    let error: Error | undefined;
    try {
      await selectBackend('tensorflow', { strict: true });
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).to.match(
      /backend 'tensorflow' is not usable: @tensorflow\/tfjs-node is not installed/,
    );
  });

  it('rejects an unknown preference', async () => {
    let error: Error | undefined;
    try {
      await selectBackend('webgpu' as 'cpu');
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).to.match(/unknown backend 'webgpu'/);
  });

  it('notices when tfjs silently refuses a backend (wasm init failure → cpu)', async () => {
    // Forcing the multi-threaded wasm build makes its initialisation fail under Node; setBackend resolves false.
    const script = `
      import { tf } from './src/models/tf.ts';
      import { selectBackend } from './src/worker/backend.ts';
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
      const sel = await selectBackend('wasm');
      console.log(JSON.stringify(sel));`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: repoRoot,
        timeout: 25_000,
      },
    );
    const sel = JSON.parse(stdout.trim().split('\n').at(-1)!) as Awaited<ReturnType<typeof selectBackend>>;
    expect(sel.backend).to.equal('cpu');
    expect(sel.tried[0]).to.deep.include({ name: 'wasm', ok: false });
    expect(sel.tried[0].error).to.match(/setBackend\('wasm'\) returned false/);
  });
});
