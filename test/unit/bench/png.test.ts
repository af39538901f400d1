import { expect } from 'chai';
import { inflateSync } from 'node:zlib';
import { crc32, encodePng, PNG_SIGNATURE } from '../../../bench/support/png.ts';

interface Chunk {
  type: string;
  data: Buffer;
  crc: number;
  /** type + data, the bytes the CRC covers */
  covered: Buffer;
}

function readChunks(png: Buffer): Chunk[] {
  const chunks: Chunk[] = [];
  let at = 8;
  while (at < png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    chunks.push({
      type,
      data: png.subarray(at + 8, at + 8 + length),
      crc: png.readUInt32BE(at + 8 + length),
      covered: png.subarray(at + 4, at + 8 + length),
    });
    at += 12 + length;
  }
  expect(at).to.equal(png.length);
  return chunks;
}

describe('bench PNG encoder', () => {
  const width = 5;
  const height = 3;
  const pixels = new Uint8Array(width * height * 4);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + 11) & 0xff;
  const png = encodePng(width, height, pixels);

  it('crc32 matches the standard check value', () => {
    // CRC-32/ISO-HDLC of "123456789"
    expect(crc32(Buffer.from('123456789'))).to.equal(0xcbf43926);
    expect(crc32(new Uint8Array(0))).to.equal(0);
  });

  it('starts with the PNG signature and has IHDR, IDAT, IEND in order', () => {
    expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).to.equal(true);
    expect([...PNG_SIGNATURE]).to.deep.equal([137, 80, 78, 71, 13, 10, 26, 10]);
    expect(readChunks(png).map((c) => c.type)).to.deep.equal(['IHDR', 'IDAT', 'IEND']);
  });

  it('IHDR: size, 8-bit RGBA, deflate, filter 0, no interlace', () => {
    const ihdr = readChunks(png)[0].data;
    expect(ihdr.length).to.equal(13);
    expect(ihdr.readUInt32BE(0)).to.equal(width);
    expect(ihdr.readUInt32BE(4)).to.equal(height);
    expect([...ihdr.subarray(8)]).to.deep.equal([8, 6, 0, 0, 0]);
  });

  it('every chunk carries the CRC-32 of its type and data', () => {
    for (const c of readChunks(png)) expect(c.crc, c.type).to.equal(crc32(c.covered));
  });

  it('IDAT inflates back to the pixels, one filter byte 0 before each row', () => {
    const raw = inflateSync(readChunks(png)[1].data);
    expect(raw.length).to.equal(height * (width * 4 + 1));
    for (let y = 0; y < height; y++) {
      const row = raw.subarray(y * (width * 4 + 1), (y + 1) * (width * 4 + 1));
      expect(row[0]).to.equal(0);
      expect([...row.subarray(1)]).to.deep.equal([...pixels.subarray(y * width * 4, (y + 1) * width * 4)]);
    }
  });

  it('refuses a pixel buffer of the wrong size', () => {
    expect(() => encodePng(2, 2, new Uint8Array(15))).to.throw(/expected 16 RGBA bytes/);
  });
});
