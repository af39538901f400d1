/**
 * safetensors (https://github.com/huggingface/safetensors), F32 only:
 *   8 bytes   little-endian u64 N, the header length
 *   N bytes   UTF-8 JSON {"__metadata__"?: {string: string}, name: {dtype: "F32", shape: [..], data_offsets: [b, e]}}
 *             padded with spaces so the data starts on an 8-byte boundary
 *   rest      the tensors' little-endian bytes; offsets are relative to the start of this section
 * Files are untrusted: decoding checks every length and offset before touching data, and requires the tensors
 * to tile the data section exactly (no gaps, no overlaps, nothing trailing), as the reference implementation does.
 */
import { endianness } from 'node:os';

export type TensorShape = readonly number[];

export interface TensorInfo {
  name: string;
  shape: number[];
  /** [begin, end) in bytes, relative to the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section (8 + header length). */
  dataStart: number;
}

export interface DecodedTensors {
  tensors: Record<string, Float32Array>;
  shapes: Record<string, number[]>;
  metadata: Record<string, string>;
}

/** Headers larger than this are refused (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

function fail(message: string): never {
  throw new Error(`safetensors: ${message}`);
}

function checkLittleEndianHost(): void {
  if (endianness() !== 'LE') fail('big-endian hosts are not supported');
}

function elementCount(name: string, shape: TensorShape): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0)
      fail(`tensor '${name}': bad dimension ${JSON.stringify(d)} in shape`);
    n *= d;
  }
  if (!Number.isSafeInteger(n)) fail(`tensor '${name}': shape ${JSON.stringify(shape)} is too large`);
  return n;
}

function checkName(name: string): void {
  if (name === '' || name === METADATA_KEY || name === '__proto__') fail(`invalid tensor name '${name}'`);
}

/**
 * The header block (length prefix + padded JSON) for these tensors, in the given order, and the size of the
 * data section that must follow it. Shapes default to [length].
 */
export function encodeHeader(
  tensors: Record<string, Float32Array>,
  order: readonly string[],
  shapes: Record<string, TensorShape> = {},
  metadata: Record<string, string> = {},
): { header: Buffer; dataBytes: number } {
  checkLittleEndianHost();
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail(`metadata '${k}' must be a string`);
    }
    json[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const name of order) {
    checkName(name);
    const data = tensors[name];
    if (!(data instanceof Float32Array)) fail(`tensor '${name}' is not a Float32Array`);
    const shape = [...(shapes[name] ?? [data.length])];
    if (elementCount(name, shape) !== data.length) {
      fail(`tensor '${name}': shape ${JSON.stringify(shape)} does not match its length ${data.length}`);
    }
    json[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const text = Buffer.from(JSON.stringify(json), 'utf8');
  const padded = Math.ceil((8 + text.length) / 8) * 8 - 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  text.copy(header, 8);
  return { header, dataBytes: offset };
}

/** One buffer holding the whole file (tensors in name order). */
export function encodeSafetensors(
  tensors: Record<string, Float32Array>,
  opts: { shapes?: Record<string, TensorShape>; metadata?: Record<string, string> } = {},
): Buffer {
  const order = Object.keys(tensors).sort();
  const { header, dataBytes } = encodeHeader(tensors, order, opts.shapes, opts.metadata);
  const out = Buffer.alloc(header.length + dataBytes);
  header.copy(out, 0);
  let pos = header.length;
  for (const name of order) {
    const t = tensors[name];
    out.set(new Uint8Array(t.buffer, t.byteOffset, t.byteLength), pos);
    pos += t.byteLength;
  }
  return out;
}

/** Parse and validate the header of a whole file's bytes. */
export function decodeHeader(bytes: Uint8Array): SafetensorsHeader {
  if (bytes.length < 8) fail(`file too short (${bytes.length} bytes) to hold a header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8))
    fail(`header length ${n} exceeds the file (${bytes.length} bytes): truncated?`);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const headerLength = Number(n);
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;

  let parsed: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart));
    if (!text.startsWith('{')) fail('header is not a JSON object');
    parsed = JSON.parse(text);
  } catch (err) {
    if ((err as Error).message.startsWith('safetensors:')) throw err;
    fail(`header is not valid UTF-8 JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    fail('header is not a JSON object');

  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
        fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') fail(`__metadata__ '${k}' is not a string`);
      }
      metadata = { ...(entry as Record<string, string>) };
      continue;
    }
    checkName(name);
    if (entry === null || typeof entry !== 'object') fail(`tensor '${name}': entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (dtype !== 'F32') fail(`tensor '${name}': unsupported dtype ${JSON.stringify(dtype)} (only F32)`);
    if (!Array.isArray(shape)) fail(`tensor '${name}': shape is not an array`);
    const count = elementCount(name, shape as number[]);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      fail(`tensor '${name}': data_offsets must be two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLength) {
      fail(
        `tensor '${name}': data_offsets [${begin}, ${end}] outside the data section (${dataLength} bytes)`,
      );
    }
    if (end - begin !== count * 4) {
      fail(
        `tensor '${name}': ${end - begin} bytes for shape ${JSON.stringify(shape)} (expected ${count * 4})`,
      );
    }
    tensors.push({ name, shape: [...(shape as number[])], dataOffsets: [begin, end] });
  }

  // The tensors must tile the data section exactly.
  const byOffset = [...tensors].sort(
    (a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1],
  );
  let expected = 0;
  for (const t of byOffset) {
    if (t.dataOffsets[0] !== expected) {
      fail(`tensor '${t.name}' starts at ${t.dataOffsets[0]}, expected ${expected} (gap or overlap)`);
    }
    expected = t.dataOffsets[1];
  }
  if (expected !== dataLength) fail(`data section is ${dataLength} bytes but the tensors cover ${expected}`);
  return { tensors, metadata, dataStart };
}

/**
 * Decode a whole file. Tensors are views of `bytes` where alignment allows (so they share its memory) and
 * copies otherwise.
 */
export function decodeSafetensors(bytes: Uint8Array): DecodedTensors {
  checkLittleEndianHost();
  const header = decodeHeader(bytes);
  const tensors: Record<string, Float32Array> = {};
  const shapes: Record<string, number[]> = {};
  for (const t of header.tensors) {
    const at = bytes.byteOffset + header.dataStart + t.dataOffsets[0];
    const length = (t.dataOffsets[1] - t.dataOffsets[0]) / 4;
    if (at % 4 === 0) {
      tensors[t.name] = new Float32Array(bytes.buffer, at, length);
    } else {
      const start = header.dataStart + t.dataOffsets[0];
      const copy = new Uint8Array(length * 4);
      copy.set(bytes.subarray(start, start + length * 4));
      tensors[t.name] = new Float32Array(copy.buffer);
    }
    shapes[t.name] = t.shape;
  }
  return { tensors, shapes, metadata: header.metadata };
}
