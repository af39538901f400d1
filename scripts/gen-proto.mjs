// Generates TypeScript types for proto/phalanx/v1 into src/gen (never edited by hand; git-ignored).
// Runs on `npm ci` (prepare) and via `npm run gen`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const bin = path.join(
  path.dirname(require.resolve('@grpc/proto-loader/package.json')),
  'build/bin/proto-loader-gen-types.js',
);
const out = path.join(root, 'src/gen');
const protoDir = path.join(root, 'proto');
const files = readdirSync(path.join(protoDir, 'phalanx/v1'))
  .filter((f) => f.endsWith('.proto'))
  .map((f) => `phalanx/v1/${f}`);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
execFileSync(
  process.execPath,
  [
    bin,
    '--longs=Number',
    '--enums=String',
    '--defaults',
    '--oneofs',
    '--grpcLib=@grpc/grpc-js',
    '-I',
    protoDir,
    '-O',
    out,
    ...files,
  ],
  { stdio: 'inherit' },
);
// NodeNext resolution wants explicit extensions on relative imports.
const walk = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
for (const file of walk(out)) {
  const text = readFileSync(file, 'utf8').replace(/from '(\.{1,2}\/[^']+)'/g, "from '$1.ts'");
  writeFileSync(file, text);
}
console.log(`generated ${files.length} proto files into src/gen`);
