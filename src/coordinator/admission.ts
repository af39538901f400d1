/**
 * What the coordinator checks at SubmitJob beyond the spec schema, about its own resources:
 * - memory: the job's parameters × the buffers the coordinator keeps for them must fit the memory budget;
 * - checkpoints: written under the coordinator's checkpoint directory only (a spec names at most a relative
 *   sub-directory; a symbolic link leading out of it is refused);
 * - data: `data.path` must name a Fashion-MNIST directory, and `data.source` a text file, inside one of the
 *   coordinator's data roots. Every reason a path is refused gets the same message, so a submitter learns
 *   nothing about what exists elsewhere;
 * - teacher: `teacher.checkpoint` must name a readable checkpoint directory inside the checkpoint directory or a
 *   data root (same one message otherwise), whose model the student can learn from (teacherProblems); its
 *   sha256 is pinned into the spec so every worker can check the bytes it is sent.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { JobSpecError, type JobSpec } from '../config/jobSpec.ts';
import { resolveFashionMnist } from '../data/fashionMnist.ts';
import { parameterCount } from '../models/parameterCount.ts';
import {
  CheckpointError,
  CONFIG_FILE,
  parseCheckpointConfig,
  TENSORS_FILE,
  type CheckpointConfig,
} from '../checkpoint/modelCheckpoint.ts';
import { teacherProblems } from '../models/teacherCompatibility.ts';

export const DEFAULT_DATA_DIR = '.phalanx';
export const DEFAULT_MEMORY_BUDGET_BYTES = 2 * 1024 ** 3;
/** System-wide dataset directory (Debian's dataset-* packages), a data root unless the operator says otherwise. */
export const SYSTEM_DATA_ROOT = '/usr/share/datasets';

export interface AdmissionConfig {
  /** Absolute: every job's checkpoints go below it. */
  checkpointRoot: string;
  /** Absolute directories a spec's data.path may point into. */
  dataRoots: string[];
  memoryBudgetBytes: number;
}

/** The coordinator's own resources would not suffice (RESOURCE_EXHAUSTED). */
export class MemoryBudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MemoryBudgetError';
  }
}

export interface MemoryEstimate {
  parameters: number;
  /** Full-size float32 copies of the parameters the coordinator keeps for the job. */
  copies: number;
  bytes: number;
}

/**
 * Coordinator memory of one job: P float32 parameters times the copies it holds — the parameters, the update, the
 * serialised parameter feed (half for bf16), the optimizer state (SGD momentum 1, Adam 2, the iterate average of
 * optimizer.ema 1), and the push buffers:
 * one per worker for the open round plus the pool the runtime keeps for reuse (up to workers.max + 4 more).
 */
export function jobMemory(spec: JobSpec): MemoryEstimate {
  const parameters = parameterCount(spec.model);
  const feed = spec.compression.encoding === 'bf16' ? 0.5 : 1;
  const optimizer =
    (spec.optimizer.kind === 'adam' ? 2 : spec.optimizer.momentum > 0 ? 1 : 0) +
    (spec.optimizer.ema > 0 ? 1 : 0);
  const pushBuffers = 2 * spec.workers.max + 4;
  const copies = 2 + feed + optimizer + pushBuffers;
  return { parameters, copies, bytes: Math.ceil(4 * parameters * copies) };
}

/**
 * Checks a validated spec against the coordinator's resources; returns it with data.path replaced by the dataset
 * directory it names. Throws JobSpecError (INVALID_ARGUMENT) or MemoryBudgetError (RESOURCE_EXHAUSTED).
 */
export function admitJob(spec: JobSpec, config: AdmissionConfig): JobSpec {
  const memory = jobMemory(spec);
  if (memory.bytes > config.memoryBudgetBytes) {
    throw new MemoryBudgetError(
      `job needs about ${formatBytes(memory.bytes)} of coordinator memory (${memory.parameters.toLocaleString('en')} ` +
        `parameters × ${memory.copies} copies: parameters, update, optimizer state, push buffers for ` +
        `workers.max = ${spec.workers.max}), over the budget of ${formatBytes(config.memoryBudgetBytes)}: ` +
        'use a smaller model or fewer workers, or ask the operator to raise --memory-budget',
    );
  }
  checkpointDirectory(spec, config);
  const taught = spec.teacher ? { ...spec, teacher: admitTeacher(spec, config) } : spec;
  if (spec.data.source !== undefined) {
    return { ...taught, data: { ...spec.data, source: textSourceFile(spec.data.source, config.dataRoots) } };
  }
  if (spec.data.path === undefined) return taught;
  return { ...taught, data: { ...spec.data, path: datasetDirectory(spec.data.path, config.dataRoots) } };
}

const NO_TEACHER =
  "teacher.checkpoint: no checkpoint by that name in the coordinator's checkpoint directory or data roots; give " +
  `a checkpoint directory (holding ${CONFIG_FILE} and ${TENSORS_FILE}) relative to one of them`;

/** The teacher section with its checkpoint's real directory and pinned sha256, or JobSpecError. */
function admitTeacher(spec: JobSpec, config: AdmissionConfig): NonNullable<JobSpec['teacher']> {
  const teacher = spec.teacher!;
  const found = teacherCheckpoint(teacher.checkpoint, [config.checkpointRoot, ...config.dataRoots]);
  const problems = teacherProblems(found.config.model, spec.model, spec.data);
  if (problems.length > 0) throw new JobSpecError(problems.map((p) => `teacher.checkpoint: ${p}`));
  if (teacher.sha256 !== undefined && teacher.sha256 !== found.config.sha256) {
    throw new JobSpecError([
      `teacher.sha256: the checkpoint's model.safetensors has sha256 ${found.config.sha256}, not the one given ` +
        '(the checkpoint changed, or this is another one): check the path, or remove sha256 to accept this one',
    ]);
  }
  return { ...teacher, checkpoint: found.dir, sha256: found.config.sha256 };
}

/**
 * The real directory and config of the checkpoint `checkpoint` names inside one of `roots`; one error for every
 * failure to find or read it. Only the config is read here; the tensors are checked by every worker.
 */
export function teacherCheckpoint(
  checkpoint: string,
  roots: readonly string[],
): { dir: string; config: CheckpointConfig } {
  for (const root of roots) {
    const candidate = path.resolve(root, checkpoint);
    if (!isInside(path.resolve(root), candidate) || !existsSync(root)) continue;
    try {
      const realRoot = realpathSync(root);
      const dir = realpathSync(candidate);
      const configFile = realpathSync(path.join(dir, CONFIG_FILE));
      const tensorFile = realpathSync(path.join(dir, TENSORS_FILE));
      if (![dir, configFile, tensorFile].every((p) => isInside(realRoot, p))) continue;
      if (!statSync(tensorFile).isFile()) continue;
      return { dir, config: parseCheckpointConfig(readFileSync(configFile, 'utf8'), CONFIG_FILE) };
    } catch (err) {
      // An unreadable config in an allowed place is worth saying; anything else answers like outside the roots.
      if (err instanceof CheckpointError) throw new JobSpecError([`teacher.checkpoint: ${err.message}`]);
    }
  }
  throw new JobSpecError([NO_TEACHER]);
}

/** Where the job's checkpoints go: `<checkpointRoot>/<checkpoint.dir>`, refused if a symbolic link leads out. */
export function checkpointDirectory(spec: JobSpec, config: AdmissionConfig): string {
  const root = config.checkpointRoot;
  const dir = spec.checkpoint.dir === undefined ? root : path.resolve(root, spec.checkpoint.dir);
  if (!isInside(realPath(root), realPath(dir))) {
    throw new JobSpecError([
      "checkpoint.dir: leads out of the coordinator's checkpoint directory (through a symbolic link); use another name",
    ]);
  }
  return dir;
}

const NO_DATASET =
  "data.path: no Fashion-MNIST dataset by that name in the coordinator's data roots; give a directory relative to " +
  'a data root (the operator lists them with --data-root), or omit data.path for the default dataset';

/** The real path of the dataset directory `dataPath` names inside one of `roots`; one error for every failure. */
export function datasetDirectory(dataPath: string, roots: readonly string[]): string {
  for (const root of roots) {
    const candidate = path.resolve(root, dataPath);
    if (!isInside(path.resolve(root), candidate) || !existsSync(root)) continue;
    try {
      const realRoot = realpathSync(root);
      const real = realpathSync(candidate);
      if (!isInside(realRoot, real)) continue;
      const { files } = resolveFashionMnist({ path: real });
      if (Object.values(files).every((f) => isInside(realRoot, realpathSync(f)))) return real;
    } catch {
      // absent, unreadable or incomplete: same answer as outside the roots
    }
  }
  throw new JobSpecError([NO_DATASET]);
}

const NO_TEXT =
  "data.source: no text file by that name in the coordinator's data roots; give a file relative to a data root " +
  '(the operator lists them with --data-root), or omit data.source for the default text';

/** The real path of the text file `source` names inside one of `roots`; one error for every failure. */
export function textSourceFile(source: string, roots: readonly string[]): string {
  for (const root of roots) {
    const candidate = path.resolve(root, source);
    if (!isInside(path.resolve(root), candidate) || !existsSync(root)) continue;
    try {
      const real = realpathSync(candidate);
      if (isInside(realpathSync(root), real) && statSync(real).isFile()) return real;
    } catch {
      // absent or unreadable: same answer as outside the roots
    }
  }
  throw new JobSpecError([NO_TEXT]);
}

/** Real path of `p`: its deepest existing ancestor resolved through symbolic links, the rest appended. */
function realPath(p: string): string {
  const rest: string[] = [];
  let existing = path.resolve(p);
  while (!existsSync(existing)) {
    const parent = path.dirname(existing);
    if (parent === existing) break;
    rest.unshift(path.basename(existing));
    existing = parent;
  }
  let real: string;
  try {
    real = realpathSync(existing);
  } catch {
    real = existing;
  }
  return path.join(real, ...rest);
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

/** "2GiB", "512 MiB", "1.5G", "1000000" (bytes) → bytes. */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*$/i.exec(text);
  if (!m) throw new Error(`invalid size '${text}': use e.g. 2GiB, 512MiB or a number of bytes`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const power = { b: 0, k: 1, m: 2, g: 3, t: 4 }[unit[0] as 'b' | 'k' | 'm' | 'g' | 't'];
  const base = unit.length === 2 && unit !== 'b' ? 1000 : 1024;
  return Math.round(Number(m[1]) * base ** power);
}
