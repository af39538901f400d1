/** Checks on a job's commit log (the store's `listRoundCommits`) shared by the high-availability tests. */
import { expect } from 'chai';
import type { RoundCommit } from '../../src/coordinator/state/stateStore.ts';

export interface Term {
  fence: number;
  rounds: number[];
}

/**
 * The commit log as leader terms: each token's rounds, in commit order. No round is applied twice: each term
 * commits consecutive rounds, the next term starts at the checkpoint it resumed from (≤ where the previous one
 * stopped: those rounds are recomputed from the checkpoint's state, not applied again on top), and once a token
 * appears no older token commits again.
 */
export function commitTerms(commits: RoundCommit[]): Term[] {
  const out: Term[] = [];
  for (const c of commits) {
    if (out.at(-1)?.fence !== c.fence) out.push({ fence: c.fence, rounds: [] });
    out.at(-1)!.rounds.push(c.round);
  }
  for (let i = 0; i < out.length; i++) {
    const { fence, rounds } = out[i];
    if (i > 0) {
      expect(fence, 'a token committed after a newer one').to.be.greaterThan(out[i - 1].fence);
      expect(rounds[0], `term ${fence} starts past where the previous one stopped`).to.be.at.most(
        out[i - 1].rounds.at(-1)! + 1,
      );
    }
    rounds.forEach((r, k) => expect(r, `term ${fence}: rounds in order`).to.equal(rounds[0] + k));
  }
  return out;
}

/** Rounds committed by one term and computed again by the next (it resumed from an earlier checkpoint). */
export function roundsRecomputed(terms: Term[]): number {
  let n = 0;
  for (let i = 1; i < terms.length; i++) n += terms[i - 1].rounds.at(-1)! + 1 - terms[i].rounds[0];
  return n;
}
