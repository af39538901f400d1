/** The job specs the docs tell users to run (docs/specs/*.yaml) are valid job specs. */
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseJobSpec } from '../../../src/config/jobSpec.ts';

const dir = fileURLToPath(new URL('../../../docs/specs/', import.meta.url));

describe('config: the specs in docs/specs', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

  it('has the specs the README names', () => {
    expect(files).to.include.members(['lm-tiny.yaml', 'demo-lgreco.yaml']);
  });

  for (const file of files) {
    it(`${file} validates`, () => {
      expect(() => parseJobSpec(readFileSync(dir + file, 'utf8'))).not.to.throw();
    });
  }

  it('demo-lgreco.yaml re-plans within its 60 rounds', () => {
    const spec = parseJobSpec(readFileSync(dir + 'demo-lgreco.yaml', 'utf8'));
    const c = spec.compression;
    expect(c.kind).to.equal('lgreco');
    expect(c.kind === 'lgreco' && c.warmup < spec.rounds && c.window < spec.rounds).to.equal(true);
  });
});
