/** The job lifecycle's transition table, checked against a table written out independently here. */
import { expect } from 'chai';
import {
  applyTransition,
  canTransition,
  isTerminal,
  JOB_STATES,
  JOB_TRANSITION_NAMES,
  type JobState,
  type JobTransition,
} from '../../../src/core/jobLifecycle.ts';

const EXPECTED: Record<JobState, Partial<Record<JobTransition, JobState>>> = {
  queued: { start: 'starting', cancel: 'cancelled' },
  starting: { run: 'running', fail: 'failed', cancel: 'cancelled' },
  running: { resume: 'starting', complete: 'completed', fail: 'failed', cancel: 'cancelled' },
  completed: {},
  failed: {},
  cancelled: {},
};

describe('job lifecycle', () => {
  it('knows exactly the six states and six transitions', () => {
    expect([...JOB_STATES].sort()).to.deep.equal(Object.keys(EXPECTED).sort());
    expect([...JOB_TRANSITION_NAMES].sort()).to.deep.equal(
      ['cancel', 'complete', 'fail', 'resume', 'run', 'start'].sort(),
    );
  });

  for (const from of JOB_STATES) {
    for (const t of JOB_TRANSITION_NAMES) {
      const to = EXPECTED[from][t];
      it(`${from} --${t}--> ${to ?? 'refused'}`, () => {
        expect(applyTransition(from, t)).to.equal(to);
      });
    }
  }

  it('allows cancel from every state that is not terminal, and nothing out of a terminal state', () => {
    for (const s of JOB_STATES) {
      expect(applyTransition(s, 'cancel') === 'cancelled', s).to.equal(!isTerminal(s));
      if (isTerminal(s))
        for (const to of JOB_STATES) expect(canTransition(s, to), `${s} → ${to}`).to.equal(false);
    }
  });

  it('reaches running only through starting', () => {
    for (const s of JOB_STATES) expect(canTransition(s, 'running'), s).to.equal(s === 'starting');
  });
});
