/**
 * Writes data/kjv-excerpt/kjv-excerpt.txt: the first whole verses of the KJV (from the Debian packages
 * bible-kjv-text and bible-kjv, verse references removed, one verse per line) up to `--max` characters.
 *   node --import tsx scripts/make-kjv-excerpt.ts [--max 190000] [--out data/kjv-excerpt/kjv-excerpt.txt]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BUNDLED_EXCERPT, debianKjv } from '../src/data/text.ts';

const { values } = parseArgs({
  options: { max: { type: 'string', default: '190000' }, out: { type: 'string' } },
});
const max = Number(values.max);
const kjv = debianKjv();
if (kjv === undefined) throw new Error('needs the `bible` program: apt-get install bible-kjv-text bible-kjv');
let end = 0;
for (let next = kjv.indexOf('\n'); next !== -1 && next + 1 <= max; next = kjv.indexOf('\n', next + 1))
  end = next + 1;
const out = values.out ?? BUNDLED_EXCERPT;
writeFileSync(out, kjv.slice(0, end));
console.log(`${out}: ${end} characters, ${kjv.slice(0, end).split('\n').length - 1} verses`);
