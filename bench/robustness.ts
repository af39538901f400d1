/**
 * Robustness benchmark (npm run bench:robustness [-- options]): accuracy of each aggregation rule under each
 * attack, in the Fashion-MNIST setup of ByzFL's published benchmark, so the numbers sit next to that reference run.
 *
 * Setup (every cell): Fashion-MNIST (full 60k/10k when installed), IID shards, pixels in [0, 1], random
 * horizontal flips; the 431,080-parameter CNN; 800 rounds; batch 25 per worker; SGD lr 0.1, no server momentum,
 * weight decay 1e-4 (applied by the server optimizer); worker momentum 0.9 (m ← 0.9·m + 0.1·g); test accuracy on
 * the whole test set every 100 rounds; seed 0.
 * Workers: 10 honest + 2 Byzantine (n = 12, declared f = 2); attack 'none' = the 10 honest workers only (ByzFL's
 * clean reference). Byzantine workers are the highest ranks; omniscient attacks see all honest vectors of the
 * round and both send the same vector (see src/simulation/simulate.ts).
 *
 * Rules: mean · median · tm-clip-nnm (trimmedMean after clip(c = 2) then nnm, ByzFL's Clipping+NNM pipeline) ·
 *   krum · gm (geometricMedian) · cc (centeredClipping) · flag-ref (flag, mode 'reference': one IRLS step, r = 1,
 *   no y0 = uniform start weights, the documented high-dimension limit of the FA code's random Y₀) · flag (Phalanx
 *   defaults of src/core/aggregation/flag/options.ts at the time of the run).
 * Attacks: none · signflip (−μ, ByzFL SignFlipping) · alie (τ = 1.5: μ + 1.5σ, ByzFL's form as in the reference run;
 *   the paper's z for n = 12, f = 2 would be 0.21) · ipm (ε = 2: −2μ) · minmax (σ direction, γ search) ·
 *   labelflip (each Byzantine worker trains on its shard with y → 9 − y, data-side) · gaussian (N(0, 1)).
 *
 * Each cell runs `phalanx simulate` in a child process (`--parallel` at a time; one tfjs/wasm thread each).
 *
 * Options:
 *   --full              every rule × every attack (default: the required cells, REQUIRED below)
 *   --cells a,b         cell ids rule/attack (e.g. flag/alie, 'flag/*', '*' /none); --list shows them
 *   --rounds N          override the 800 rounds (quick cost checks); --eval-every N (default 100)
 *   --parallel K        cells at a time (default 2)
 *   --seed S            default 0
 *   --backend NAME      tfjs backend of the children (default: what a worker picks)
 *   --json FILE         write all results (updated after every cell)
 *   --out DIR           cell specs, reports and logs (default: a fresh directory under the OS temp dir)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { validateJobSpec, type JobSpecInput } from '../src/config/jobSpec.ts';
import { FLAG_DEFAULTS } from '../src/core/aggregation/flag/options.ts';
import type { SimulationReport } from '../src/simulation/report.ts';

const BIN = fileURLToPath(new URL('../bin/phalanx.js', import.meta.url));

interface RuleDef {
  key: string;
  label: string;
  rule: string;
  pre: string[];
  options: Record<string, unknown>;
}

interface AttackDef {
  key: string;
  label: string;
  /** Registry name (none = no Byzantine workers). */
  attack: string | null;
  options: Record<string, unknown>;
}

const RULES: RuleDef[] = [
  { key: 'mean', label: 'mean', rule: 'mean', pre: [], options: {} },
  { key: 'median', label: 'median', rule: 'median', pre: [], options: {} },
  {
    key: 'tm-clip-nnm',
    label: 'trimmedMean+clip+nnm',
    rule: 'trimmedMean',
    pre: ['clip', 'nnm'],
    options: {},
  },
  { key: 'krum', label: 'krum', rule: 'krum', pre: [], options: {} },
  { key: 'gm', label: 'geometricMedian', rule: 'geometricMedian', pre: [], options: {} },
  { key: 'cc', label: 'centeredClipping', rule: 'centeredClipping', pre: [], options: {} },
  { key: 'flag-ref', label: 'flag reference', rule: 'flag', pre: [], options: { mode: 'reference' } },
  { key: 'flag', label: 'flag (defaults)', rule: 'flag', pre: [], options: {} },
];

const ATTACKS: AttackDef[] = [
  { key: 'none', label: 'none', attack: null, options: {} },
  { key: 'signflip', label: 'signflip −μ', attack: 'signflip', options: {} },
  { key: 'alie', label: 'alie τ=1.5', attack: 'alie', options: { tau: 1.5 } },
  { key: 'ipm', label: 'ipm ε=2', attack: 'ipm', options: { epsilon: 2 } },
  { key: 'minmax', label: 'minmax', attack: 'minmax', options: {} },
  { key: 'labelflip', label: 'labelflip', attack: 'labelflip', options: {} },
  { key: 'gaussian', label: 'gaussian σ=1', attack: 'gaussian', options: {} },
];

const REQUIRED = [
  'mean/none',
  'tm-clip-nnm/signflip',
  'tm-clip-nnm/alie',
  'tm-clip-nnm/ipm',
  'flag/signflip',
  'flag/alie',
  'flag/ipm',
  'flag/minmax',
  'flag/labelflip',
  'flag/gaussian',
  'flag-ref/signflip',
  'flag-ref/alie',
  'flag-ref/ipm',
];

/** ByzFL's own pipeline on this machine (robust-aggregation.md §4.2): test accuracy at these steps. */
const REFERENCE_STEPS = [100, 200, 400, 600, 800];
const REFERENCES: Record<string, number[]> = {
  'mean/none': [0.668, 0.718, 0.802, 0.825, 0.847],
  'tm-clip-nnm/signflip': [0.674, 0.715, 0.76, 0.786, 0.825],
  'tm-clip-nnm/alie': [0.665, 0.74, 0.798, 0.83, 0.837],
  'tm-clip-nnm/ipm': [0.68, 0.715, 0.762, 0.795, 0.817],
};

const HONEST = 10;
const BYZANTINE = 2;

interface Cell {
  id: string;
  rule: RuleDef;
  attack: AttackDef;
  spec: JobSpecInput;
}

interface CellResult {
  id: string;
  rule: string;
  attack: string;
  wallSeconds: number;
  report?: SimulationReport;
  error?: string;
}

function parseCli() {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: {
      full: { type: 'boolean', default: false },
      cells: { type: 'string' },
      list: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      'eval-every': { type: 'string' },
      parallel: { type: 'string', default: '2' },
      seed: { type: 'string', default: '0' },
      backend: { type: 'string' },
      json: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const int = (v: string | undefined, flag: string, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) throw new Error(`${flag} must be an integer ≥ ${min} (got '${v}')`);
    return x;
  };
  return {
    full: values.full!,
    cells: values.cells,
    list: values.list!,
    rounds: int(values.rounds, '--rounds', 1) ?? 800,
    evalEvery: int(values['eval-every'], '--eval-every', 0) ?? 100,
    parallel: int(values.parallel, '--parallel', 1)!,
    seed: int(values.seed, '--seed', 0)!,
    backend: values.backend,
    json: values.json,
    out: values.out,
  };
}

type Args = ReturnType<typeof parseCli>;

function cellSpec(rule: RuleDef, attack: AttackDef, args: Args): JobSpecInput {
  const byzantine = attack.attack ? BYZANTINE : 0;
  const n = HONEST + byzantine;
  return {
    name: `robustness-${rule.key}-${attack.key}`,
    seed: args.seed,
    model: { kind: 'cnn' },
    data: { kind: 'fashion-mnist', batchSize: 25, flip: true },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 1e-4 },
    rounds: args.rounds,
    workers: { min: n, max: n, momentum: 0.9 },
    aggregation: { rule: rule.rule, f: BYZANTINE, pre: rule.pre, options: rule.options },
    checkpoint: { every: 0 },
    evaluation: { every: args.evalEvery },
    simulate: {
      byzantine: { count: byzantine, attack: attack.attack ?? 'signflip', options: attack.options },
    },
  };
}

function allCells(args: Args): Cell[] {
  const cells: Cell[] = [];
  for (const rule of RULES) {
    for (const attack of ATTACKS) {
      cells.push({ id: `${rule.key}/${attack.key}`, rule, attack, spec: cellSpec(rule, attack, args) });
    }
  }
  return cells;
}

function selectCells(args: Args): Cell[] {
  const all = allCells(args);
  if (args.full) return all;
  const ids = args.cells
    ? args.cells
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : REQUIRED;
  const picked: Cell[] = [];
  for (const pattern of ids) {
    const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
    const matches = all.filter((c) => re.test(c.id));
    if (matches.length === 0) {
      throw new Error(
        `no cell matches '${pattern}' (cells are rule/attack: ${all.map((c) => c.id).join(', ')})`,
      );
    }
    for (const c of matches) if (!picked.includes(c)) picked.push(c);
  }
  return picked;
}

/** Runs one cell as `phalanx simulate` in a child process. */
function runCell(cell: Cell, args: Args, dir: string, children: Set<ChildProcess>): Promise<CellResult> {
  const base = path.join(dir, cell.id.replace('/', '__'));
  const config = `${base}.json`;
  const reportFile = `${base}.report.json`;
  writeFileSync(config, `${JSON.stringify(cell.spec, null, 2)}\n`);
  const cliArgs = [BIN, 'simulate', '--config', config, '--report', reportFile];
  if (args.backend) cliArgs.push('--backend', args.backend);
  const started = performance.now();
  const child = spawn(process.execPath, cliArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: '1' },
  });
  children.add(child);
  let log = '';
  let pending = '';
  const onData = (b: Buffer) => {
    const text = b.toString();
    log += text;
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.trim()) console.log(`[${cell.id}] ${line}`);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      writeFileSync(`${base}.log`, log);
      const wallSeconds = (performance.now() - started) / 1000;
      const result: CellResult = {
        id: cell.id,
        rule: cell.rule.label,
        attack: cell.attack.label,
        wallSeconds,
      };
      if (code === 0) {
        try {
          result.report = JSON.parse(readFileSync(reportFile, 'utf8')) as SimulationReport;
        } catch (e) {
          result.error = `no report: ${(e as Error).message}`;
        }
      } else {
        const tail =
          log
            .trim()
            .split('\n')
            .filter((l) => l.startsWith('phalanx:'))
            .at(-1) ?? log.trim().split('\n').at(-1);
        result.error = `exit ${code ?? signal}: ${tail ?? ''}`;
      }
      resolve(result);
    });
  });
}

const fmt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '  –  ' : x.toFixed(3));

function printTable(cells: Cell[], results: Map<string, CellResult>, args: Args): void {
  const steps: number[] = [];
  if (args.evalEvery > 0) for (let s = args.evalEvery; s <= args.rounds; s += args.evalEvery) steps.push(s);
  if (steps.at(-1) !== args.rounds) steps.push(args.rounds);
  const head = [
    'rule'.padEnd(22),
    'attack'.padEnd(13),
    ...steps.map((s) => String(s).padStart(5)),
    ' final',
    'worst',
    ' byz∈',
    'wall s',
  ];
  const lines = [head.join(' ')];
  const row = (rule: string, attack: string, accs: (number | undefined)[], rest: string[]) =>
    [rule.padEnd(22), attack.padEnd(13), ...accs.map((a) => fmt(a).padStart(5)), ...rest].join(' ');
  for (const cell of cells) {
    const r = results.get(cell.id);
    const rep = r?.report;
    if (!r) {
      lines.push(
        row(
          cell.rule.label,
          cell.attack.label,
          steps.map(() => undefined),
          ['(not run)'],
        ),
      );
      continue;
    }
    if (!rep) {
      lines.push(
        row(
          cell.rule.label,
          cell.attack.label,
          steps.map(() => undefined),
          [`FAILED ${r.error ?? ''}`],
        ),
      );
      continue;
    }
    const at = (s: number) => rep.evaluations.find((e) => e.round === s)?.accuracy;
    const byz = rep.byzantine ? `${(rep.health.byzantineInclusion * 100).toFixed(0)}%`.padStart(5) : '   – ';
    lines.push(
      row(cell.rule.label, cell.attack.label, steps.map(at), [
        fmt(rep.finalAccuracy).padStart(6),
        fmt(rep.worstAccuracy).padStart(5),
        byz,
        r.wallSeconds.toFixed(0).padStart(6),
      ]),
    );
    const ref = REFERENCES[cell.id];
    if (ref) {
      const refAt = (s: number) => {
        const i = REFERENCE_STEPS.indexOf(s);
        return i >= 0 ? ref[i] : undefined;
      };
      lines.push(row('  ByzFL reference', '', steps.map(refAt), [fmt(ref.at(-1)).padStart(6)]));
    }
  }
  console.log(
    `\nTest accuracy (full test set) after each evaluation; final = after round ${args.rounds}; worst = lowest evaluation;`,
  );
  console.log(
    'byz∈ = share of (Byzantine worker, round) pairs whose vector the aggregate included (weight > 0).\n',
  );
  console.log(lines.join('\n'));

  // Worst case over the attacks each rule was run against (ByzFL's summary statistic; 'none' excluded).
  const byRule = new Map<string, { acc: number; attack: string; count: number }>();
  for (const cell of cells) {
    const rep = results.get(cell.id)?.report;
    if (!rep || cell.attack.attack === null) continue;
    const cur = byRule.get(cell.rule.label);
    if (!cur) byRule.set(cell.rule.label, { acc: rep.finalAccuracy, attack: cell.attack.label, count: 1 });
    else {
      cur.count++;
      if (rep.finalAccuracy < cur.acc)
        Object.assign(cur, { acc: rep.finalAccuracy, attack: cell.attack.label });
    }
  }
  if (byRule.size > 0) {
    console.log('\nWorst case over attacks (final accuracy):');
    for (const [rule, w] of byRule) {
      const ref =
        rule === 'trimmedMean+clip+nnm' ? '   (ByzFL reference over signflip/alie/ipm: 0.817, ipm)' : '';
      console.log(`  ${rule.padEnd(22)} ${fmt(w.acc)}  under ${w.attack} (of ${w.count} attacks)${ref}`);
    }
  }
}

async function main(): Promise<void> {
  const args = parseCli();
  const cells = selectCells(args);
  if (args.list) {
    for (const c of allCells(args)) console.log(`${c.id}${REQUIRED.includes(c.id) ? '  (required)' : ''}`);
    return;
  }
  for (const c of cells) validateJobSpec(c.spec);
  const dir = args.out ?? mkdtempSync(path.join(os.tmpdir(), 'phalanx-robustness-'));
  mkdirSync(dir, { recursive: true });
  console.log(
    `robustness: ${cells.length} cells × ${args.rounds} rounds (CNN, n = ${HONEST} + ${BYZANTINE}, f = ${BYZANTINE}, ` +
      `batch 25, worker momentum 0.9, SGD lr 0.1 wd 1e-4, seed ${args.seed}), ${args.parallel} at a time; files in ${dir}`,
  );
  const results = new Map<string, CellResult>();
  const children = new Set<ChildProcess>();
  process.once('SIGINT', () => {
    for (const c of children) c.kill('SIGTERM');
    process.exit(130);
  });
  const save = () => {
    if (!args.json) return;
    mkdirSync(path.dirname(path.resolve(args.json)), { recursive: true });
    const out = {
      benchmark: 'robustness',
      // The flag cells run with the defaults of this checkout (they are being tuned).
      flagDefaults: FLAG_DEFAULTS,
      setup: {
        rounds: args.rounds,
        evalEvery: args.evalEvery,
        seed: args.seed,
        honest: HONEST,
        byzantine: BYZANTINE,
      },
      references: {
        source: "ByzFL's published Fashion-MNIST benchmark (same setup)",
        steps: REFERENCE_STEPS,
        cells: REFERENCES,
      },
      cells: cells.map((c) => ({ spec: c.spec, ...(results.get(c.id) ?? { id: c.id, pending: true }) })),
    };
    writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  };
  const queue = [...cells];
  const worker = async () => {
    for (let cell = queue.shift(); cell; cell = queue.shift()) {
      console.log(`[${cell.id}] start`);
      const r = await runCell(cell, args, dir, children);
      results.set(cell.id, r);
      console.log(
        `[${cell.id}] ${r.report ? `done: final accuracy ${fmt(r.report.finalAccuracy)}` : `FAILED: ${r.error}`} (${r.wallSeconds.toFixed(0)} s)`,
      );
      save();
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.parallel, cells.length) }, worker));
  printTable(cells, results, args);
  if (args.json) console.log(`\nresults written to ${args.json}`);
  if ([...results.values()].some((r) => !r.report)) process.exitCode = 1;
}

await main();
