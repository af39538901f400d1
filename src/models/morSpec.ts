/**
 * Mixture-of-Recursions students, the pure part: validity of a `recursion.mor` section, the recursions and which
 * of them are routed, the routers' tensors and parameter count, and the capacity schedule in tokens. No tfjs.
 *
 * A recursive student with schedule cycle and L = R·K runs its K shared blocks R times: recursion t is layers
 * t·K … t·K + K − 1. Before each recursion t with capacity c_t < 1 a router (w_t [d, 1], b_t [1]) scores every
 * token; a token runs recursion t when it ran t − 1 and σ(h·w_t + b_t) ≥ 1/2. Recursions with c_t = 1 run every
 * token and store no router, so with all capacities 1 the student is the plain recursive one.
 */
import type { LayerSpec } from '../core/layout/parameterLayout.ts';
import type { MorSpec, RecursionSpec } from './types.ts';

/** R = L / K, the number of recursions, when the plan can carry MoR routing (cycle, K | L); else undefined. */
export function recursionsOf(
  layers: number,
  r: Pick<RecursionSpec, 'blocks' | 'schedule'>,
): number | undefined {
  if (r.schedule !== 'cycle' || !(r.blocks >= 1) || layers % r.blocks !== 0) return undefined;
  return layers / r.blocks;
}

/** Problems with a mor section for depth `layers`, one message each naming the field and the fix. */
export function morProblems(layers: number, r: RecursionSpec & { mor: MorSpec }): string[] {
  const problems: string[] = [];
  const { capacities, auxLossWeight } = r.mor;
  const steps = recursionsOf(layers, r);
  if (r.schedule !== 'cycle') {
    problems.push(
      `recursion.mor needs schedule 'cycle' (a recursion is the K blocks in order), got '${String(r.schedule)}': set recursion.schedule to cycle`,
    );
  } else if (steps === undefined) {
    problems.push(
      `recursion.mor needs layers (${layers}) to be a multiple of recursion.blocks (${r.blocks}): choose layers = R·blocks for R recursions`,
    );
  }
  if (!Array.isArray(capacities) || capacities.length === 0) {
    problems.push('recursion.mor.capacities must be a non-empty list, one fraction per recursion');
    return problems;
  }
  if (steps !== undefined && capacities.length !== steps) {
    problems.push(
      `recursion.mor.capacities must have one entry per recursion (layers / blocks = ${steps}), got ${capacities.length}`,
    );
  }
  if (capacities.some((c) => !(c > 0 && c <= 1))) {
    problems.push(`recursion.mor.capacities must each be in (0, 1], got [${capacities.join(', ')}]`);
  } else if (capacities[0] !== 1) {
    problems.push(
      `recursion.mor.capacities must start with 1 (every token runs the first recursion), got ${capacities[0]}`,
    );
  } else if (capacities.some((c, t) => t > 0 && c > capacities[t - 1])) {
    problems.push(
      `recursion.mor.capacities must be non-increasing (a token that skips a recursion skips the later ones), got [${capacities.join(', ')}]`,
    );
  }
  if (!(auxLossWeight >= 0 && Number.isFinite(auxLossWeight))) {
    problems.push(`recursion.mor.auxLossWeight must be a non-negative number, got ${auxLossWeight}`);
  }
  return problems;
}

/** The recursions that have a router (capacity < 1), ascending. */
export function routedRecursions(mor: Pick<MorSpec, 'capacities'>): number[] {
  return mor.capacities.flatMap((c, t) => (c < 1 ? [t] : []));
}

/** The routers' tensors, after the recursive student's layout: mor.router.t.{weight [d, 1], bias [1]}. */
export function morRouterTensors(d: number, mor: Pick<MorSpec, 'capacities'>): LayerSpec[] {
  return routedRecursions(mor).flatMap((t) => [
    { name: `mor.router.${t}.weight`, shape: [d, 1] },
    { name: `mor.router.${t}.bias`, shape: [1] },
  ]);
}

/** Router parameters: d + 1 per routed recursion (0 without a mor section or with no list of capacities). */
export function morParameterCountOrZero(d: number, mor: Pick<MorSpec, 'capacities'> | undefined): number {
  if (mor === undefined || !Array.isArray(mor.capacities)) return 0;
  return routedRecursions(mor).length * (d + 1);
}

/** Tokens of a pass of N labelled as selected for recursion t (the router's training target): ⌈c_t·N⌉. */
export function selectedTokens(tokens: number, capacity: number): number {
  return Math.ceil(capacity * tokens);
}

/** Σ_t c_t: the mean depth, in recursions, when the routers meet their capacities exactly. */
export function targetDepth(mor: Pick<MorSpec, 'capacities'>): number {
  return mor.capacities.reduce((a, b) => a + b, 0);
}
