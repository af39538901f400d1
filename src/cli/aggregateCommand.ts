/** `phalanx aggregate`: run a rule on vectors from a JSON file; a researcher's tool and a conformance check. */
import { readFileSync } from 'node:fs';
import { runAggregation } from '../core/aggregation/aggregateFile.ts';

export interface AggregateCliOptions {
  rule: string;
  input: string;
  f?: string;
  pre?: string;
  options?: string;
  output: string;
}

/** Prints the result; on any problem prints one line naming it and exits 2. */
export function aggregateCommand(opts: AggregateCliOptions): void {
  try {
    let file: { vectors?: unknown; f?: unknown; options?: unknown };
    try {
      file = JSON.parse(readFileSync(opts.input, 'utf8')) as typeof file;
    } catch (e) {
      throw new Error(`cannot read --input ${opts.input}: ${(e as Error).message}`, { cause: e });
    }
    if (typeof file !== 'object' || file === null)
      throw new Error('--input must hold a JSON object with "vectors"');
    let cliOptions: Record<string, unknown> = {};
    if (opts.options !== undefined) {
      try {
        cliOptions = JSON.parse(opts.options) as Record<string, unknown>;
      } catch (e) {
        throw new Error(`--options is not valid JSON: ${(e as Error).message}`, { cause: e });
      }
    }
    const f = opts.f !== undefined ? Number(opts.f) : file.f;
    const result = runAggregation({
      vectors: file.vectors as number[][],
      f: f as number,
      rule: opts.rule,
      pre: opts.pre
        ? opts.pre
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : [],
      options: { ...((file.options as Record<string, unknown>) ?? {}), ...cliOptions },
    });
    if (opts.output === 'json') {
      console.log(JSON.stringify(result));
      return;
    }
    console.log(`rule ${result.rule}`);
    console.log(`update [${result.update.map((v) => v.toPrecision(6)).join(', ')}]`);
    console.log('worker  included  trust    weight   reason');
    for (const w of result.workers) {
      console.log(
        `${String(w.index).padEnd(7)} ${String(w.included).padEnd(9)} ${w.trust.toFixed(4).padEnd(8)} ${w.weight.toFixed(4).padEnd(8)} ${w.reason ?? ''}`,
      );
    }
  } catch (e) {
    console.error(`phalanx aggregate: ${(e as Error).message.split('\n')[0]}`);
    process.exit(2);
  }
}
