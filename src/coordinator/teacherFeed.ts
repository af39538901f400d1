/**
 * The PullTeacher stream of a distillation job: the header (config.json, size, the sha256 pinned at admission),
 * then model.safetensors read from disk in CHUNK_BYTES pieces. The coordinator checks only that config.json
 * still names the pinned sha256; the bytes are checked by the worker that receives them, so whatever happened to
 * the file after admission (or on the way) is refused where it would be used.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { TeacherSpec } from '../config/jobSpec.ts';
import type { TeacherChunk } from '../gen/phalanx/v1/TeacherChunk.ts';
import { CONFIG_FILE, parseCheckpointConfig } from '../checkpoint/modelCheckpoint.ts';
import { CHUNK_BYTES } from '../transport/protocol.ts';
import { StatusError } from './grpcStatus.ts';

export interface TeacherStream {
  header: TeacherChunk;
  /** The data chunks, in order. */
  chunks: AsyncIterable<TeacherChunk>;
  totalBytes: number;
}

/** Open the teacher of an admitted job (its checkpoint is a real directory and its sha256 is pinned). */
export async function openTeacher(teacher: TeacherSpec): Promise<TeacherStream> {
  let configJson: string;
  let config;
  try {
    configJson = await readFile(path.join(teacher.checkpoint, CONFIG_FILE), 'utf8');
    config = parseCheckpointConfig(configJson, CONFIG_FILE);
  } catch {
    throw new StatusError(
      grpc.status.FAILED_PRECONDITION,
      "the job's teacher checkpoint can no longer be read on the coordinator: the operator must restore it",
    );
  }
  if (config.sha256 !== teacher.sha256) {
    throw new StatusError(
      grpc.status.FAILED_PRECONDITION,
      "the job's teacher checkpoint was replaced after the job was admitted (its sha256 changed): resubmit the job",
    );
  }
  const file = path.join(teacher.checkpoint, config.file);
  async function* chunks(): AsyncIterable<TeacherChunk> {
    let offset = 0;
    for await (const piece of createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
      const data = piece as Buffer;
      yield { data: { offset, data } };
      offset += data.length;
    }
  }
  return {
    header: { header: { configJson, totalBytes: config.bytes, sha256: config.sha256 } },
    chunks: chunks(),
    totalBytes: config.bytes,
  };
}
