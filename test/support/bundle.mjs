// Mocha global setup: builds dist/ (scripts/build.mjs) once per test run, before any test file loads, so the
// processes the integration tests spawn start from the bundle of the sources under test (processes.ts BIN).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export function mochaGlobalSetup() {
  execFileSync(process.execPath, [fileURLToPath(new URL('../../scripts/build.mjs', import.meta.url))], {
    stdio: 'inherit',
  });
}
