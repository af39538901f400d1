/**
 * Character-level text for language models: the King James Bible (public domain), one verse per line with the
 * verse references ("Ge1:1 ") removed.
 *
 * Where the text is looked for, first hit wins:
 *   1. the `source` option (data.source of a job: a UTF-8 text file, else an error);
 *   2. the PHALANX_TEXT environment variable (same);
 *   3. the Debian packages `bible-kjv-text` (/usr/lib/bible.data) and `bible-kjv` (the `bible` program), which
 *      give the whole KJV: 31,102 verses, 4,137,850 characters;
 *   4. the repository's bundled excerpt data/kjv-excerpt/kjv-excerpt.txt (the first verses of Genesis, ~190 KB).
 *
 * Tokens are characters; a vocabulary is a sorted string of distinct characters and a token id is a character's
 * index in it. The last 10 % of the text (by character) is held out: it is what evaluations measure, in
 * nats/char. Each part is cut into non-overlapping sequences of `seqLen` characters whose targets are the
 * following characters: sequence i reads tokens [i·T, (i+1)·T) and predicts [i·T + 1, (i+1)·T + 1).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatasetSplit } from './fashionMnist.ts';
import { packagePath } from '../packageRoot.ts';

/** The sorted distinct characters of the whole KJV text as loaded here (63). */
export const KJV_VOCABULARY = "\n !'(),-.:;?ABCDEFGHIJKLMNOPQRSTUVWYZabcdefghijklmnopqrstuvwxyz";
/** Fraction of the text (its end) held out for evaluation. */
export const HELD_OUT_FRACTION = 0.1;
export const TEXT_ENV_VAR = 'PHALANX_TEXT';
export const DEBIAN_BIBLE_DATA = '/usr/lib/bible.data';
export const BUNDLED_EXCERPT = packagePath('data', 'kjv-excerpt', 'kjv-excerpt.txt');

const HOW_TO_GET =
  'Install the KJV with `apt-get install bible-kjv-text bible-kjv`, or set data.source (or ' +
  `${TEXT_ENV_VAR}) to a UTF-8 text file.`;

export interface TextLookup {
  source?: string;
  env?: Record<string, string | undefined>;
  /** Debian's data file; the `bible` program must be on PATH too. */
  debianData?: string;
  bundled?: string;
}

export interface LoadedText {
  text: string;
  /** Where it came from, for logs and reports. */
  source: string;
}

/** The text, following the order documented above; throws with instructions if none is found. */
export function loadText(options: TextLookup = {}): LoadedText {
  const env = options.env ?? process.env;
  if (options.source !== undefined) return { text: readTextFile(options.source, 'data.source'), source: options.source };
  const fromEnv = env[TEXT_ENV_VAR];
  if (fromEnv !== undefined && fromEnv !== '') {
    return { text: readTextFile(fromEnv, TEXT_ENV_VAR), source: `${TEXT_ENV_VAR}=${fromEnv}` };
  }
  const debianData = options.debianData ?? DEBIAN_BIBLE_DATA;
  const looked: string[] = [];
  if (isFile(debianData)) {
    const kjv = debianKjv(debianData);
    if (kjv !== undefined) return { text: kjv, source: `Debian packages bible-kjv-text, bible-kjv (${debianData})` };
    looked.push(`${debianData} (the \`bible\` program of package bible-kjv is missing)`);
  } else looked.push(`${debianData} (absent)`);
  const bundled = options.bundled ?? BUNDLED_EXCERPT;
  if (isFile(bundled)) return { text: readFileSync(bundled, 'utf8'), source: `bundled KJV excerpt (${bundled})` };
  looked.push(`${bundled} (absent)`);
  throw new Error(`text not found; looked in ${looked.join(' and ')}. ${HOW_TO_GET}`);
}

/**
 * The whole KJV through Debian's `bible` program (which reads `bible.data` from the data file's directory), verse
 * references removed; undefined if the program is missing.
 */
export function debianKjv(dataFile: string = DEBIAN_BIBLE_DATA): string | undefined {
  let out: string;
  try {
    out = execFileSync('bible', ['-f', '-p', dirname(dataFile), 'gen1:1-rev22:21'], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`running \`bible\` on ${dataFile} failed: ${(e as Error).message}`, { cause: e });
  }
  return stripVerseReferences(out);
}

/** "Ge1:1 In the beginning…" → "In the beginning…", line by line. */
export function stripVerseReferences(text: string): string {
  return text.replace(/^[1-3]?[A-Za-z]+\d+:\d+ /gm, '');
}

/** The sorted distinct characters of `text`. */
export function vocabularyOf(text: string): string {
  return [...new Set(text)].sort().join('');
}

/** Token ids of `text` in `vocab`; throws naming the characters the vocabulary lacks. */
export function encodeText(text: string, vocab: string): Uint8Array {
  if (vocab.length > 256) throw new Error(`encodeText: at most 256 characters in a vocabulary, got ${vocab.length}`);
  const ids = new Map<string, number>();
  for (let i = 0; i < vocab.length; i++) ids.set(vocab[i], i);
  const out = new Uint8Array(text.length);
  const missing = new Set<string>();
  for (let i = 0; i < text.length; i++) {
    const id = ids.get(text[i]);
    if (id === undefined) missing.add(text[i]);
    else out[i] = id;
  }
  if (missing.size > 0) {
    throw new Error(
      `the text has characters outside model.vocab: ${JSON.stringify([...missing].sort().join(''))}; ` +
        `set model.vocab to the text's sorted distinct characters`,
    );
  }
  return out;
}

/** The first (1 − heldOut) of the tokens for training and the rest for evaluation. */
export function splitHeldOut(tokens: Uint8Array, heldOut = HELD_OUT_FRACTION): { train: Uint8Array; heldOut: Uint8Array } {
  if (!(heldOut > 0 && heldOut < 1)) throw new Error(`splitHeldOut: fraction must be in (0, 1), got ${heldOut}`);
  const cut = tokens.length - Math.round(heldOut * tokens.length);
  return { train: tokens.subarray(0, cut), heldOut: tokens.subarray(cut) };
}

/**
 * Non-overlapping sequences of `seqLen` tokens with their next-token targets, as a DatasetSplit: x = input
 * ids as float32, labels = target ids, both count·T long (at most `max` sequences).
 */
export function sequenceSplit(tokens: Uint8Array, seqLen: number, max?: number): DatasetSplit {
  if (!Number.isInteger(seqLen) || seqLen <= 0) throw new Error(`sequenceSplit: seqLen must be a positive integer`);
  const count = Math.min(Math.floor((tokens.length - 1) / seqLen), max ?? Infinity);
  if (!(count > 0)) {
    throw new Error(`text: ${tokens.length} characters hold no sequence of ${seqLen}; lower data.seqLen or use a longer text`);
  }
  const n = count * seqLen;
  const images = new Float32Array(n);
  for (let i = 0; i < n; i++) images[i] = tokens[i];
  return { images, labels: tokens.slice(1, n + 1), count, exampleSize: seqLen };
}

/** Training and held-out sequences of a text for a vocabulary (what fashionMnist gives as train and test). */
export function textDataset(
  loaded: LoadedText,
  vocab: string,
  seqLen: number,
  limits: { maxTrain?: number; maxTest?: number } = {},
): { train: DatasetSplit; test: DatasetSplit; source: string } {
  const { train, heldOut } = splitHeldOut(encodeText(loaded.text, vocab));
  return {
    train: sequenceSplit(train, seqLen, limits.maxTrain),
    test: sequenceSplit(heldOut, seqLen, limits.maxTest),
    source: loaded.source,
  };
}

function readTextFile(path: string, what: string): string {
  if (!isFile(path)) throw new Error(`text: ${what} '${path}' is not a file. ${HOW_TO_GET}`);
  return readFileSync(path, 'utf8');
}

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}
