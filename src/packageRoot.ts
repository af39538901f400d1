/**
 * Where the package's files are (package.json, proto/, data/, the dashboard's static files), and whether this code
 * runs from the TypeScript sources (src/…, through tsx) or from the bundle (dist/…, `npm run build`). The root is
 * found by walking up from this module's own location, so both layouts resolve the same files.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function findRoot(start: string): string {
  for (let dir = start; ;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'proto'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`phalanx: no package root (a package.json beside proto/) above ${start}`);
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));

/** A path inside the package. */
export function packagePath(...parts: string[]): string {
  return path.join(PACKAGE_ROOT, ...parts);
}

/** True when this module was bundled (every module then shares the bundle's `import.meta.url`). */
export const BUNDLED = !import.meta.url.endsWith('.ts');

/**
 * The entry of a worker thread: in the sources a `.boot.mjs` beside the module (it registers tsx, whose loader
 * hooks threads do not inherit); in the bundle, the entry point of the same name in dist/.
 */
export function threadEntry(sourceDir: string, name: string): URL {
  return pathToFileURL(
    BUNDLED ? packagePath('dist', `${name}.mjs`) : packagePath(sourceDir, `${name}.boot.mjs`),
  );
}

/** The `phalanx` command this process runs as (re-executed to start workers). */
export const PHALANX_BIN = BUNDLED ? packagePath('dist', 'phalanx.mjs') : packagePath('bin', 'phalanx.js');
