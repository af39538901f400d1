/** The `phalanx` command's basics as a user meets them: exit codes, one-line errors, --version, help text. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BIN } from '../support/processes.ts';

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
});
