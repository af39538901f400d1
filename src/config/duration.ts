/** Durations in config accept milliseconds as a number or a string like "500ms", "5s", "2m", "1h". */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`invalid duration ${value}: expected ms >= 0`);
    return value;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!match) throw new Error(`invalid duration '${value}': use e.g. 500ms, 5s, 2m`);
  return Math.round(Number(match[1]) * UNITS[match[2] ?? 'ms']);
}
