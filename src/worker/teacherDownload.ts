/**
 * A teacher checkpoint as a worker receives it over PullTeacher: one header (config.json, size, sha256), then the
 * bytes of model.safetensors in order. Nothing is used before the whole file has arrived and its sha256 equals
 * the header's (which the coordinator pinned when it admitted the job); any violation is a TeacherRefusedError,
 * and the worker does not train on what it got. Pure: no I/O.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  CONFIG_FILE,
  decodeCheckpointBytes,
  parseCheckpointConfig,
  TENSORS_FILE,
  type CheckpointConfig,
} from '../checkpoint/modelCheckpoint.ts';
import { LIMITS } from '../config/jobSpec.ts';
import { fromNamedTensors } from '../core/layout/namedTensors.ts';
import { modelLayout } from '../models/registry.ts';

/** Largest teacher file accepted: the largest model a spec allows, in float32, plus room for the header. */
export const MAX_TEACHER_BYTES = 4 * LIMITS.maxParameters + (16 << 20);

/** The teacher a worker got cannot be used: it says why, and it never trains on it. */
export class TeacherRefusedError extends Error {
  constructor(message: string) {
    super(`teacher refused: ${message}`);
    this.name = 'TeacherRefusedError';
  }
}

export interface Teacher {
  config: CheckpointConfig;
  /** The teacher's parameters, flat in its model's layout order. */
  params: Float32Array;
  sha256: string;
  bytes: number;
}

export class TeacherDownload {
  private config: CheckpointConfig | undefined;
  private expectedSha = '';
  private buffer: Buffer | undefined;
  private hash: Hash | undefined;
  private received = 0;

  header(h: { configJson: string; totalBytes: number; sha256: string }): void {
    if (this.config) throw new TeacherRefusedError('a second header in the stream');
    if (!/^[0-9a-f]{64}$/.test(h.sha256)) throw new TeacherRefusedError('the header carries no valid sha256');
    if (!(Number.isSafeInteger(h.totalBytes) && h.totalBytes > 0 && h.totalBytes <= MAX_TEACHER_BYTES)) {
      throw new TeacherRefusedError(`a size of ${h.totalBytes} bytes (at most ${MAX_TEACHER_BYTES})`);
    }
    let config: CheckpointConfig;
    try {
      config = parseCheckpointConfig(h.configJson, CONFIG_FILE);
    } catch (err) {
      throw new TeacherRefusedError((err as Error).message);
    }
    if (config.bytes !== h.totalBytes || config.sha256 !== h.sha256) {
      throw new TeacherRefusedError(`the header's size or sha256 disagrees with its ${CONFIG_FILE}`);
    }
    this.config = config;
    this.expectedSha = h.sha256;
    this.buffer = Buffer.allocUnsafe(h.totalBytes);
    this.hash = createHash('sha256');
  }

  data(offset: number, bytes: Uint8Array): void {
    if (!this.buffer || !this.hash) throw new TeacherRefusedError('data before the header');
    if (offset !== this.received) {
      throw new TeacherRefusedError(
        `a chunk at byte ${offset}, expected byte ${this.received} (out of order)`,
      );
    }
    if (this.received + bytes.length > this.buffer.length) {
      throw new TeacherRefusedError(`more than the announced ${this.buffer.length} bytes`);
    }
    this.buffer.set(bytes, this.received);
    this.hash.update(bytes);
    this.received += bytes.length;
  }

  /** The verified, decoded teacher. */
  finish(): Teacher {
    if (!this.config || !this.buffer || !this.hash) throw new TeacherRefusedError('the stream had no header');
    if (this.received !== this.buffer.length) {
      throw new TeacherRefusedError(`the stream ended after ${this.received} of ${this.buffer.length} bytes`);
    }
    const sha256 = this.hash.digest('hex');
    if (sha256 !== this.expectedSha) {
      throw new TeacherRefusedError(
        `checksum mismatch: the ${TENSORS_FILE} received has sha256 ${sha256}, the job pinned ${this.expectedSha}`,
      );
    }
    try {
      const { tensors } = decodeCheckpointBytes(this.config, this.buffer, TENSORS_FILE);
      const params = fromNamedTensors(tensors, modelLayout(this.config.model));
      return { config: this.config, params, sha256, bytes: this.received };
    } catch (err) {
      throw new TeacherRefusedError((err as Error).message);
    }
  }
}
