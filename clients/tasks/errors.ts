/**
 * Errors of the task layer.
 *
 * Two kinds: `TaskError`s that callers see (a failed, revoked or timed-out task, a bad call), each
 * with a stable `code` listed in docs/errors.md; and control errors that a task throws to say what
 * should happen next (`Retry`, `Reject`), as river's `JobSnooze`/`JobCancel` or BullMQ's
 * `UnrecoverableError` do.
 */

/** Codes of the task layer's errors (client side; they never travel as broker error frames). */
export const TaskErrorCodes = {
  /** The task ran and failed; `get()` rethrows it with the task's error type, message and stack. */
  E_TASK_FAILED: 'E_TASK_FAILED',
  /** The task was revoked (or expired before it ran). */
  E_TASK_REVOKED: 'E_TASK_REVOKED',
  /** `get()` waited `timeoutMs` and the task had not finished. */
  E_TASK_TIMEOUT: 'E_TASK_TIMEOUT',
  /** The task was sent with `ignoreResult`: there is no result to wait for. */
  E_RESULT_IGNORED: 'E_RESULT_IGNORED',
  /** The broker knows no task with this id (never sent with results kept, or its result expired). */
  E_TASK_NOT_FOUND: 'E_TASK_NOT_FOUND',
  /** The task ran past `timeLimitMs` and was killed. */
  E_TASK_TIME_LIMIT: 'E_TASK_TIME_LIMIT',
  /** The task ran past `softTimeLimitMs`: the reason its `signal` aborted with. */
  E_TASK_SOFT_TIME_LIMIT: 'E_TASK_SOFT_TIME_LIMIT',
  /** A worker received a task name its app does not register. */
  E_TASK_UNKNOWN: 'E_TASK_UNKNOWN',
  /** The pool child running the task died (crash, out of memory, killed from outside). */
  E_WORKER_LOST: 'E_WORKER_LOST',
  /** A task was called or defined with invalid arguments or options. */
  E_TASK_INVALID: 'E_TASK_INVALID',
  /** `retry()` was asked for more retries than `retry.max` allows. */
  E_TASK_MAX_RETRIES: 'E_TASK_MAX_RETRIES',
} as const;

export type TaskErrorCode = keyof typeof TaskErrorCodes;

/** An error of the task layer, with a stable code. */
export class TaskError extends Error {
  readonly code: TaskErrorCode;
  /** The task it is about, when there is one. */
  readonly taskId: string | undefined;

  constructor(code: TaskErrorCode, message: string, options: ErrorOptions & { taskId?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TaskError';
    this.code = code;
    this.taskId = options.taskId;
  }
}

/**
 * A task's failure as `AsyncResult.get()` rethrows it: `name` is the task's error type
 * (e.g. `'TypeError'`), `message` its message, and `stack` the stack from the worker.
 */
export class TaskFailedError extends TaskError {
  /** The error type the task threw (its `name`). */
  readonly type: string;
  /** The `code` property of the task's error, when it had a string one. */
  readonly errorCode: string | undefined;

  constructor(taskId: string, failure: SerializedError) {
    super('E_TASK_FAILED', failure.message, { taskId });
    this.type = failure.type;
    this.name = failure.type;
    this.errorCode = failure.code;
    if (failure.stack !== undefined) this.stack = failure.stack;
  }
}

/**
 * Thrown by a task (usually through `this.retry()`) to run it again later. A task's retries are
 * bounded by its `retry.max`; past it the task fails with the `cause` (or `E_TASK_MAX_RETRIES`).
 */
export class Retry extends Error {
  /** Run again after this many ms; default: the task's backoff for this retry. */
  readonly countdownMs: number | undefined;
  /** Run again at this time (ms since epoch); wins over `countdownMs`. */
  readonly eta: number | undefined;
  /** Overrides the task's `retry.max` for this retry. */
  readonly maxRetries: number | undefined;

  constructor(options: { countdownMs?: number; eta?: Date | number; maxRetries?: number; cause?: unknown } = {}) {
    super('task asked to be retried', options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'Retry';
    this.countdownMs = options.countdownMs;
    this.eta = options.eta instanceof Date ? options.eta.getTime() : options.eta;
    this.maxRetries = options.maxRetries;
  }
}

/**
 * Thrown by a task to fail at once, without retries: the result is stored as a failure (with
 * `cause` when given) and the message is rejected, so it goes to the queue's dead-letter queue.
 */
export class Reject extends Error {
  constructor(message = 'task rejected', options: ErrorOptions = {}) {
    super(message, options);
    this.name = 'Reject';
  }
}

/** An error as it travels from a worker to the result store, a pool parent or an errback. */
export interface SerializedError {
  type: string;
  message: string;
  stack?: string;
  code?: string;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    const out: SerializedError = { type: err.name || err.constructor?.name || 'Error', message: err.message };
    if (err.stack !== undefined) out.stack = err.stack;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    return out;
  }
  return { type: typeof err, message: String(err) };
}

/** An `Error` rebuilt from its serialized form (for a task's `signal.reason`, or a cause). */
export function deserializeError(failure: SerializedError): Error {
  const err = new Error(failure.message);
  err.name = failure.type;
  if (failure.stack !== undefined) err.stack = failure.stack;
  if (failure.code !== undefined) (err as Error & { code: string }).code = failure.code;
  return err;
}

/** The reason a task's signal aborts with when its soft time limit passes. */
export function softTimeLimitError(limitMs: number): Error {
  const err = new Error(`soft time limit (${limitMs} ms) exceeded`);
  err.name = 'SoftTimeLimitExceeded';
  (err as Error & { code: string }).code = TaskErrorCodes.E_TASK_SOFT_TIME_LIMIT;
  return err;
}
