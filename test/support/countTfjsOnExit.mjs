// Preload (`node --import`): on exit, prints how many @tensorflow CommonJS modules the process loaded.
import { createRequire } from 'node:module';

const cache = createRequire(import.meta.url).cache;
process.on('exit', () => {
  const n = Object.keys(cache).filter((k) => k.includes('@' + 'tensorflow')).length;
  process.stderr.write(`tfjs-modules-loaded ${n}\n`);
});
