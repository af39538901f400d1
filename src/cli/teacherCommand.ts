/**
 * `phalanx teacher report CKPT`: layer-importance scores and the SVD energy of tying plans for a transformer
 * teacher checkpoint (src/models/teacherReport.ts), as a table or JSON.
 */
import { loadCheckpoint } from '../checkpoint/modelCheckpoint.ts';
import { fromNamedTensors } from '../core/layout/namedTensors.ts';
import { BUNDLED_EXCERPT, encodeText, loadText, sequenceSplit, splitHeldOut } from '../data/text.ts';
import { createOps, defaultKernelChoice } from '../models/ops.ts';
import type { TyingEnergy } from '../models/recursion.ts';
import { createTransformer } from '../models/transformer.ts';
import { tf } from '../models/tf.ts';
import {
  DEFAULT_REPORT_RANKS,
  layerImportance,
  reportPlans,
  tyingEnergies,
  type SublayerImportance,
} from '../models/teacherReport.ts';
import { selectBackend } from '../worker/backend.ts';
import { TeacherReportError } from './teacherReportError.ts';

export { TeacherReportError };

export interface TeacherReportOptions {
  /** UTF-8 text whose held-out tail feeds the importance scores; default the bundled KJV excerpt. */
  text?: string;
  /** Sequences in the batch (default 16) and their length (default min(64, context)). */
  sequences?: number;
  seqLen?: number;
  blocks?: number[];
  ranks?: number[];
  json: boolean;
}

export interface TeacherReport {
  checkpoint: string;
  model: { dModel: number; layers: number; heads: number; ffn: number; vocab: number };
  text: { source: string; sequences: number; seqLen: number };
  importance: SublayerImportance[];
  ranks: number[];
  energy: TyingEnergy[];
}

export async function teacherReport(target: string, opts: TeacherReportOptions): Promise<TeacherReport> {
  const loaded = await loadCheckpoint(target);
  const spec = loaded.config.model;
  if (spec.kind !== 'transformer' || spec.recursion !== undefined || spec.moe !== undefined) {
    const what =
      spec.kind !== 'transformer'
        ? spec.kind
        : spec.recursion !== undefined
          ? 'recursive transformer'
          : 'mixture-of-experts transformer';
    throw new TeacherReportError(
      `${loaded.dir} holds a ${what}; a teacher report needs a plain transformer checkpoint`,
    );
  }
  const params = fromNamedTensors(loaded.tensors, createTransformer(spec).layout);
  const seqLen = opts.seqLen ?? Math.min(64, spec.context);
  if (seqLen > spec.context)
    throw new TeacherReportError(`--seq-len ${seqLen} exceeds the model's context ${spec.context}`);
  const text =
    opts.text === undefined
      ? {
          text: loadText({ source: BUNDLED_EXCERPT }).text,
          source: `bundled KJV excerpt (${BUNDLED_EXCERPT})`,
        }
      : loadText({ source: opts.text });
  const { heldOut } = splitHeldOut(encodeText(text.text, spec.vocab));
  const batch = sequenceSplit(heldOut, seqLen, opts.sequences ?? 16);
  await selectBackend('auto');
  const ops = createOps(defaultKernelChoice(tf.getBackend()));
  const ranks = opts.ranks ?? DEFAULT_REPORT_RANKS;
  return {
    checkpoint: loaded.dir,
    model: {
      dModel: spec.dModel,
      layers: spec.layers,
      heads: spec.heads,
      ffn: spec.ffn,
      vocab: spec.vocab.length,
    },
    text: { source: text.source, sequences: batch.count, seqLen },
    importance: layerImportance(spec, params, batch.images, batch.count, ops),
    ranks,
    energy: tyingEnergies(spec, params, reportPlans(spec.layers, opts.blocks), ranks),
  };
}

export function formatTeacherReport(r: TeacherReport): string {
  const f = (x: number) => x.toFixed(4);
  const lines = [
    `teacher ${r.checkpoint}: d${r.model.dModel} L${r.model.layers} H${r.model.heads} ffn${r.model.ffn} V${r.model.vocab}`,
    '',
    `layer importance 1 − cos(X, X + f(LN X)), mean over ${r.text.sequences}×${r.text.seqLen} held-out tokens of ${r.text.source}`,
    'layer  attn    mlp',
    ...r.importance.map((s) => `${String(s.layer).padEnd(6)} ${f(s.attn)}  ${f(s.mlp)}`),
    '',
    'SVD energy of the tied layers\u2019 residuals R = W_teacher − W_shared: ‖R‖²/‖W‖², and the fraction of ‖R‖² a rank-r LoRA captures',
    [
      'K',
      'schedule'.padEnd(12),
      'init'.padEnd(8),
      '‖R‖²/‖W‖²',
      ...r.ranks.map((k) => `r=${k}`.padEnd(6)),
    ].join('  '),
  ];
  for (const e of r.energy) {
    lines.push(
      [
        String(e.blocks),
        e.schedule.padEnd(12),
        e.init.padEnd(8),
        f(e.residualFraction).padEnd(9),
        ...e.captured.map((c) => f(c.fraction).padEnd(6)),
      ].join('  '),
    );
  }
  if (r.energy.length === 0) lines.push('(no tying plan: the teacher has a single layer)');
  return lines.join('\n');
}

export async function teacherReportCommand(target: string, opts: TeacherReportOptions): Promise<void> {
  const report = await teacherReport(target, opts);
  process.stdout.write(
    opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatTeacherReport(report)}\n`,
  );
}
