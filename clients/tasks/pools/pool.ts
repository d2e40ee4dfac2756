/**
 * A worker pool runs tasks in `size` slots. The worker decides what runs where and when; the
 * pool only runs, signals and kills.
 */
import type { SerializedError } from '../errors.js';
import type { Outcome, PoolJob } from '../execute.js';

export type PoolKind = 'processes' | 'threads' | 'async' | 'solo';

export interface Pool {
  readonly kind: PoolKind;
  readonly size: number;
  /** Starts the slots (spawns children); rejects if a child cannot load the app. */
  start(): Promise<void>;
  /** Runs a job in an idle slot; resolves with how it ended (never rejects). */
  run(slot: number, job: PoolJob): Promise<Outcome>;
  /** Aborts the running task's signal (soft: the task may clean up). */
  abort(slot: number, reason: SerializedError): void;
  /**
   * Stops the running task now; its run resolves `{ kind: 'killed' }`. Children are terminated
   * and replaced; in the async and solo pools the function keeps running, unobserved.
   */
  kill(slot: number): void;
  /** Stops every slot. Running tasks are killed. */
  close(): Promise<void>;
}
