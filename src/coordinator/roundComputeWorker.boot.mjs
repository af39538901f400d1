// Worker-thread entry: TypeScript sources run through tsx, whose loader hooks are not inherited by workers.
import { register } from 'tsx/esm/api';

register();
await import(new URL('./roundComputeWorker.ts', import.meta.url).href);
