/** Messages between a worker and its pool children (processes or threads). */
import type { SerializedError } from '../errors.js';
import type { Outcome, PoolJob } from '../execute.js';

export type ToChild =
  | { type: 'run'; job: PoolJob }
  | { type: 'abort'; reason: SerializedError }
  | { type: 'exit' };

export type FromChild =
  | { type: 'ready' }
  | { type: 'init-error'; error: SerializedError }
  | { type: 'done'; outcome: Outcome };

/** Set in a pool child before it imports the app module: a worker must not start there. */
export const POOL_CHILD_MARK = Symbol.for('berth.poolChild');

export function inPoolChild(): boolean {
  return (globalThis as Record<symbol, unknown>)[POOL_CHILD_MARK] === true;
}
