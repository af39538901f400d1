/**
 * The one tfjs instance of the process. Every module that touches tensors imports `tf` from here, so the
 * backends registered below (wasm here; tensorflow / tensorflow-gpu when `selectBackend` loads tfjs-node*)
 * and the ops all live in the same tfjs-core engine.
 *
 * Side effects on import:
 * - registers the wasm backend (it is only initialised when selected);
 * - turns on tfjs "prod" mode, which in tfjs 4.22 only silences tfjs's console warnings (notably the
 *   "Hi, looks like you are running TensorFlow.js in Node.js" banner of the cpu backend). Set
 *   PHALANX_TFJS_VERBOSE=1 to keep tfjs's warnings.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

if (!isTruthy(process.env.PHALANX_TFJS_VERBOSE)) tf.env().set('PROD', true);

function isTruthy(v: string | undefined): boolean {
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

export { tf };
