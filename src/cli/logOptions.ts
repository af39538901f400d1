/**
 * `--log-format` and `--log-level` of the service commands (coordinator, worker), and the logger they make.
 * Flags win over PHALANX_LOG_FORMAT / PHALANX_LOG_LEVEL; PHALANX_DEBUG=1 means debug when no level is given.
 */
import { Option, type Command } from 'commander';
import {
  createLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  resolveLogFormat,
  resolveLogLevel,
  type LogFields,
  type Logger,
  type LogSink,
} from '../logging/logger.ts';

export interface LogFlags {
  logFormat?: string;
  logLevel?: string;
}

export function addLogOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--log-format <format>',
        'json: one JSON object per line; pretty: human lines (env PHALANX_LOG_FORMAT; default: json unless stdout is a terminal)',
      ).choices(LOG_FORMATS),
    )
    .addOption(
      new Option(
        '--log-level <level>',
        'least severe level logged (env PHALANX_LOG_LEVEL; default info)',
      ).choices(LOG_LEVELS),
    );
}

/** The logger of a service process, writing to `sink` (default stdout). */
export function serviceLogger(
  component: string,
  flags: LogFlags,
  options: { timestamps?: boolean; prefix?: string; bindings?: LogFields; sink?: LogSink } = {},
  env: NodeJS.ProcessEnv = process.env,
): Logger {
  const sink = options.sink ?? process.stdout;
  const debugEnv = env['PHALANX_DEBUG'] === '1' ? 'debug' : undefined;
  return createLogger({
    component,
    format: resolveLogFormat(flags.logFormat, env['PHALANX_LOG_FORMAT'], Boolean(sink.isTTY)),
    level: resolveLogLevel(flags.logLevel, env['PHALANX_LOG_LEVEL'] || debugEnv),
    sink,
    timestamps: options.timestamps,
    prefix: options.prefix,
    bindings: options.bindings,
  });
}
