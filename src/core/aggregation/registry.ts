/**
 * Name → factory registry for aggregation rules and pre-aggregators. Lookup is exact, then case-insensitive
 * (ignoring '-' and '_'), then through a few aliases (average, trmean, gm, cc, clipping, ...). Unknown names
 * throw an Error that lists the valid ones.
 *
 * Pre-aggregator specs may carry inline options: "clip(c=2)", "clip(2)" (the first positional argument is the
 * pre-aggregator's main parameter: c for clip, s for bucketing, f for nnm/arc), "bucketing(s=2, seed=7)".
 */
import { createArc } from './preaggregators/arc.ts';
import { createBucketing } from './preaggregators/bucketing.ts';
import { createBulyan } from './rules/bulyan.ts';
import { createCenteredClipping } from './rules/centeredClipping.ts';
import { createClip } from './preaggregators/clip.ts';
import { createFlagAggregator } from './flag/aggregator.ts';
import { createGeometricMedian } from './rules/geometricMedian.ts';
import { createKrum } from './rules/krum.ts';
import { createMda } from './rules/mda.ts';
import { createMean } from './rules/mean.ts';
import { createMeamed } from './rules/meamed.ts';
import { createMedian } from './rules/median.ts';
import { createMonna } from './rules/monna.ts';
import { createMultiKrum } from './rules/multiKrum.ts';
import { createNnm } from './preaggregators/nnm.ts';
import { createPhocas } from './rules/phocas.ts';
import { createTrimmedMean } from './rules/trimmedMean.ts';
import type { AggregationRule, PreAggregator, PreAggregatorFactory, RuleFactory } from './types.ts';

const rules = new Map<string, RuleFactory>();
const preAggregators = new Map<string, { factory: PreAggregatorFactory; primary?: string }>();

const RULE_ALIASES: Record<string, string> = {
  average: 'mean',
  avg: 'mean',
  cwmed: 'median',
  coordinatewisemedian: 'median',
  trmean: 'trimmedMean',
  tm: 'trimmedMean',
  gm: 'geometricMedian',
  rfa: 'geometricMedian',
  cc: 'centeredClipping',
  fa: 'flag',
  flagaggregator: 'flag',
};
const PRE_ALIASES: Record<string, string> = { clipping: 'clip', staticclipping: 'clip', bucket: 'bucketing' };

/** Registers (or replaces) a rule factory under `name`. */
export function registerRule(name: string, factory: RuleFactory): void {
  checkName(name);
  rules.set(name, factory);
}

/**
 * Registers (or replaces) a pre-aggregator factory. `primary` names the option a positional inline argument
 * sets ("clip(2)" → c = 2).
 */
export function registerPreAggregator(name: string, factory: PreAggregatorFactory, primary?: string): void {
  checkName(name);
  preAggregators.set(name, { factory, primary });
}

/** Creates a rule by (case-insensitive or alias) name. */
/** Removes a pre-aggregator registered with registerPreAggregator (false if there was none). */
export function unregisterPreAggregator(name: string): boolean {
  return preAggregators.delete(name);
}

export function createRule(name: string, options: Record<string, unknown> = {}): AggregationRule {
  const canonical = resolve(name, rules, RULE_ALIASES);
  if (canonical === undefined) {
    throw new Error(`unknown aggregation rule '${name}' (valid: ${listRules().join(', ')})`);
  }
  return rules.get(canonical)!(options);
}

/**
 * Creates a pre-aggregator from a name or an inline spec ("clip(c=2)"); `options` are merged under the inline
 * ones.
 */
export function createPreAggregator(spec: string, options: Record<string, unknown> = {}): PreAggregator {
  const { name, args } = parsePreSpec(spec);
  const canonical = resolve(name, preAggregators, PRE_ALIASES);
  if (canonical === undefined) {
    throw new Error(`unknown pre-aggregator '${name}' (valid: ${listPreAggregators().join(', ')})`);
  }
  const entry = preAggregators.get(canonical)!;
  const merged: Record<string, unknown> = { ...options };
  if (args.filter(([key]) => key === null).length > 1) {
    throw new Error(`invalid pre-aggregator spec '${spec}': at most one positional argument`);
  }
  for (const [key, value] of args) {
    if (key === null) {
      if (entry.primary === undefined)
        throw new Error(`pre-aggregator '${canonical}' takes no positional argument`);
      merged[entry.primary] = value;
    } else merged[key] = value;
  }
  return entry.factory(merged);
}

/** Canonical name of a rule (resolving case and aliases), or undefined. */
export function resolveRuleName(name: string): string | undefined {
  return resolve(name, rules, RULE_ALIASES);
}

/** Canonical name of a pre-aggregator (resolving case and aliases), or undefined. */
export function resolvePreAggregatorName(name: string): string | undefined {
  return resolve(name, preAggregators, PRE_ALIASES);
}

/** The option a positional inline argument sets ("clip(2)" → 'c'), or undefined. */
export function preAggregatorPrimaryOption(name: string): string | undefined {
  return preAggregators.get(name)?.primary;
}

export function listRules(): string[] {
  return [...rules.keys()];
}

export function listPreAggregators(): string[] {
  return [...preAggregators.keys()];
}

/** Splits "name(a=1, 2)" into its name and (key | null, value) pairs; numbers and booleans are parsed. */
export function parsePreSpec(spec: string): { name: string; args: [string | null, unknown][] } {
  const m = /^\s*([A-Za-z][\w-]*)\s*(?:\((.*)\))?\s*$/.exec(spec);
  if (m === null)
    throw new Error(`invalid pre-aggregator spec '${spec}' (expected e.g. "clip" or "clip(c=2)")`);
  const args: [string | null, unknown][] = [];
  const body = m[2]?.trim() ?? '';
  if (body !== '') {
    for (const part of body.split(',')) {
      const p = part.trim();
      const eq = p.indexOf('=');
      const key = eq >= 0 ? p.slice(0, eq).trim() : null;
      const raw = eq >= 0 ? p.slice(eq + 1).trim() : p;
      if (raw === '' || key === '') throw new Error(`invalid pre-aggregator spec '${spec}'`);
      args.push([key, parseValue(raw)]);
    }
  }
  return { name: m[1], args };
}

function parseValue(raw: string): unknown {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  const num = Number(raw);
  return Number.isFinite(num) ? num : raw;
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/[-_\s]/g, '');
}

function resolve<T>(name: string, map: Map<string, T>, aliases: Record<string, string>): string | undefined {
  if (map.has(name)) return name;
  const key = normalise(name);
  for (const registered of map.keys()) if (normalise(registered) === key) return registered;
  const alias = aliases[key];
  return alias !== undefined && map.has(alias) ? alias : undefined;
}

function checkName(name: string): void {
  if (!/^[A-Za-z][\w-]*$/.test(name)) throw new Error(`invalid registry name '${name}'`);
}

registerRule('mean', createMean);
registerRule('median', createMedian);
registerRule('trimmedMean', createTrimmedMean);
registerRule('krum', createKrum);
registerRule('multiKrum', createMultiKrum);
registerRule('bulyan', createBulyan);
registerRule('geometricMedian', createGeometricMedian);
registerRule('centeredClipping', createCenteredClipping);
registerRule('meamed', createMeamed);
registerRule('phocas', createPhocas);
registerRule('mda', createMda);
registerRule('monna', createMonna);
registerRule('flag', createFlagAggregator);

registerPreAggregator('clip', createClip, 'c');
registerPreAggregator('nnm', createNnm, 'f');
registerPreAggregator('arc', createArc, 'f');
registerPreAggregator('bucketing', createBucketing, 's');
