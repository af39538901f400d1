/**
 * bench:store — rounds per second of the same job on the Redis state store against the embedded memory store,
 * measured in this run. Each repetition launches the job twice, back to back (memory, then Redis on a fresh key
 * prefix): a coordinator in this process and worker processes over loopback gRPC, checkpoints every 10 rounds.
 * Round rate is taken from the persisted round reports after a warm-up, so process start-up is not counted; the
 * longest gap between two rounds shows stalls.
 *
 *   npm run bench:store [-- --reps 3 --rounds 80 --workers 4 --redis-url redis://127.0.0.1:6379 --json FILE]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { launch } from '../src/cli/launch.ts';
import type { RoundReport } from '../src/coordinator/roundReport.ts';
import type { StateStoreConfig } from '../src/coordinator/state/index.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const REPS = Number(flag('--reps') ?? 3);
const ROUNDS = Number(flag('--rounds') ?? 80);
const WORKERS = Number(flag('--workers') ?? 4);
const REDIS_URL = flag('--redis-url') ?? process.env['PHALANX_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const JSON_OUT = flag('--json');
const WARMUP = 10;

interface Run {
  store: string;
  roundsPerSecond: number;
  medianRoundMs: number;
  maxGapMs: number;
  state: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function once(store: StateStoreConfig, label: string): Promise<Run> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-bench-store-'));
  const finished: number[] = [];
  try {
    const report = await launch({
      spec: {
        name: 'bench-store',
        seed: 1,
        model: { kind: 'mlp', hidden: [32] },
        data: { batchSize: 16, maxTrain: 2000, maxTest: 200 },
        optimizer: { kind: 'sgd', lr: 0.05 },
        rounds: ROUNDS,
        workers: { min: WORKERS, max: WORKERS, roundTimeout: '30s', heartbeatTtl: '30s' },
        aggregation: { rule: 'median', f: 1 },
        evaluation: { every: 0, limit: 200 },
        checkpoint: { every: 10, keep: 2 },
      },
      workers: WORKERS,
      byzantine: 0,
      attack: 'signflip',
      store,
      port: 0,
      dataDir: dir,
      quiet: true,
      onRound: (r: RoundReport) => {
        finished[r.round] = r.finishedAtMs;
      },
    });
    const times = finished.slice(WARMUP).filter((t) => t !== undefined);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    const span = (times[times.length - 1] - times[0]) / 1000;
    return {
      store: label,
      roundsPerSecond: (times.length - 1) / span,
      medianRoundMs: median(gaps),
      maxGapMs: Math.max(...gaps),
      state: report.state,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    throw new Error(`bench:store needs Redis at ${REDIS_URL}: ${(e as Error).message}`, { cause: e });
  }
  process.stderr.write(
    `bench:store — ${REPS} repetitions × (memory, redis), ${ROUNDS} rounds, ${WORKERS} worker processes, ` +
      `rate over rounds ${WARMUP}..${ROUNDS - 1}\n`,
  );
  const runs: Run[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const mem = await once({ kind: 'memory' }, 'memory');
    const prefix = `phalanx-bench-${randomBytes(4).toString('hex')}:`;
    const red = await once({ kind: 'redis', url: REDIS_URL, keyPrefix: prefix }, 'redis');
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    runs.push(mem, red);
    process.stderr.write(
      `  rep ${rep + 1}: memory ${mem.roundsPerSecond.toFixed(1)} r/s (max gap ${mem.maxGapMs} ms), ` +
        `redis ${red.roundsPerSecond.toFixed(1)} r/s (max gap ${red.maxGapMs} ms)\n`,
    );
  }
  await redis.quit();
  const of = (store: string) => runs.filter((r) => r.store === store);
  const row = (store: string) => {
    const rs = of(store);
    return {
      rate: median(rs.map((r) => r.roundsPerSecond)),
      round: median(rs.map((r) => r.medianRoundMs)),
      gap: Math.max(...rs.map((r) => r.maxGapMs)),
      ok: rs.every((r) => r.state === 'completed'),
    };
  };
  const mem = row('memory');
  const red = row('redis');
  const lines = [
    '| store | rounds/s (median) | median round (ms) | longest gap (ms) | all completed | slowdown vs memory |',
    '|---|---|---|---|---|---|',
    `| memory (baseline) | ${mem.rate.toFixed(1)} | ${mem.round} | ${mem.gap} | ${mem.ok} | 1.00× |`,
    `| redis | ${red.rate.toFixed(1)} | ${red.round} | ${red.gap} | ${red.ok} | ${(mem.rate / red.rate).toFixed(2)}× |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (JSON_OUT) writeFileSync(JSON_OUT, `${JSON.stringify({ runs, memory: mem, redis: red }, null, 2)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:store failed: ${(e as Error).message}\n`);
  process.exit(1);
});
