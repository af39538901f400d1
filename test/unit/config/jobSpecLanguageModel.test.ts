import { expect } from 'chai';
import { JobSpecError, validateJobSpec } from '../../../src/config/jobSpec.ts';
import { KJV_VOCABULARY } from '../../../src/data/text.ts';

function issues(value: unknown): string[] {
  try {
    validateJobSpec(value);
  } catch (e) {
    expect(e).to.be.instanceOf(JobSpecError);
    return (e as JobSpecError).issues;
  }
  throw new Error(`accepted: ${JSON.stringify(value)}`);
}

const lm = { model: { kind: 'transformer' }, data: { kind: 'text' } };

describe('config: job spec for the language-model task', () => {
  it('a transformer on text gets small defaults, the KJV vocabulary and seqLen 64', () => {
    const spec = validateJobSpec(lm);
    expect(spec.model).to.deep.equal({
      kind: 'transformer',
      vocab: KJV_VOCABULARY,
      dModel: 64,
      layers: 2,
      heads: 4,
      ffn: 256,
      context: 64,
    });
    expect(spec.data.kind).to.equal('text');
    expect(spec.data.seqLen).to.equal(64);
    expect(spec.data.source).to.equal(undefined);
    expect(validateJobSpec(spec)).to.deep.equal(spec);
    // Fashion-MNIST specs are unchanged: no text fields appear
    const images = validateJobSpec({});
    expect(images.data).to.not.have.property('seqLen');
    expect(images.data).to.not.have.property('source');
  });

  it('a transformer needs text data and text data needs a transformer', () => {
    expect(issues({ model: { kind: 'transformer' } })).to.deep.equal([
      'data.kind: a transformer trains on text: set data: { kind: text } (model and data must match)',
    ]);
    expect(issues({ data: { kind: 'text' } })).to.deep.equal([
      'model.kind: text data needs model: { kind: transformer } (mlp and cnn read images; model and data must match)',
    ]);
    expect(issues({ model: { kind: 'cnn' }, data: { kind: 'text' } })).to.have.length(1);
  });

  it('names the field and the fix for text-only and image-only data fields', () => {
    expect(issues({ ...lm, data: { kind: 'text', seqLen: 65 } })).to.deep.equal([
      'data.seqLen: at most model.context (64): lower seqLen or raise model.context',
    ]);
    expect(issues({ data: { seqLen: 32 } })).to.deep.equal([
      'data.seqLen: only with kind: text (add kind: text or remove seqLen)',
    ]);
    expect(issues({ data: { source: 'a.txt' } })).to.deep.equal([
      'data.source: only with kind: text (use path for Fashion-MNIST)',
    ]);
    expect(issues({ ...lm, data: { kind: 'text', path: 'fmnist' } })).to.deep.equal([
      'data.path: only with kind: fashion-mnist (use source for a text file)',
    ]);
    expect(issues({ ...lm, data: { kind: 'text', flip: true } })).to.deep.equal([
      'data.flip: only with kind: fashion-mnist (remove flip)',
    ]);
    expect(issues({ ...lm, data: { kind: 'text', shardBy: 'dirichlet' } })).to.deep.equal([
      'data.shardBy: text is sharded IID by sequence (remove shardBy or use shardBy: worker)',
    ]);
    expect(issues({ ...lm, data: { kind: 'text', validation: 0.1 } })).to.deep.equal([
      'data.validation: text always holds out its last 10 % for evaluation (remove validation)',
    ]);
    expect(issues({ ...lm, data: { kind: 'tokens' } })[0]).to.equal(
      "data.kind: must be 'fashion-mnist' or 'text'",
    );
    // evaluation.split validation is the held-out text; no data.validation needed
    expect(validateJobSpec({ ...lm, evaluation: { split: 'validation' } }).evaluation.split).to.equal(
      'validation',
    );
  });

  it('names the model field and the fix for shapes it cannot build', () => {
    expect(issues({ ...lm, model: { kind: 'transformer', dModel: 30, heads: 4 } })).to.deep.equal([
      'model.heads: dModel (30) must be a multiple of heads (4)',
    ]);
    expect(issues({ ...lm, model: { kind: 'transformer', vocab: 'ba' } })).to.deep.equal([
      'model.vocab: vocab must be sorted distinct characters of the Basic Multilingual Plane',
    ]);
    expect(issues({ ...lm, model: { kind: 'transformer', layers: 0 } })).to.deep.equal([
      'model.layers: at least 1',
    ]);
    expect(
      issues({ ...lm, model: { kind: 'transformer', dModel: 4096, ffn: 65536, layers: 64 } })[0],
    ).to.match(/^model: [\d,]+ parameters; at most 268,435,456: use a smaller dModel, ffn or fewer layers$/);
    expect(issues({ ...lm, model: { kind: 'rnn' } })[0]).to.equal(
      "model.kind: must be 'mlp', 'cnn' or 'transformer'",
    );
  });

  it('aggregation.perExpert: off by default, accepted on an MoE transformer, refused (naming the field) otherwise', () => {
    expect(validateJobSpec(lm).aggregation.perExpert).to.equal(false);
    const moe = { ...lm, model: { kind: 'transformer', moe: { experts: 4, topK: 2 } } };
    expect(validateJobSpec({ ...moe, aggregation: { perExpert: true } }).aggregation.perExpert).to.equal(
      true,
    );
    const refused = [
      'aggregation.perExpert: needs a mixture-of-experts model (model: { kind: transformer, moe: { experts: 4 } }); remove aggregation.perExpert or add model.moe',
    ];
    expect(issues({ ...lm, aggregation: { perExpert: true } })).to.deep.equal(refused);
    expect(issues({ aggregation: { perExpert: true } })).to.deep.equal(refused);
    expect(issues({ ...moe, aggregation: { perExpert: 'yes' } })[0]).to.match(/^aggregation\.perExpert: /);
  });
});
