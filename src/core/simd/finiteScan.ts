/**
 * Copy float32 bytes into a Float32Array while checking that every value is finite — the hot path of every push
 * the coordinator receives and every parameter chunk a worker pulls (1 MiB at a time).
 *
 * A JS loop checks about one element per 2 ns here, four times the cost of the copy itself; a WebAssembly SIMD
 * scan of the IEEE exponent bits (all ones ⇔ NaN or ±Inf) runs at memory speed. The bytes go through a small
 * staging area in the module's memory (protobuf `bytes` may start at any offset, so they cannot be viewed as
 * float32 in place), and only a chunk the scan flags is searched element by element for the first bad index.
 * Without WebAssembly SIMD the scalar loop is used; both give the same result.
 */
import { encodeModule, FnBuilder, instantiate, PAGE, S, wasmApi, type WasmMemory } from './simdAsm.ts';

/** Bytes staged per kernel call (a whole number of 64-byte steps). */
const STAGE_BYTES = 1 << 20;
/** The scan's verdict (one v128 of lane masks) lives at 0; the staged data starts here. */
const DATA = 64;
const EXPONENT = 0x7f800000;

interface Scanner {
  memory: WasmMemory;
  scan: (bytes: number) => void;
  u8: Uint8Array;
  f32: Float32Array;
  i32: Int32Array;
}

let scanner: Scanner | null | undefined;
let enabled = true;

/** `scan(end)`: OR over the staged bytes [DATA, DATA + end) of (x & EXP) == EXP per i32 lane, stored at 0. */
function scanKernel(): FnBuilder {
  const F = new FnBuilder('scan', 1);
  const p = F.i32();
  const e = F.i32();
  const mask = F.v128();
  const acc = F.v128();
  F.splatI32(mask, EXPONENT).zero(acc);
  F.i32Const(DATA).set(p).get(0).i32Const(DATA).i32Add().set(e);
  F.forLoop(p, e, 64, () => {
    for (let q = 0; q < 4; q++) {
      F.get(p)
        .load(16 * q)
        .get(mask)
        .simd(S.and)
        .get(mask)
        .simd(S.i32x4Eq)
        .get(acc)
        .simd(S.or)
        .set(acc);
    }
  });
  F.i32Const(0).get(acc).store(0);
  return F;
}

function load(): Scanner | null {
  if (scanner !== undefined) return scanner;
  scanner = null;
  const api = wasmApi();
  if (api === undefined) return null;
  try {
    const pages = Math.ceil((DATA + STAGE_BYTES) / PAGE);
    const memory = new api.Memory({ initial: pages });
    const mod = instantiate(encodeModule([scanKernel()], pages), memory);
    if (mod === null) return null;
    const s: Scanner = {
      memory,
      scan: mod['scan'],
      u8: new Uint8Array(memory.buffer),
      f32: new Float32Array(memory.buffer),
      i32: new Int32Array(memory.buffer),
    };
    // Self-test: a finite block passes, a NaN in the last lane is caught.
    s.f32.fill(1, DATA / 4, DATA / 4 + 32);
    s.scan(128);
    const clean = (s.i32[0] | s.i32[1] | s.i32[2] | s.i32[3]) === 0;
    s.f32[DATA / 4 + 31] = NaN;
    s.scan(128);
    if (clean && (s.i32[0] | s.i32[1] | s.i32[2] | s.i32[3]) !== 0) scanner = s;
  } catch {
    scanner = null;
  }
  return scanner;
}

/** Whether the SIMD scan is in use. */
export function finiteScanActive(): boolean {
  return enabled && load() !== null;
}

/** Enables or disables the SIMD scan (tests compare it with the scalar loop); returns the previous value. */
export function setFiniteScan(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  return prev;
}

/** Index (relative to `from`) of the first NaN/±Inf in a[from, from+count), or -1 (scalar). */
export function firstNonFinite(a: Float32Array, from: number, count: number): number {
  const end = from + count;
  for (let i = from; i < end; i++) {
    const v = a[i];
    // v - v is 0 for finite v and NaN for NaN/±Inf.
    if (v - v !== 0) return i - from;
  }
  return -1;
}

/**
 * dst[offset, offset + bytes.byteLength/4) = the little-endian float32 values in `bytes` (a little-endian host is
 * assumed by the caller). Returns the index (relative to offset) of the first non-finite value, or -1; the values
 * are copied either way.
 */
export function copyFloat32Checked(bytes: Uint8Array, dst: Float32Array, offset: number): number {
  const n = bytes.byteLength >>> 2;
  const s = enabled ? load() : null;
  if (s === null) {
    new Uint8Array(dst.buffer, dst.byteOffset + offset * 4, n * 4).set(bytes);
    return firstNonFinite(dst, offset, n);
  }
  let flagged = false;
  for (let done = 0; done < n;) {
    const count = Math.min(n - done, STAGE_BYTES >>> 2);
    const simdCount = count & ~15; // whole 64-byte steps
    s.u8.set(bytes.subarray(done * 4, (done + count) * 4), DATA);
    if (simdCount > 0) {
      s.scan(simdCount * 4);
      if ((s.i32[0] | s.i32[1] | s.i32[2] | s.i32[3]) !== 0) flagged = true;
    }
    dst.set(s.f32.subarray(DATA / 4, DATA / 4 + count), offset + done);
    if (!flagged && firstNonFinite(dst, offset + done + simdCount, count - simdCount) >= 0) flagged = true;
    done += count;
  }
  return flagged ? firstNonFinite(dst, offset, n) : -1;
}
