/**
 * The log of the long-running service processes (coordinator, worker). Two formats of the same events:
 * - json: one JSON object per line (pino) — `time` (ISO 8601), `level` (debug | info | warn | error),
 *   `component`, `pid`, the process's bindings (a worker's `worker` name), `msg`, and the event's own fields;
 * - pretty: the `msg` alone, as a person reads it (the coordinator's lines begin with the time).
 * The default is json when the output is not a terminal (a collector reads it) and pretty on a terminal.
 * `msg` always says everything in words; fields repeat its parts for machines.
 */
import { pino, stdTimeFunctions } from 'pino';
import { z } from 'zod';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  readonly level: LogLevel;
  readonly format: LogFormat;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** The same log with more bound fields; `prefix` is prepended to pretty lines (e.g. `[worker-0] `). */
  child(bindings: LogFields, prefix?: string): Logger;
}

/** Anything lines can be written to (process.stdout, a test's buffer). */
export interface LogSink {
  write(line: string): unknown;
  isTTY?: boolean;
}

export interface LoggerOptions {
  component: string;
  format: LogFormat;
  level: LogLevel;
  /** Default process.stdout. */
  sink?: LogSink;
  /** Pretty lines begin with the ISO time. */
  timestamps?: boolean;
  /** Pretty lines begin with this (after the time). */
  prefix?: string;
  bindings?: LogFields;
}

/** A log setting from a flag or a PHALANX_* variable that is not one of the valid values (a usage error). */
export class LogConfigError extends Error {}

const RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };

const formatSchema = z.enum(LOG_FORMATS);
const levelSchema = z.enum(LOG_LEVELS);

/** --log-format, else PHALANX_LOG_FORMAT, else json off a terminal and pretty on one. */
export function resolveLogFormat(
  flag: string | undefined,
  env: string | undefined,
  isTTY: boolean,
): LogFormat {
  const chosen = pick(flag, '--log-format', env, 'PHALANX_LOG_FORMAT');
  if (!chosen) return isTTY ? 'pretty' : 'json';
  const r = formatSchema.safeParse(chosen.value);
  if (!r.success)
    throw new LogConfigError(
      `${chosen.from} must be one of ${LOG_FORMATS.join(', ')} (got '${chosen.value}')`,
    );
  return r.data;
}

/** --log-level, else PHALANX_LOG_LEVEL, else info. */
export function resolveLogLevel(flag: string | undefined, env: string | undefined): LogLevel {
  const chosen = pick(flag, '--log-level', env, 'PHALANX_LOG_LEVEL');
  if (!chosen) return 'info';
  const r = levelSchema.safeParse(chosen.value);
  if (!r.success)
    throw new LogConfigError(
      `${chosen.from} must be one of ${LOG_LEVELS.join(', ')} (got '${chosen.value}')`,
    );
  return r.data;
}

function pick(
  flag: string | undefined,
  flagName: string,
  env: string | undefined,
  envName: string,
): { value: string; from: string } | undefined {
  if (flag !== undefined) return { value: flag, from: flagName };
  if (env !== undefined && env !== '') return { value: env, from: envName };
  return undefined;
}

export function createLogger(options: LoggerOptions): Logger {
  const sink = options.sink ?? process.stdout;
  if (options.format === 'json') {
    const p = pino(
      {
        level: options.level,
        base: { component: options.component, pid: process.pid, ...options.bindings },
        timestamp: stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      // A synchronous write: a process that logs why it stops and exits at once loses no line.
      sink === process.stdout
        ? pino.destination({ dest: 1, sync: true })
        : { write: (s: string) => sink.write(s) },
    );
    return pinoLogger(p, options.level);
  }
  return prettyLogger(sink, options.level, options.timestamps ?? false, options.prefix ?? '');
}

/** A log that drops everything (library callers that pass none). */
export const silentLogger: Logger = prettyLogger({ write: () => true }, 'silent', false, '');

function pinoLogger(p: pino.Logger, level: LogLevel): Logger {
  const at =
    (method: 'debug' | 'info' | 'warn' | 'error') =>
    (msg: string, fields?: LogFields): void => {
      if (fields) p[method](fields, msg);
      else p[method](msg);
    };
  return {
    level,
    format: 'json',
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (bindings) => pinoLogger(p.child(bindings), level),
  };
}

function prettyLogger(sink: LogSink, level: LogLevel, timestamps: boolean, prefix: string): Logger {
  const at =
    (lineLevel: Exclude<LogLevel, 'silent'>) =>
    (msg: string): void => {
      if (RANK[lineLevel] < RANK[level]) return;
      sink.write(`${timestamps ? `${new Date().toISOString()} ` : ''}${prefix}${msg}\n`);
    };
  return {
    level,
    format: 'pretty',
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (_bindings, more = '') => prettyLogger(sink, level, timestamps, prefix + more),
  };
}
