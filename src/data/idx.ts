/**
 * IDX files (the MNIST / Fashion-MNIST container), raw or gzipped.
 *
 * Format: magic = 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 sizes, then the data in row-major
 * order. Only unsigned bytes (type 0x08) are supported, which is what (Fashion-)MNIST uses: magic 0x00000803
 * for images [N, rows, cols] and 0x00000801 for labels [N].
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';

export const IDX_UBYTE = 0x08;
export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxArray {
  dims: number[];
  /** A view into the decoded file (no copy). */
  data: Uint8Array;
}

export class IdxFormatError extends Error {
  override name = 'IdxFormatError';
}

/** True if the buffer starts with the gzip magic 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Parse an IDX buffer (already gunzipped). `source` names the file in error messages. */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  if (bytes.length < 4) throw new IdxFormatError(`${source}: ${bytes.length} bytes is too short for an IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new IdxFormatError(`${source}: bad magic number 0x${hex(magic)} (an IDX file starts with two zero bytes)`);
  }
  const type = bytes[2];
  const ndims = bytes[3];
  if (type !== IDX_UBYTE) {
    throw new IdxFormatError(`${source}: unsupported IDX element type 0x${type.toString(16)} (only 0x08, unsigned byte)`);
  }
  if (ndims < 1) throw new IdxFormatError(`${source}: IDX header declares 0 dimensions`);
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new IdxFormatError(`${source}: truncated header (${ndims} dimensions need ${headerBytes} bytes, got ${bytes.length})`);
  }
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    size *= d;
  }
  const available = bytes.length - headerBytes;
  if (available < size) {
    throw new IdxFormatError(
      `${source}: truncated: dimensions [${dims.join(', ')}] need ${size} data bytes, file has ${available}`,
    );
  }
  if (available > size) {
    throw new IdxFormatError(
      `${source}: ${available - size} unexpected trailing bytes after [${dims.join(', ')}] of data`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes, headerBytes + size) };
}

/** Decode a raw or gzipped IDX buffer. */
export function decodeIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  let raw = bytes;
  if (isGzip(bytes)) {
    try {
      raw = gunzipSync(bytes);
    } catch (err) {
      throw new IdxFormatError(`${source}: corrupt or truncated gzip stream (${(err as Error).message})`);
    }
  }
  return parseIdx(raw, source);
}

/** Read a raw or gzipped IDX file. */
export async function readIdxFile(path: string): Promise<IdxArray> {
  return decodeIdx(await readFile(path), path);
}

/** Check that an IDX array is an image set [N, rows, cols] (magic 0x00000803). */
export function asImages(idx: IdxArray, source = 'IDX data'): { count: number; rows: number; cols: number; pixels: Uint8Array } {
  if (idx.dims.length !== 3) {
    throw new IdxFormatError(
      `${source}: expected an image file (magic 0x${hex(IDX_IMAGES_MAGIC)}, 3 dimensions), got ${idx.dims.length} dimensions`,
    );
  }
  const [count, rows, cols] = idx.dims;
  return { count, rows, cols, pixels: idx.data };
}

/** Check that an IDX array is a label vector [N] (magic 0x00000801) of class ids below `numClasses`. */
export function asLabels(idx: IdxArray, numClasses: number, source = 'IDX data'): Uint8Array {
  if (idx.dims.length !== 1) {
    throw new IdxFormatError(
      `${source}: expected a label file (magic 0x${hex(IDX_LABELS_MAGIC)}, 1 dimension), got ${idx.dims.length} dimensions`,
    );
  }
  for (let i = 0; i < idx.data.length; i++) {
    if (idx.data[i] >= numClasses) {
      throw new IdxFormatError(`${source}: label ${idx.data[i]} at index ${i} is outside 0..${numClasses - 1}`);
    }
  }
  return idx.data;
}

/** Encode unsigned bytes as an IDX buffer; gzip it (level 9) if asked. */
export function encodeIdx(data: Uint8Array, dims: readonly number[], gzip = false): Uint8Array {
  const size = dims.reduce((a, b) => a * b, 1);
  if (dims.length < 1 || dims.length > 255) throw new Error(`encodeIdx: ${dims.length} dimensions`);
  if (size !== data.length) throw new Error(`encodeIdx: dimensions [${dims.join(', ')}] hold ${size} bytes, got ${data.length}`);
  const out = new Uint8Array(4 + 4 * dims.length + size);
  const view = new DataView(out.buffer);
  out[2] = IDX_UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return gzip ? gzipSync(out, { level: 9 }) : out;
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}
