/**
 * The `async` and `solo` pools: tasks run in the worker's own event loop. `async` runs up to
 * `size` at once (for I/O-bound tasks, hundreds); `solo` runs one.
 */
import type { RegisteredTask } from '../app.js';
import { deserializeError, type SerializedError } from '../errors.js';
import { LazyAbort } from '../../lazy-abort.js';
import { execute, type Outcome, type PoolJob } from '../execute.js';
import type { Pool, PoolKind } from './pool.js';

interface Running {
  abort: LazyAbort;
  /** Ends the run with `killed` without waiting for the function. */
  kill(): void;
}

export function createInlinePool(kind: Extract<PoolKind, 'async' | 'solo'>, size: number, lookup: (name: string) => RegisteredTask | undefined): Pool {
  const running = new Map<number, Running>();
  return {
    kind,
    size: kind === 'solo' ? 1 : size,
    async start() {},
    run(slot: number, job: PoolJob): Promise<Outcome> {
      const abort = new LazyAbort();
      return new Promise<Outcome>((resolve) => {
        running.set(slot, { abort, kill: () => resolve({ kind: 'killed' }) });
        execute(lookup, job, abort).then(resolve);
      }).finally(() => running.delete(slot));
    },
    abort(slot: number, reason: SerializedError) {
      running.get(slot)?.abort.abort(deserializeError(reason));
    },
    kill(slot: number) {
      const run = running.get(slot);
      if (run === undefined) return;
      run.abort.abort(new Error('task killed'));
      run.kill();
    },
    async close() {
      for (const slot of [...running.keys()]) this.kill(slot);
    },
  };
}
