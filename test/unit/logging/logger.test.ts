import { expect } from 'chai';
import {
  createLogger,
  LogConfigError,
  resolveLogFormat,
  resolveLogLevel,
  type LogFormat,
  type LogLevel,
} from '../../../src/logging/logger.ts';

function capture(
  format: LogFormat,
  level: LogLevel = 'info',
  extra: { timestamps?: boolean; prefix?: string } = {},
) {
  const lines: string[] = [];
  const logger = createLogger({
    component: 'worker',
    format,
    level,
    sink: { write: (s: string) => lines.push(...s.split('\n').filter((l) => l !== '')) },
    ...extra,
  });
  return { logger, lines };
}

describe('logging: one logger, json or pretty', () => {
  it('json: one object per line with time, level label, component, pid, bindings, fields and msg', () => {
    const { logger, lines } = capture('json');
    logger
      .child({ worker: 'w-1' }, '[w-1] ')
      .warn('cannot reach coordinator at 127.0.0.1:1', { retryInMs: 800 });
    expect(lines).to.have.length(1);
    const entry = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(entry).to.include({
      level: 'warn',
      component: 'worker',
      pid: process.pid,
      worker: 'w-1',
      retryInMs: 800,
      msg: 'cannot reach coordinator at 127.0.0.1:1',
    });
    expect(new Date(entry['time'] as string).toISOString()).to.equal(entry['time']);
  });

  it('json keeps a multi-line message (a stack) whole in one line', () => {
    const { logger, lines } = capture('json');
    logger.error('internal error ref r1: boom\n    at f (x.ts:1:1)');
    expect(lines).to.have.length(1);
    expect((JSON.parse(lines[0]) as { msg: string }).msg).to.equal(
      'internal error ref r1: boom\n    at f (x.ts:1:1)',
    );
  });

  it('pretty: the message alone, with the prefix of each child and the time when asked', () => {
    const { logger, lines } = capture('pretty', 'info', { timestamps: true });
    logger.child({ worker: 'w-1' }, '[w-1] ').info('joined job j as rank 0/1', { rank: 0 });
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[w-1\] joined job j as rank 0\/1$/);
  });

  for (const format of ['json', 'pretty'] as const) {
    it(`${format}: lines below the level are dropped, silent drops all`, () => {
      const warn = capture(format, 'warn');
      warn.logger.debug('d');
      warn.logger.info('i');
      warn.logger.warn('w');
      warn.logger.error('e');
      expect(
        warn.lines.map((l) => (format === 'json' ? (JSON.parse(l) as { msg: string }).msg : l)),
      ).to.deep.equal(['w', 'e']);
      const silent = capture(format, 'silent');
      silent.logger.error('e');
      expect(silent.lines).to.deep.equal([]);
    });
  }

  it('format: the flag, else PHALANX_LOG_FORMAT, else json off a terminal and pretty on one', () => {
    expect(resolveLogFormat(undefined, undefined, false)).to.equal('json');
    expect(resolveLogFormat(undefined, undefined, true)).to.equal('pretty');
    expect(resolveLogFormat(undefined, 'pretty', false)).to.equal('pretty');
    expect(resolveLogFormat('json', 'pretty', true)).to.equal('json');
    expect(() => resolveLogFormat(undefined, 'xml', false))
      .to.throw(LogConfigError)
      .with.property('message', "PHALANX_LOG_FORMAT must be one of json, pretty (got 'xml')");
  });

  it('level: the flag, else PHALANX_LOG_LEVEL, else info; a wrong value names its source', () => {
    expect(resolveLogLevel(undefined, undefined)).to.equal('info');
    expect(resolveLogLevel(undefined, 'debug')).to.equal('debug');
    expect(resolveLogLevel('error', 'debug')).to.equal('error');
    expect(() => resolveLogLevel('loud', undefined))
      .to.throw(LogConfigError)
      .with.property('message', "--log-level must be one of debug, info, warn, error, silent (got 'loud')");
  });
});
