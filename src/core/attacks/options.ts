/** Validation of attack factory options: unknown keys and wrong types throw an `AttackError` naming them. */
import { AttackError } from './types.ts';

export interface NumberConstraints {
  min?: number;
  max?: number;
  /** Strict lower bound. */
  above?: number;
  /** Strict upper bound. */
  below?: number;
  integer?: boolean;
}

export class OptionReader {
  private readonly attack: string;
  private readonly options: Record<string, unknown>;

  constructor(attack: string, options: Record<string, unknown> | undefined, allowed: readonly string[]) {
    this.attack = attack;
    this.options = options ?? {};
    for (const key of Object.keys(this.options)) {
      if (!allowed.includes(key)) {
        const valid = allowed.length > 0 ? allowed.join(', ') : '(none)';
        throw new AttackError(`${attack}: unknown option '${key}'; valid options: ${valid}`);
      }
    }
  }

  has(key: string): boolean {
    return this.options[key] !== undefined;
  }

  number(key: string, def: number, c: NumberConstraints = {}): number {
    const v = this.optionalNumber(key, c);
    return v === undefined ? def : v;
  }

  optionalNumber(key: string, c: NumberConstraints = {}): number | undefined {
    const v = this.options[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'must be a finite number', v);
    const x = v as number;
    if (c.integer && !Number.isInteger(x)) this.fail(key, 'must be an integer', x);
    if (c.min !== undefined && x < c.min) this.fail(key, `must be ≥ ${c.min}`, x);
    if (c.max !== undefined && x > c.max) this.fail(key, `must be ≤ ${c.max}`, x);
    if (c.above !== undefined && !(x > c.above)) this.fail(key, `must be > ${c.above}`, x);
    if (c.below !== undefined && !(x < c.below)) this.fail(key, `must be < ${c.below}`, x);
    return x;
  }

  oneOf<T extends string>(key: string, values: readonly T[], def: T): T {
    const v = this.options[key];
    if (v === undefined) return def;
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      this.fail(key, `must be one of ${values.map((s) => `'${s}'`).join(', ')}`, v);
    }
    return v as T;
  }

  boolean(key: string, def: boolean): boolean {
    const v = this.options[key];
    if (v === undefined) return def;
    if (typeof v !== 'boolean') this.fail(key, 'must be a boolean', v);
    return v as boolean;
  }

  private fail(key: string, what: string, value: unknown): never {
    throw new AttackError(`${this.attack}: option '${key}' ${what} (got ${String(value)})`);
  }
}
