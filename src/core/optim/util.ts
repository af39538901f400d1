/** Checks shared by the optimizers. */

export function checkHyper(kind: string, values: Record<string, number>): void {
  for (const [name, v] of Object.entries(values)) {
    if (!Number.isFinite(v) || v < 0)
      throw new Error(`optim: ${kind}: ${name} must be a finite number >= 0, got ${v}`);
  }
}

export function checkLengths(kind: string, size: number, params: Float32Array, update: Float32Array): void {
  if (params.length !== size || update.length !== size) {
    throw new Error(
      `optim: ${kind}: expected params and update of length ${size}, got ${params.length} and ${update.length}`,
    );
  }
}

export function checkStateTensor(
  kind: string,
  tensors: Record<string, Float32Array>,
  name: string,
  size: number,
): Float32Array {
  const t = tensors[name];
  if (!(t instanceof Float32Array))
    throw new Error(`optim: ${kind}: loadState: missing state tensor '${name}'`);
  if (t.length !== size) {
    throw new Error(
      `optim: ${kind}: loadState: state tensor '${name}' has length ${t.length}, expected ${size}`,
    );
  }
  return t;
}

/** A copy, so a saved state does not change when training goes on. */
export function copyState(t: Float32Array): Float32Array {
  return Float32Array.from(t);
}
