/**
 * Unsigned LEB128 varints for 32-bit values: 7 bits per byte, low groups first, high bit = "more follows". At
 * most 5 bytes; the decoder accepts only the shortest form, so every value has exactly one encoding and a
 * message's length is a function of its content.
 */
import { CodecError } from './codecError.ts';

export const MAX_VARINT_BYTES = 5;

/** Bytes the varint of v (0 ≤ v < 2^32) takes. */
export function varintLength(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

/** Write v at pos; returns the position after it. */
export function writeVarint(out: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    out[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[pos++] = v;
  return pos;
}

/**
 * Read one varint at pos, not reading at or past `end`. The value goes to `cursor.value`, the next position to
 * `cursor.pos`. Throws CodecError on a truncated, overlong, non-shortest or > 2^32 - 1 varint.
 */
export function readVarint(bytes: Uint8Array, pos: number, end: number, cursor: VarintCursor): void {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    if (pos >= end)
      throw new CodecError('varint-truncated', `varint: bytes end inside a varint at byte ${pos}`);
    const b = bytes[pos++];
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      if (b === 0 && i > 0) {
        throw new CodecError('varint-overlong', `varint: not in shortest form (ends at byte ${pos - 1})`);
      }
      if (value > 0xffffffff) {
        throw new CodecError(
          'varint-overflow',
          `varint: ${value} exceeds 2^32 - 1 (ends at byte ${pos - 1})`,
        );
      }
      cursor.value = value;
      cursor.pos = pos;
      return;
    }
    scale *= 128;
  }
  throw new CodecError('varint-overlong', `varint: longer than ${MAX_VARINT_BYTES} bytes at byte ${pos - 5}`);
}

export interface VarintCursor {
  value: number;
  pos: number;
}
