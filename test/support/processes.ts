/**
 * Spawns real coordinator and worker processes for integration tests. They run the bundle of the sources under test
 * (dist/phalanx.mjs, built by test/support/bundle.mjs before any test file loads): the same command as
 * bin/phalanx.js, which compiles the TypeScript at every start and so costs ≈ 1.5 s more CPU per process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BIN = fileURLToPath(new URL('../../dist/phalanx.mjs', import.meta.url));

export interface Proc {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** The exit code once the process has exited and its output has been read to the end (null: a signal). */
  exit(): Promise<number | null>;
}

/** Where a process runs: `netns` names a network namespace (`ip netns exec` execs node in place, same pid). */
export interface ProcessPlace {
  netns?: string;
}

export function startProcess(
  args: string[],
  env: Record<string, string> = {},
  place: ProcessPlace = {},
): Proc {
  const [cmd, argv] = place.netns
    ? ['ip', ['netns', 'exec', place.netns, process.execPath, BIN, ...args]]
    : [process.execPath, [BIN, ...args]];
  const child = spawn(cmd, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let text = '';
  const waiters: (() => void)[] = [];
  const onData = (b: Buffer) => {
    text += b.toString();
    if (process.env['PHALANX_TEST_VERBOSE']) process.stderr.write(b);
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // 'exit' can come before the last output has been read from the pipes; 'close' comes after both.
  let closed = false;
  const closedWith = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      closed = true;
      resolve(code);
    }),
  );
  return {
    child,
    output: () => text,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern} in output:\n${text.slice(-3000)}`)),
          timeoutMs,
        );
        const check = () => {
          const m = text.match(pattern);
          if (m) {
            clearTimeout(t);
            resolve(m);
          } else if (closed) {
            clearTimeout(t);
            reject(new Error(`process exited (${child.exitCode}) before ${pattern}:\n${text.slice(-3000)}`));
          } else {
            waiters.push(check);
          }
        };
        check();
        child.once('close', () => waiters.push(check) && check());
      });
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
    exit: () => closedWith,
  };
}

/** Admin token of each coordinator started here, by address: workers started for it enroll with it. */
const adminTokens = new Map<string, string>();

/**
 * A coordinator in its own process, with its own data directory (unless `args` names one); resolves with its
 * address and the admin token it created there.
 */
export async function startCoordinatorProcess(
  args: string[] = [],
  env: Record<string, string> = {},
  place: ProcessPlace = {},
): Promise<{ proc: Proc; address: string; port: number; adminToken: string; dataDir: string }> {
  const i = args.indexOf('--data-dir');
  const dataDir = i >= 0 ? args[i + 1] : tmpDir('data');
  const proc = startProcess(
    [
      'coordinator',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      ...(i >= 0 ? [] : ['--data-dir', dataDir]),
      ...args,
    ],
    env,
    place,
  );
  const m = await proc.waitFor(/coordinator listening on ([\d.]+):(\d+)/, 60_000);
  const address = `${m[1]}:${m[2]}`;
  await proc.waitFor(/admin token (created in|read from)/, 10_000);
  const adminToken = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  adminTokens.set(address, adminToken);
  return { proc, address, port: Number(m[2]), adminToken, dataDir };
}

/** The admin token of a coordinator started here (undefined for one started elsewhere). */
export function adminTokenFor(address: string): string | undefined {
  return adminTokens.get(address);
}

/** A worker process; it enrolls with `PHALANX_TOKEN` from `env`, else with its coordinator's admin token. */
export function startWorkerProcess(
  address: string,
  name: string,
  extra: string[] = [],
  env: Record<string, string> = {},
): Proc {
  const token = adminTokens.get(address);
  return startProcess(['worker', '--coordinator', address, '--name', name, '--once', ...extra], {
    ...(token ? { PHALANX_TOKEN: token } : {}),
    ...env,
  });
}

export function tmpDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `phalanx-${prefix}-`));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One JSON log line of a service process (see src/logging/logger.ts). */
export interface LogLine {
  level: string;
  time: string;
  component: string;
  msg: string;
  [field: string]: unknown;
}

/** The JSON log lines in a process's output (its other lines, e.g. stderr text, are skipped). */
export function logLines(output: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      // the last line may still be arriving
    }
  }
  return lines;
}
