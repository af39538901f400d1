/** `phalanx teacher report`, run as a user runs it (a separate process) on a checkpoint written to disk. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { saveCheckpoint } from '../../src/checkpoint/modelCheckpoint.ts';
import { toNamedTensors } from '../../src/core/layout/namedTensors.ts';
import { KJV_VOCABULARY } from '../../src/data/text.ts';
import { createModel } from '../../src/models/registry.ts';
import type { TransformerSpec } from '../../src/models/types.ts';
import { BIN, tmpDir } from '../support/processes.ts';

function phalanx(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('integration: phalanx teacher report', function () {
  this.timeout(180_000);
  const spec: TransformerSpec = {
    kind: 'transformer',
    vocab: KJV_VOCABULARY,
    dModel: 16,
    layers: 4,
    heads: 2,
    ffn: 32,
    context: 32,
  };
  let root: string;

  before(async () => {
    root = tmpDir('teacher-report');
    for (const [name, model] of [
      ['teacher', spec],
      ['student', { ...spec, recursion: { blocks: 2, schedule: 'cycle', init: 'lower', loraRank: 0 } }],
    ] as const) {
      const m = createModel(model);
      await saveCheckpoint(path.join(root, name), {
        config: { model },
        tensors: toNamedTensors(m.initialParameters(1), m.layout),
      });
    }
  });

  it('prints layer importance per sub-layer and the SVD energy of each tying plan as JSON and as a table', async () => {
    const json = await phalanx([
      'teacher',
      'report',
      path.join(root, 'teacher'),
      '--json',
      '--sequences',
      '4',
      '--seq-len',
      '16',
    ]);
    expect(json.code, json.stderr).to.equal(0);
    const report = JSON.parse(json.stdout) as {
      importance: { layer: number; attn: number; mlp: number }[];
      ranks: number[];
      energy: {
        blocks: number;
        schedule: string;
        init: string;
        captured: { rank: number; fraction: number }[];
      }[];
      text: { sequences: number; seqLen: number; source: string };
    };
    expect(report.importance.map((s) => s.layer)).to.deep.equal([0, 1, 2, 3]);
    for (const s of report.importance) {
      expect(s.attn).to.be.within(0, 2);
      expect(s.mlp).to.be.within(0, 2);
    }
    expect(report.text).to.deep.include({ sequences: 4, seqLen: 16 });
    expect(report.text.source).to.match(/bundled KJV excerpt/);
    expect(report.ranks).to.deep.equal([0, 4, 8, 16]);
    // L = 4: K ∈ {1, 2, 3} for cycle, K = 3 for middle-cycle, three inits each
    expect(report.energy.map((e) => `${e.blocks}/${e.schedule}`).filter((_, i) => i % 3 === 0)).to.deep.equal(
      ['1/cycle', '2/cycle', '3/cycle', '3/middle-cycle'],
    );
    for (const e of report.energy) {
      expect(e.captured[0].fraction).to.equal(0);
      expect(e.captured[3].fraction).to.be.closeTo(1, 1e-9); // rank 16 = d: full
    }
    const table = await phalanx([
      'teacher',
      'report',
      path.join(root, 'teacher'),
      '--sequences',
      '2',
      '--blocks',
      '2',
      '--ranks',
      '0,8',
    ]);
    expect(table.code, table.stderr).to.equal(0);
    expect(table.stdout).to.match(/layer\s+attn\s+mlp/);
    expect(table.stdout).to.match(/^2\s+cycle\s+average\s+[0-9.]+\s+0\.0000\s+[0-9.]+/m);
  });

  it('refuses a recursive checkpoint and bad options, exit 2 with the reason', async () => {
    const student = await phalanx(['teacher', 'report', path.join(root, 'student')]);
    expect(student.code).to.equal(2);
    expect(student.stderr).to.match(
      /holds a recursive transformer; a teacher report needs a plain transformer/,
    );
    const ranks = await phalanx(['teacher', 'report', path.join(root, 'teacher'), '--ranks', '4,x']);
    expect(ranks.code).to.equal(2);
    expect(ranks.stderr).to.match(/--ranks must be comma-separated integers/);
  });
});
