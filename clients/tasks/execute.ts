/**
 * Runs one task function and reports how it ended, as plain data that can cross a process or
 * thread boundary. Used in the worker's own process (async, solo pools) and in pool children.
 */
import type { LazyAbort } from '../lazy-abort.js';
import type { RegisteredTask, TaskContext } from './app.js';
import { Reject, Retry, serializeError, TaskError, type SerializedError } from './errors.js';

/** What a pool is asked to run. */
export interface PoolJob {
  taskId: string;
  name: string;
  args: unknown[];
  retries: number;
  deliveryCount: number;
  queue: string;
}

/** How a run ended. */
export type Outcome =
  | { kind: 'success'; value: unknown }
  /** `retryable`: the task's `autoretryFor` matched the error (checked where the error object lives). */
  | { kind: 'failure'; error: SerializedError; retryable: boolean }
  | { kind: 'retry'; countdownMs?: number; eta?: number; maxRetries?: number; cause?: SerializedError }
  | { kind: 'reject'; error: SerializedError }
  /** The pool child died under the task without being told to. */
  | { kind: 'lost'; error: SerializedError }
  /** The pool killed the task (time limit, or revoke with terminate). */
  | { kind: 'killed' };

export type TaskLookup = (name: string) => RegisteredTask | undefined;

/** `this` of a running task. A class, not a literal with closures: one small object per task. */
class RunContext implements TaskContext {
  readonly id: string;
  readonly name: string;
  readonly retries: number;
  readonly deliveryCount: number;
  readonly queue: string;
  readonly #abort: LazyAbort;

  constructor(job: PoolJob, abort: LazyAbort) {
    this.id = job.taskId;
    this.name = job.name;
    this.retries = job.retries;
    this.deliveryCount = job.deliveryCount;
    this.queue = job.queue;
    this.#abort = abort;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  retry(options: ConstructorParameters<typeof Retry>[0] = {}): never {
    throw new Retry(options);
  }
}

export async function execute(lookup: TaskLookup, job: PoolJob, abort: LazyAbort): Promise<Outcome> {
  const task = lookup(job.name);
  if (task === undefined) {
    const error = new TaskError('E_TASK_UNKNOWN', `task ${job.name} is not registered in this worker's app`, { taskId: job.taskId });
    return { kind: 'failure', error: serializeError(error), retryable: false };
  }
  const context = new RunContext(job, abort);
  try {
    const value = await task.fn.apply(context, job.args);
    // Results are stored as JSON: check here, where the task can still be blamed for it.
    JSON.stringify(value ?? null);
    return { kind: 'success', value: value ?? null };
  } catch (err) {
    if (err instanceof Retry) {
      const outcome: Outcome & { kind: 'retry' } = { kind: 'retry' };
      if (err.countdownMs !== undefined) outcome.countdownMs = err.countdownMs;
      if (err.eta !== undefined) outcome.eta = err.eta;
      if (err.maxRetries !== undefined) outcome.maxRetries = err.maxRetries;
      if (err.cause !== undefined) outcome.cause = serializeError(err.cause);
      return outcome;
    }
    if (err instanceof Reject) return { kind: 'reject', error: serializeError(err.cause ?? err) };
    let retryable = false;
    try {
      retryable = task.options.autoretry?.(err) ?? false;
    } catch {
      // A throwing predicate means "do not retry".
    }
    return { kind: 'failure', error: serializeError(err), retryable };
  }
}
