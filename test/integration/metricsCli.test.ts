/** `phalanx coordinator --metrics-port`: a bad value is a usage error (exit 2), a taken port one line (exit 1). */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { BIN, tmpDir } from '../support/processes.ts';

function phalanx(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });
}

describe('integration: coordinator --metrics-port', function () {
  this.timeout(60_000);
  const base = ['coordinator', '--insecure-open', '--host', '127.0.0.1', '--port', '0'];

  it('a port that is not a number in 0..65535 is a usage error naming the flag (exit 2)', async () => {
    for (const bad of ['abc', '70000']) {
      const { code, stderr } = await phalanx([
        ...base,
        '--data-dir',
        tmpDir('metrics-cli'),
        '--metrics-port',
        bad,
      ]);
      expect(stderr.trim()).to.match(new RegExp(`^phalanx: --metrics-port '${bad}': metrics port must be`));
      expect(code).to.equal(2);
    }
  });

  it('a taken metrics port: one line that says so, exit 1', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const { code, stderr } = await phalanx([
        ...base,
        '--data-dir',
        tmpDir('metrics-cli'),
        '--metrics-port',
        String(port),
      ]);
      expect(stderr.trim().split('\n')).to.deep.equal([
        `phalanx: cannot serve metrics on 127.0.0.1:${port}: the port is in use (choose another --metrics-port)`,
      ]);
      expect(code).to.equal(1);
    } finally {
      busy.close();
    }
  });
});
