/**
 * The job lifecycle as an explicit state machine. Every change of a job's state is one of the named transitions
 * below, applied by the state store as a compare-and-set: it happens only if the job is currently in one of the
 * transition's `from` states. That is what makes cancel win every race: once `cancel` has been applied, `run`
 * (starting → running) can no longer succeed, so a runtime built meanwhile is discarded before it is published.
 *
 *   queued ──start──▶ starting ──run──▶ running ──complete──▶ completed
 *      │                 │  ▲              │ │
 *      │                 │  └───resume─────┘ │   (a restarted coordinator rebuilds a running job's runtime)
 *      │                 ├──fail─────────────┴──▶ failed
 *      └──────cancel─────┴──────cancel───────────▶ cancelled   (cancel from queued, starting or running)
 */

export const JOB_STATES = ['queued', 'starting', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_JOB_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

export interface TransitionRule {
  readonly from: readonly JobState[];
  readonly to: JobState;
}

export const JOB_TRANSITIONS = {
  /** The scheduler claimed a queued job and is building its runtime. */
  start: { from: ['queued'], to: 'starting' },
  /** The runtime is built: publish it (workers may join from now on). */
  run: { from: ['starting'], to: 'running' },
  /** A restarted coordinator rebuilds the runtime of a job that was running. */
  resume: { from: ['running'], to: 'starting' },
  complete: { from: ['running'], to: 'completed' },
  fail: { from: ['starting', 'running'], to: 'failed' },
  cancel: { from: ['queued', 'starting', 'running'], to: 'cancelled' },
} as const satisfies Record<string, TransitionRule>;

export type JobTransition = keyof typeof JOB_TRANSITIONS;
export const JOB_TRANSITION_NAMES = Object.keys(JOB_TRANSITIONS) as JobTransition[];

export function isJobState(value: string): value is JobState {
  return (JOB_STATES as readonly string[]).includes(value);
}

export function isTerminal(state: JobState): boolean {
  return TERMINAL_JOB_STATES.includes(state);
}

/** The state `transition` leads to from `state`, or undefined if the transition is not allowed there. */
export function applyTransition(state: JobState, transition: JobTransition): JobState | undefined {
  const rule: TransitionRule = JOB_TRANSITIONS[transition];
  return rule.from.includes(state) ? rule.to : undefined;
}

/** Whether some named transition leads from `from` to `to`. */
export function canTransition(from: JobState, to: JobState): boolean {
  return JOB_TRANSITION_NAMES.some((t) => applyTransition(from, t) === to);
}
