import { expect } from 'chai';
import { validateJobSpec } from '../../../src/config/jobSpec.ts';
import { WorkerCompressor, sessionSpec } from '../../../src/core/compression/compressionSession.ts';
import { CoordinatorCompression } from '../../../src/coordinator/coordinatorCompression.ts';
import { modelLayout } from '../../../src/models/registry.ts';
import { planFromWire, planToWire } from '../../../src/transport/planWire.ts';

const layout = modelLayout({ kind: 'mlp', hidden: [16] });

describe('coordinator: compression state of a job', () => {
  it('none has no state; uniform and lgreco start from the baseline plan at the start round', () => {
    expect(CoordinatorCompression.create(validateJobSpec({}), layout, 0)).to.equal(undefined);
    const c = CoordinatorCompression.create(
      validateJobSpec({ compression: { kind: 'uniform', baseline: { kind: 'qsgd' } } }),
      layout,
      7,
    )!;
    expect(c.authority.plan.planId).to.equal('baseline-r7');
    expect(c.wirePlan().layers!.map((l) => [l.encoding, l.bits, l.bucket])).to.deep.equal(
      layout.layers.map(() => ['ENCODING_QSGD_PACKED', 4, 128]),
    );
  });

  it('the wire plan reads back to the same plan; malformed plans are refused before use', () => {
    for (const baseline of [
      { kind: 'topk', density: 0.1, values: 'fp32' },
      { kind: 'randk', density: 0.2 },
      { kind: 'powersgd', rank: 2, values: 'fp32' },
      { kind: 'powersgd', rank: 2, values: 'int8' },
      { kind: 'powersgd', rank: 1, values: 'int4' },
      { kind: 'bf16' },
    ] as const) {
      const c = CoordinatorCompression.create(
        validateJobSpec({ compression: { kind: 'uniform', baseline } }),
        layout,
        0,
      )!;
      expect(planFromWire(planToWire(c.authority.plan), layout)).to.deep.equal(c.authority.plan);
    }
    const good = planToWire(
      CoordinatorCompression.create(validateJobSpec({ compression: { kind: 'lgreco' } }), layout, 0)!
        .authority.plan,
    );
    expect(() => planFromWire(undefined, layout)).to.throw(/no compression plan/);
    expect(() => planFromWire({ ...good, layers: good.layers!.slice(1) }, layout)).to.throw(
      /3 settings for 4/,
    );
    const bad = { ...good, layers: good.layers!.map((l, i) => (i === 0 ? { ...l, rank: 10_000 } : l)) };
    expect(() => planFromWire(bad, layout)).to.throw(/rank = 10000 outside/);
    const unknown = {
      ...good,
      layers: good.layers!.map((l, i) => (i === 0 ? { encoding: 'ENCODING_PLANNED' as const } : l)),
    };
    expect(() => planFromWire(unknown, layout)).to.throw(/layer 0 has an unknown setting/);
    // integer codes are factor values only: a topk layer with them is unknown
    const codedTopk = {
      ...good,
      layers: good.layers!.map((l, i) =>
        i === 0
          ? { encoding: 'ENCODING_TOPK_VARINT_BF16' as const, k: 3, values: 'ENCODING_INT8_CODES' as const }
          : l,
      ),
    };
    expect(() => planFromWire(codedTopk, layout)).to.throw(/layer 0 has an unknown setting/);
  });

  it('closes a round: traffic of the accepted pushes, and on a table round the next plan from their tables', () => {
    const spec = validateJobSpec({ seed: 3, compression: { kind: 'lgreco', warmup: 2, window: 5 } });
    const c = CoordinatorCompression.create(spec, layout, 0)!;
    const s = sessionSpec(spec.compression)!;
    const workers = [0, 1, 2].map((r) => new WorkerCompressor(s, layout, spec.seed, r));
    const g = Float32Array.from({ length: layout.totalSize }, (_, i) => Math.sin(i * 0.37));
    expect(c.wirePlan().planId).to.equal('baseline-r0'); // what GetRound sends before the re-plan
    for (let round = 0; round < 3; round++) {
      const plan = c.authority.plan;
      const pushes = workers.map((w) => {
        const table = c.authority.tableDue(round) ? w.errorTable(round, g) : undefined;
        const layerBytes = w.encode(plan, round, g).map((b) => b.length);
        return { layerBytes, ...(table ? { table } : {}) };
      });
      // an absent payload (a dense delivery) is ignored
      const report = c.closeRound(round, [...pushes, undefined]);
      expect(report.planId).to.equal(plan.planId);
      expect(report.pushes).to.equal(3);
      expect(report.layerBytes).to.deep.equal(pushes[0].layerBytes.map((b) => 3 * b));
      expect(report.ratio).to.be.closeTo((3 * 4 * layout.totalSize) / report.bytes, 1e-9);
      expect(report.nextPlanId).to.equal(round === 2 ? 'lgreco-r3' : '');
    }
    expect(c.authority.plan.planId).to.equal('lgreco-r3');
    expect(c.authority.current.tables).to.equal(3);
    expect(c.wirePlan().planId).to.equal('lgreco-r3');
  });

  it('a checkpoint keeps the plan: restored as saved, refused when it does not fit the spec', () => {
    const spec = validateJobSpec({ seed: 3, compression: { kind: 'lgreco', warmup: 0, window: 5 } });
    const c = CoordinatorCompression.create(spec, layout, 0)!;
    const s = sessionSpec(spec.compression)!;
    const g = Float32Array.from({ length: layout.totalSize }, (_, i) => Math.cos(i * 0.11));
    const w = new WorkerCompressor(s, layout, spec.seed, 0);
    c.closeRound(0, [{ layerBytes: [], table: w.errorTable(0, g) }]);
    expect(c.authority.plan.planId).to.equal('lgreco-r1');
    const saved = c.saveState();
    // the re-plan's candidate tables are reported, not checkpointed
    expect(c.authority.history[1].decision?.layers).to.have.length(layout.layers.length);
    expect((JSON.parse(saved) as { history: object[] }).history.some((h) => 'decision' in h)).to.equal(false);
    const resumed = CoordinatorCompression.create(spec, layout, 4, saved)!;
    expect(resumed.authority.plan).to.deep.equal(c.authority.plan);
    expect(resumed.wirePlan()).to.deep.equal(c.wirePlan());
    expect(resumed.authority.history.map((h) => h.planId)).to.deep.equal(['baseline-r0', 'lgreco-r1']);
    expect(Number.isNaN(resumed.authority.history[0].budgetUsed)).to.equal(true);
    // another baseline rank: the saved settings are not this spec's candidates
    const other = validateJobSpec({
      seed: 3,
      compression: { kind: 'lgreco', baseline: { kind: 'qsgd', bits: 4 }, compressors: ['qsgd'] },
    });
    expect(() => CoordinatorCompression.create(other, layout, 4, saved)).to.throw(/not a candidate/);
    const uniform = validateJobSpec({ compression: { kind: 'uniform' } });
    expect(() => CoordinatorCompression.create(uniform, layout, 4, saved)).to.throw(/not a candidate/);
  });
});
