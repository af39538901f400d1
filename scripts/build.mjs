// Bundles the `phalanx` command and its worker-thread entries into dist/ (ESM, code-split, so the modules the CLI
// loads lazily stay lazy). `node dist/phalanx.mjs` is the same command as bin/phalanx.js without compiling
// TypeScript and resolving hundreds of modules at every start (≈ 0.7 s of CPU instead of ≈ 2 s); the integration
// tests spawn it. Packages that read their own files at run time, or hold native or wasm code, stay external.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.resolve(root, process.argv[2] ?? 'dist');

rmSync(outdir, { recursive: true, force: true });
const started = Date.now();
await build({
  absWorkingDir: root,
  entryPoints: {
    phalanx: 'src/cli/main.ts',
    roundComputeWorker: 'src/coordinator/roundComputeWorker.ts',
    modelHostWorker: 'src/coordinator/modelHostWorker.ts',
  },
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  external: [
    // One tfjs for every backend: the wasm and node backends register into the tfjs-core they import themselves.
    '@tensorflow/*',
    '@grpc/reflection',
    'grpc-health-check',
    'pino',
    'playwright-core',
  ],
  // CommonJS dependencies inside an ES module bundle still call require() and read __dirname.
  banner: {
    js: [
      "import { createRequire as __phalanxRequire } from 'node:module';",
      "import { fileURLToPath as __phalanxPath } from 'node:url';",
      'const require = __phalanxRequire(import.meta.url);',
      'const __filename = __phalanxPath(import.meta.url);',
      "const __dirname = __phalanxPath(new URL('.', import.meta.url));",
    ].join('\n'),
  },
});
console.log(`built ${path.relative(root, outdir) || '.'}/phalanx.mjs in ${Date.now() - started} ms`);
