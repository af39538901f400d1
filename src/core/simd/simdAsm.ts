/**
 * A minimal WebAssembly (SIMD) assembler: enough to generate the aggregation kernels in code (no toolchain, no
 * external file).
 *
 * - {@link FnBuilder} emits one function body: i32 parameters, typed locals, memory access with immediate offsets,
 *   SIMD opcodes and structured loops.
 * - {@link encodeModule} wraps functions into a module that imports its linear memory as `e.m` and exports every
 *   function by name, so that many specialised modules share one memory (the staging area of the block driver).
 * - {@link instantiate} compiles and instantiates synchronously (Node allows synchronous compilation of any size).
 *
 * Opcodes follow the WebAssembly 2.0 specification (fixed-width SIMD, prefix 0xfd).
 */

/** The subset of the WebAssembly JS API used here (the project's TS lib has no DOM/WebAssembly typings). */
export interface WasmMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}

export function wasmApi(): WasmApi | undefined {
  return (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
}

export const PAGE = 65536;

export const I32 = 0x7f;
export const F64 = 0x7c;
export const V128 = 0x7b;

/** SIMD opcodes (after the 0xfd prefix). */
export const S = {
  load: 0x00,
  store: 0x0b,
  load64Zero: 0x5d,
  v128Const: 0x0c,
  shuffle: 0x0d,
  i32x4Splat: 0x11,
  i64x2Splat: 0x12,
  f32x4Splat: 0x13,
  f64x2Splat: 0x14,
  i32x4Eq: 0x37,
  i32x4GtS: 0x3b,
  f32x4Eq: 0x41,
  f32x4Ne: 0x42,
  f32x4Lt: 0x43,
  f32x4Gt: 0x44,
  f32x4Le: 0x45,
  f32x4Ge: 0x46,
  f64x2Eq: 0x47,
  f64x2Ne: 0x48,
  f64x2Lt: 0x49,
  f64x2Gt: 0x4a,
  f64x2Le: 0x4b,
  f64x2Ge: 0x4c,
  not: 0x4d,
  and: 0x4e,
  andNot: 0x4f,
  or: 0x50,
  xor: 0x51,
  anyTrue: 0x53,
  demote: 0x5e,
  promote: 0x5f,
  i32x4AllTrue: 0xa3,
  i64x2AllTrue: 0xc3,
  i32x4Add: 0xae,
  i32x4Sub: 0xb1,
  i64x2Add: 0xce,
  i64x2Sub: 0xd1,
  i64x2Eq: 0xd6,
  i64x2GtS: 0xd9,
  f32x4PMin: 0xea,
  f32x4PMax: 0xeb,
  f64x2Abs: 0xec,
  f64x2Add: 0xf0,
  f64x2Sub: 0xf1,
  f64x2Mul: 0xf2,
  f64x2Div: 0xf3,
  f64x2PMin: 0xf6,
  f64x2PMax: 0xf7,
} as const;

export function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

export function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

export function section(id: number, bytes: number[]): number[] {
  return [id, ...uleb(bytes.length), ...bytes];
}

export function utf8(name: string): number[] {
  return vec([...name].map((ch) => [ch.charCodeAt(0)]));
}

/** One function: `nParams` i32 parameters, no result. Locals are allocated on demand. */
export class FnBuilder {
  readonly code: number[] = [];
  private readonly localTypes: number[] = [];

  constructor(
    readonly name: string,
    readonly nParams: number,
  ) {}

  /** A fresh local of the given type (I32, F64 or V128). */
  local(type: number): number {
    this.localTypes.push(type);
    return this.nParams + this.localTypes.length - 1;
  }

  v128(): number {
    return this.local(V128);
  }

  i32(): number {
    return this.local(I32);
  }

  get(i: number): this {
    this.code.push(0x20, ...uleb(i));
    return this;
  }

  set(i: number): this {
    this.code.push(0x21, ...uleb(i));
    return this;
  }

  tee(i: number): this {
    this.code.push(0x22, ...uleb(i));
    return this;
  }

  i32Const(v: number): this {
    this.code.push(0x41, ...sleb(v));
    return this;
  }

  i32Add(): this {
    this.code.push(0x6a);
    return this;
  }

  i32GeU(): this {
    this.code.push(0x4f);
    return this;
  }

  /** Pushes an i32 address: local `p` (the address is p + the memory immediate of the next access). */
  simd(op: number, ...imm: number[]): this {
    this.code.push(0xfd, ...uleb(op), ...imm);
    return this;
  }

  /** v128.load at [address on the stack] + offset. */
  load(offset: number): this {
    return this.simd(S.load, 4, ...uleb(offset));
  }

  /** v128.load64_zero: two float32 (or one float64) into the low half. */
  load64Zero(offset: number): this {
    return this.simd(S.load64Zero, 3, ...uleb(offset));
  }

  /** v128.store of the value on top of the stack at [address below it] + offset. */
  store(offset: number): this {
    return this.simd(S.store, 4, ...uleb(offset));
  }

  /** Loads the v128 at `addrLocal` + offset into a local. */
  loadTo(dst: number, addrLocal: number, offset: number): this {
    return this.get(addrLocal).load(offset).set(dst);
  }

  /** Stores local `src` at `addrLocal` + offset. */
  storeFrom(src: number, addrLocal: number, offset: number): this {
    return this.get(addrLocal).get(src).store(offset);
  }

  /** dst = op(a, b) for a binary SIMD op on locals. */
  bin(dst: number, op: number, a: number, b: number): this {
    return this.get(a).get(b).simd(op).set(dst);
  }

  /** dst = all lanes equal to the 32-bit integer v. */
  splatI32(dst: number, v: number): this {
    return this.i32Const(v).simd(S.i32x4Splat).set(dst);
  }

  /** dst = both 64-bit lanes equal to the integer v. */
  splatI64(dst: number, v: number): this {
    this.code.push(0x42, ...sleb(v)); // i64.const
    return this.simd(S.i64x2Splat).set(dst);
  }

  /** dst = both lanes equal to the float64 v. */
  splatF64(dst: number, v: number): this {
    const b = new Uint8Array(new Float64Array([v]).buffer);
    this.code.push(0x44, ...b);
    return this.simd(S.f64x2Splat).set(dst);
  }

  zero(dst: number): this {
    return this.splatI32(dst, 0);
  }

  /** i8x16.shuffle of the two v128 on the stack. */
  shuffle(lanes: number[]): this {
    return this.simd(S.shuffle, ...lanes);
  }

  /**
   * `for (p = start; p < end; p += step) body()` with i32 locals (end evaluated once, before the loop). The body
   * must leave the stack empty.
   */
  forLoop(p: number, end: number, step: number, body: () => void): this {
    this.code.push(0x02, 0x40, 0x03, 0x40); // block, loop
    this.get(p).get(end).i32GeU();
    this.code.push(0x0d, 0x01); // br_if 1
    body();
    this.get(p).i32Const(step).i32Add().set(p);
    this.code.push(0x0c, 0x00, 0x0b, 0x0b); // br 0, end, end
    return this;
  }

  /** `if (cond) then() else otherwise()`: `cond` must push one i32. */
  ifElse(cond: () => void, then: () => void, otherwise?: () => void): this {
    cond();
    this.code.push(0x04, 0x40);
    then();
    if (otherwise) {
      this.code.push(0x05);
      otherwise();
    }
    this.code.push(0x0b);
    return this;
  }

  /** The encoded body (local declarations + code + end). */
  body(): number[] {
    const runs: number[][] = [];
    for (let i = 0; i < this.localTypes.length;) {
      let j = i;
      while (j < this.localTypes.length && this.localTypes[j] === this.localTypes[i]) j++;
      runs.push([...uleb(j - i), this.localTypes[i]]);
      i = j;
    }
    const b = [...vec(runs), ...this.code, 0x0b];
    return [...uleb(b.length), ...b];
  }
}

/** A module importing memory `e.m` (at least `minPages`) and exporting each function under its name. */
export function encodeModule(fns: FnBuilder[], minPages: number): Uint8Array {
  const types = fns.map((f) => [0x60, ...vec(new Array<number[]>(f.nParams).fill([I32])), 0x00]);
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...utf8('e'), ...utf8('m'), 0x02, 0x00, ...uleb(minPages)]])),
    ...section(3, vec(fns.map((_, i) => uleb(i)))),
    ...section(7, vec(fns.map((f, i) => [...utf8(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(fns.map((f) => f.body()))),
  ]);
}

export type KernelFn = (...args: number[]) => void;

/** Compiles and instantiates `bytes` against `memory`; null when the runtime rejects the module. */
export function instantiate(bytes: Uint8Array, memory: WasmMemory): Record<string, KernelFn> | null {
  const api = wasmApi();
  if (api === undefined || !api.validate(bytes)) return null;
  const instance = new api.Instance(new api.Module(bytes), { e: { m: memory } });
  return instance.exports as Record<string, KernelFn>;
}
