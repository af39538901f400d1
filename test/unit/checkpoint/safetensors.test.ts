import { expect } from 'chai';
import { decodeHeader, decodeSafetensors, encodeSafetensors } from '../../../src/checkpoint/safetensors.ts';

/** A file from a header object and raw data bytes, with no padding (as other writers may produce). */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0)): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  out.set(data, 8 + json.length);
  return out;
}

const f32 = (...v: number[]) => new Uint8Array(Float32Array.of(...v).buffer);

describe('checkpoint: safetensors', () => {
  it('round-trips tensors, shapes and metadata', () => {
    const tensors = {
      'layer.0.weight': Float32Array.of(1, 2, 3, 4, 5, 6),
      bias: Float32Array.of(-0.5, 0.25),
      scalar: Float32Array.of(Math.PI),
      empty: new Float32Array(0),
    };
    const shapes = { 'layer.0.weight': [2, 3], scalar: [], empty: [0, 4] };
    const bytes = encodeSafetensors(tensors, { shapes, metadata: { format: 'pt', round: '100' } });
    const out = decodeSafetensors(bytes);
    expect(out.tensors).to.deep.equal(tensors);
    expect(out.shapes).to.deep.equal({ 'layer.0.weight': [2, 3], bias: [2], scalar: [], empty: [0, 4] });
    expect(out.metadata).to.deep.equal({ format: 'pt', round: '100' });
  });

  it('writes the documented layout: LE u64 length, space-padded JSON, data on an 8-byte boundary', () => {
    const bytes = encodeSafetensors({ b: Float32Array.of(2), a: Float32Array.of(1, 1.5) });
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).to.equal(0);
    const text = bytes.subarray(8, 8 + n).toString('utf8');
    expect(JSON.parse(text)).to.deep.equal({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    });
    expect(text.trimEnd()).to.equal(JSON.stringify(JSON.parse(text)));
    expect([...bytes.subarray(8 + n)]).to.deep.equal([...f32(1, 1.5, 2)]);
  });

  it('decodes files whose data section is not aligned (copying those tensors)', () => {
    let value = 'v';
    const header = () => ({
      x: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      __metadata__: { k: value },
    });
    while ((8 + JSON.stringify(header()).length) % 4 === 0) value += 'v';
    const file = rawFile(header(), f32(7, 8, 9));
    const out = decodeSafetensors(file);
    expect(Array.from(out.tensors.x)).to.deep.equal([7, 8, 9]);
    expect(out.metadata).to.deep.equal({ k: value });
  });

  it('views the input bytes when aligned (no copy)', () => {
    const bytes = encodeSafetensors({ x: Float32Array.of(1, 2) });
    const out = decodeSafetensors(bytes);
    expect(out.tensors.x.buffer).to.equal(bytes.buffer);
  });

  it('refuses shapes that do not match the data, and bad names', () => {
    expect(() => encodeSafetensors({ x: Float32Array.of(1, 2, 3) }, { shapes: { x: [2, 2] } })).to.throw(
      /does not match its length 3/,
    );
    expect(() => encodeSafetensors({ __metadata__: Float32Array.of(1) })).to.throw(/invalid tensor name/);
  });

  describe('treats files as untrusted', () => {
    const ok = { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    const cases: [string, Buffer, RegExp][] = [
      ['too short', Buffer.alloc(5), /too short/],
      [
        'header longer than the file',
        (() => {
          const b = rawFile(ok, f32(1, 2));
          b.writeBigUInt64LE(1000n, 0);
          return b;
        })(),
        /exceeds the file.*truncated/,
      ],
      [
        'a huge header length',
        (() => {
          const b = rawFile(ok, f32(1, 2));
          b.writeBigUInt64LE(2n ** 63n, 0);
          return b;
        })(),
        /exceeds the file/,
      ],
      [
        'header that is not JSON',
        (() => {
          const b = rawFile(ok, f32(1, 2));
          b[10] = 0x7b;
          b[11] = 0x7b;
          return b;
        })(),
        /not valid UTF-8 JSON/,
      ],
      ['header that is not an object', rawFile([1, 2]), /not a JSON object/],
      [
        'an unsupported dtype',
        rawFile({ x: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)),
        /unsupported dtype "F16"/,
      ],
      [
        'a negative dimension',
        rawFile({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }),
        /bad dimension -1/,
      ],
      [
        'offsets past the data',
        rawFile({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(1, 2)),
        /outside the data section/,
      ],
      [
        'offsets that disagree with the shape',
        rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 8] } }, f32(1, 2)),
        /expected 4/,
      ],
      [
        'reversed offsets',
        rawFile({ x: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, f32(1, 2)),
        /outside the data section/,
      ],
      [
        'a gap',
        rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1, 2)),
        /starts at 4, expected 0/,
      ],
      [
        'overlapping tensors',
        rawFile(
          {
            x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
          },
          f32(1, 2),
        ),
        /gap or overlap/,
      ],
      ['trailing bytes', rawFile(ok, f32(1, 2, 3)), /data section is 12 bytes but the tensors cover 8/],
      ['non-string metadata', rawFile({ ...ok, __metadata__: { n: 1 } }, f32(1, 2)), /'n' is not a string/],
    ];
    for (const [what, file, error] of cases) {
      it(`rejects ${what}`, () => {
        expect(() => decodeSafetensors(file)).to.throw(Error, error);
      });
    }

    it('rejects a __proto__ tensor name', () => {
      const json = '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
      const b = Buffer.alloc(8 + json.length + 4);
      b.writeBigUInt64LE(BigInt(json.length), 0);
      b.write(json, 8, 'latin1');
      expect(() => decodeHeader(b)).to.throw(/invalid tensor name '__proto__'/);
    });

    it('accepts an empty file body', () => {
      expect(decodeSafetensors(rawFile({}))).to.deep.equal({ tensors: {}, shapes: {}, metadata: {} });
    });
  });
});
