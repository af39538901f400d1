/**
 * `phalanx certs create`: a CA and the certificates of one cluster, made with the openssl CLI (EC P-256).
 *
 *   ca.crt / ca.key           the cluster's CA (keep ca.key offline once the cluster is set up)
 *   server.crt / server.key   the coordinator; SANs localhost, 127.0.0.1, ::1 and every --hosts entry
 *   worker-<i>.crt / .key     one per worker: CN = the worker's name, OU = worker
 *   <name>.crt / .key         clients, CN = name, OU = role (admin by default; submitter, viewer)
 *
 * Under mutual TLS the CN is the identity: a worker's name is its certificate's CN, and OU is the role.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { parseRole, type Role } from '../coordinator/auth/roles.ts';

export interface CertsOptions {
  out: string;
  workers: number;
  /** Extra names and addresses of the coordinator (DNS names or IPs). */
  hosts: string[];
  /** Client certificates as name → role. */
  clients: { name: string; role: Role }[];
  days: number;
}

export class CertsError extends Error {}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function parseClients(text: string): { name: string; role: Role }[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [name, roleText = 'admin'] = entry.split(':');
      const role = parseRole(roleText);
      if (!NAME.test(name) || name === 'ca' || name === 'server' || /^worker-\d+$/.test(name))
        throw new CertsError(
          `--clients: '${name}' is not a valid client name (ca, server, worker-<i> are taken)`,
        );
      if (!role || role === 'worker')
        throw new CertsError(
          `--clients: role of '${name}' must be admin, submitter or viewer (got '${roleText}')`,
        );
      return { name, role };
    });
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer };
    if (err.code === 'ENOENT')
      throw new CertsError('the openssl command is not installed (apt-get install openssl)');
    throw new CertsError(`openssl ${args[0]} failed: ${err.stderr?.toString().trim() ?? String(e)}`);
  }
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createCertificates(o: CertsOptions): string[] {
  // Keys are never readable by others, not even between openssl writing them and the chmod.
  const umask = process.umask(0o077);
  try {
    return writeCertificates(o);
  } finally {
    process.umask(umask);
  }
}

function writeCertificates(o: CertsOptions): string[] {
  if (!Number.isInteger(o.workers) || o.workers < 0 || o.workers > 10_000)
    throw new CertsError('--workers must be an integer in [0, 10000]');
  if (!Number.isInteger(o.days) || o.days < 1 || o.days > 3650)
    throw new CertsError('--days must be an integer in [1, 3650]');
  for (const h of o.hosts)
    if (!isIP(h) && !/^[A-Za-z0-9.*-]{1,253}$/.test(h))
      throw new CertsError(`--hosts: '${h}' is not a host name or IP`);
  const out = path.resolve(o.out);
  if (existsSync(path.join(out, 'ca.key')))
    throw new CertsError(
      `${path.join(out, 'ca.key')} exists: choose another --out (a CA is never overwritten)`,
    );
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const file = (name: string) => path.join(out, name);
  const days = String(o.days);

  openssl([
    'req',
    '-x509',
    ...KEY,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    days,
    '-subj',
    '/CN=Phalanx cluster CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(file('ca.key'), 0o600);
  written.push(file('ca.crt'), file('ca.key'));

  const leaf = (base: string, subject: string, usage: 'serverAuth' | 'clientAuth', sans: string[]) => {
    const ext = file(`${base}.ext`);
    const csr = file(`${base}.csr`);
    writeFileSync(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        `extendedKeyUsage=${usage}`,
        ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
        '',
      ].join('\n'),
    );
    try {
      openssl(['req', '-new', ...KEY, '-keyout', file(`${base}.key`), '-out', csr, '-subj', subject]);
      chmodSync(file(`${base}.key`), 0o600);
      openssl([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        file('ca.crt'),
        '-CAkey',
        file('ca.key'),
        '-set_serial',
        `0x${randomBytes(12).toString('hex')}`,
        '-days',
        days,
        '-out',
        file(`${base}.crt`),
        '-extfile',
        ext,
      ]);
    } finally {
      rmSync(ext, { force: true });
      rmSync(csr, { force: true });
    }
    written.push(file(`${base}.crt`), file(`${base}.key`));
  };

  const hosts = ['localhost', '127.0.0.1', '::1', ...o.hosts];
  const sans = [...new Set(hosts)].map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`));
  leaf('server', '/CN=phalanx-coordinator', 'serverAuth', sans);
  for (let i = 0; i < o.workers; i++) leaf(`worker-${i}`, `/CN=worker-${i}/OU=worker`, 'clientAuth', []);
  for (const c of o.clients) leaf(c.name, `/CN=${c.name}/OU=${c.role}`, 'clientAuth', []);
  return written;
}
