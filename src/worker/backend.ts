/**
 * tfjs backend selection for workers.
 *
 * Candidates, fastest first: `tensorflow-gpu` (libtensorflow with CUDA through the optional
 * `@tensorflow/tfjs-node-gpu`), `tensorflow` (libtensorflow on the CPU through `@tensorflow/tfjs-node`),
 * `wasm` (XNNPACK + SIMD, single-threaded under Node), `cpu` (plain JS, slowest). The native packages are
 * optional and usually absent in CI: a failed import is recorded in `tried` and the next candidate is used.
 *
 * tfjs falls back silently when a backend fails to initialise (`setBackend` resolves `false` and the old
 * backend stays active), so every step checks both `setBackend`'s result and `tf.getBackend()`.
 */
import { tf } from '../models/tf.ts';
import { BACKEND_ORDER, type BackendName, type BackendPreference } from './backendOrder.ts';

export { BACKEND_ORDER, type BackendName, type BackendPreference };

export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  error?: string;
}

export interface BackendSelection {
  /** Which candidate is active. */
  backend: BackendName;
  /** The tfjs backend name as reported by `tf.getBackend()` ('tensorflow' for both native packages). */
  tfBackend: string;
  /** True only when libtensorflow reports a GPU device. */
  gpu: boolean;
  /** One line for the log: what was chosen and why the faster candidates were not. */
  reason: string;
  tried: BackendAttempt[];
}

export interface SelectBackendOptions {
  /** Throw instead of falling back when the preferred backend cannot be used (ignored for 'auto'). */
  strict?: boolean;
}

const NATIVE_PACKAGE: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

/**
 * Activate the best available backend at or after `preference` in BACKEND_ORDER ('auto' = from the top).
 * `cpu` always works, so without `strict` this only rejects on a bug.
 */
export async function selectBackend(
  preference: BackendPreference = 'auto',
  options: SelectBackendOptions = {},
): Promise<BackendSelection> {
  const start = preference === 'auto' ? 0 : BACKEND_ORDER.indexOf(preference);
  if (start < 0) {
    throw new Error(`unknown backend '${String(preference)}' (expected auto | ${BACKEND_ORDER.join(' | ')})`);
  }
  const tried: BackendAttempt[] = [];
  for (const name of BACKEND_ORDER.slice(start)) {
    let gpu: boolean;
    try {
      gpu = await activate(name);
    } catch (err) {
      tried.push({ name, ok: false, error: errorText(err) });
      if (options.strict && preference !== 'auto') {
        throw new Error(`backend '${name}' is not usable: ${errorText(err)}`, { cause: err });
      }
      continue;
    }
    tried.push({ name, ok: true });
    await tf.ready();
    return {
      backend: name,
      tfBackend: tf.getBackend(),
      gpu,
      reason: await describe(name, gpu, preference, tried),
      tried,
    };
  }
  throw new Error(
    `no tfjs backend could be activated: ${tried.map((t) => `${t.name}: ${t.error}`).join('; ')}`,
  );
}

/** Make `name` the active backend or throw why not. Returns whether a GPU device is in use. */
async function activate(name: BackendName): Promise<boolean> {
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    const pkg = NATIVE_PACKAGE[name];
    try {
      // A variable specifier keeps TypeScript from resolving the optional, usually absent, package.
      const specifier: string = pkg;
      await import(specifier);
    } catch (err) {
      throw new Error(
        isModuleNotFound(err) ? `${pkg} is not installed` : `${pkg} failed to load: ${errorText(err)}`,
        { cause: err },
      );
    }
    if (tf.findBackendFactory('tensorflow') === null) {
      throw new Error(
        `${pkg} loaded but registered no 'tensorflow' backend in this tfjs instance ` +
          `(is a second copy of @tensorflow/tfjs-core installed?)`,
      );
    }
    await setBackendChecked('tensorflow');
    const native = tf.backend() as { isGPUPackage?: boolean; isUsingGpuDevice?: boolean };
    if (name === 'tensorflow-gpu' && native.isGPUPackage !== true) {
      throw new Error(`the active 'tensorflow' backend does not come from ${pkg}`);
    }
    return native.isUsingGpuDevice === true;
  }
  await setBackendChecked(name);
  return false;
}

/**
 * `tf.setBackend` with its boolean result and `tf.getBackend()` both checked. tfjs reports the cause of an
 * initialisation failure only through console.warn (which prod mode silences), so it is captured here and
 * put into the error.
 */
async function setBackendChecked(tfName: string): Promise<void> {
  const warnings: string[] = [];
  const originalWarn = console.warn;
  const env = tf.env();
  const prod = env.getBool('PROD');
  let ok: boolean;
  console.warn = (...args: unknown[]) => {
    warnings.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
  };
  env.set('PROD', false);
  try {
    ok = await tf.setBackend(tfName);
  } finally {
    env.set('PROD', prod);
    console.warn = originalWarn;
  }
  const detail = warnings.length > 0 ? `: ${firstLines(warnings.join(' | '), 3)}` : '';
  if (!ok) throw new Error(`tf.setBackend('${tfName}') returned false${detail}`);
  const active = tf.getBackend();
  if (active !== tfName)
    throw new Error(`tf.setBackend('${tfName}') succeeded but tf.getBackend() is '${active}'`);
}

async function describe(
  name: BackendName,
  gpu: boolean,
  preference: BackendPreference,
  tried: BackendAttempt[],
): Promise<string> {
  let what: string = name;
  if (name === 'tensorflow-gpu')
    what += gpu ? ' (libtensorflow, CUDA device)' : ' (libtensorflow, NO GPU device visible)';
  else if (name === 'tensorflow') what += ' (libtensorflow on CPU)';
  else if (name === 'wasm') {
    let simd = 'unknown';
    let threads = 'unknown';
    try {
      simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? 'on' : 'off';
      threads = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) ? 'multi-threaded' : '1 thread';
    } catch {
      // flags not registered: leave 'unknown'
    }
    what += ` (SIMD ${simd}, ${threads})`;
  } else what += ' (plain JS, slowest)';
  const failed = tried.filter((t) => !t.ok).map((t) => `${t.name}: ${t.error}`);
  const pref = preference === 'auto' ? 'auto' : `preferred ${preference}`;
  return failed.length === 0 ? `${what} [${pref}]` : `${what} [${pref}; skipped ${failed.join('; ')}]`;
}

function isModuleNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

function errorText(err: unknown): string {
  return firstLines(err instanceof Error ? err.message : String(err), 3);
}

function firstLines(text: string, n: number): string {
  return text.split('\n').slice(0, n).join(' ').trim();
}
