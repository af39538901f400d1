import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { asImages, asLabels, decodeIdx, encodeIdx, IdxFormatError, parseIdx, readIdxFile } from '../../../src/data/idx.ts';

describe('data: IDX reader', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'phalanx-idx-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const pixels = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 37) % 256);

  it('round-trips raw and gzipped files', async () => {
    const raw = encodeIdx(pixels, [2, 3, 4]);
    expect(Array.from(raw.subarray(0, 4))).to.deep.equal([0, 0, 8, 3]);
    expect(Array.from(raw.subarray(4, 8))).to.deep.equal([0, 0, 0, 2]); // big-endian sizes
    writeFileSync(join(dir, 'a-idx3-ubyte'), raw);
    writeFileSync(join(dir, 'a-idx3-ubyte.gz'), encodeIdx(pixels, [2, 3, 4], true));
    for (const name of ['a-idx3-ubyte', 'a-idx3-ubyte.gz']) {
      const idx = await readIdxFile(join(dir, name));
      expect(idx.dims).to.deep.equal([2, 3, 4]);
      expect(Array.from(idx.data)).to.deep.equal(Array.from(pixels));
      const img = asImages(idx, name);
      expect([img.count, img.rows, img.cols]).to.deep.equal([2, 3, 4]);
    }
    const labels = decodeIdx(encodeIdx(Uint8Array.of(0, 9, 3), [3], true));
    expect(Array.from(asLabels(labels, 10))).to.deep.equal([0, 9, 3]);
  });

  it('rejects a bad magic number', () => {
    const bad = encodeIdx(pixels, [2, 3, 4]);
    bad[0] = 0x42;
    expect(() => parseIdx(bad, 'x.idx')).to.throw(IdxFormatError, /x\.idx: bad magic number 0x42000803/);
    const float = encodeIdx(pixels, [2, 3, 4]);
    float[2] = 0x0d;
    expect(() => parseIdx(float)).to.throw(/unsupported IDX element type 0xd/);
    expect(() => parseIdx(Uint8Array.of(0, 0))).to.throw(/too short/);
  });

  it('rejects truncated data, truncated headers and trailing bytes with sizes in the message', () => {
    const raw = encodeIdx(pixels, [2, 3, 4]);
    expect(() => parseIdx(raw.subarray(0, raw.length - 5))).to.throw(/truncated: dimensions \[2, 3, 4\] need 24 data bytes, file has 19/);
    expect(() => parseIdx(raw.subarray(0, 9))).to.throw(/truncated header/);
    const longer = new Uint8Array(raw.length + 2);
    longer.set(raw);
    expect(() => parseIdx(longer)).to.throw(/2 unexpected trailing bytes/);
  });

  it('rejects a truncated gzip stream', async () => {
    const gz = gzipSync(encodeIdx(pixels, [2, 3, 4]));
    writeFileSync(join(dir, 'cut.gz'), gz.subarray(0, gz.length - 10));
    let error: Error | undefined;
    try {
      await readIdxFile(join(dir, 'cut.gz'));
    } catch (err) {
      error = err as Error;
    }
    expect(error).to.be.instanceOf(IdxFormatError);
    expect(error?.message).to.match(/cut\.gz: corrupt or truncated gzip stream/);
  });

  it('checks the kind of file and the label range', () => {
    const labels = decodeIdx(encodeIdx(Uint8Array.of(1, 2), [2]));
    expect(() => asImages(labels, 'l')).to.throw(/expected an image file \(magic 0x00000803/);
    expect(() => asLabels(decodeIdx(encodeIdx(pixels, [2, 3, 4])), 10, 'i')).to.throw(/expected a label file/);
    expect(() => asLabels(decodeIdx(encodeIdx(Uint8Array.of(1, 10), [2])), 10, 'l')).to.throw(/label 10 at index 1/);
  });
});
