/** Options of tasks and workers: defaults, validation and the retry schedule. */
import { TaskError } from './errors.js';
import { parseRateLimit } from './rate-limit.js';

/** Which errors a task retries by itself: error classes, or a predicate. */
export type AutoretryFor = ReadonlyArray<abstract new (...args: never[]) => Error> | ((error: unknown) => boolean);

/** How a task retries. */
export interface RetryOptions {
  /** Most retries after the first run (Celery's `max_retries`). Default 3. */
  max?: number;
  /** Base delay: retry n waits `backoffMs × 2^n` (n from 0), capped by `backoffMaxMs`. Default 1000. */
  backoffMs?: number;
  /** Cap of the exponential delay. Default 600_000 (10 min, as Celery's `retry_backoff_max`). */
  backoffMaxMs?: number;
  /** Full jitter: wait a random time between 0 and the delay, so retries of many tasks spread out. Default true. */
  jitter?: boolean;
}

/** Options of one task; the app's `taskDefaults` fill in what a task leaves out. */
export interface TaskOptions {
  /**
   * Ack the message after the task finishes (true), or as it starts (false). Default **true**:
   * a worker that dies mid-task loses nothing, the task runs again elsewhere. Tasks must then be
   * idempotent; the worker extends the lease of running tasks, so a long task is not taken for a
   * dead one. Early ack (false) runs each task at most once, and loses it if the worker dies.
   */
  acksLate?: boolean;
  /** Retry policy; setting it also turns on automatic retries for errors `autoretryFor` matches. */
  retry?: RetryOptions;
  /** Errors that retry by themselves. Default: every error when `retry` is set, none otherwise. */
  autoretryFor?: AutoretryFor;
  /** After this many ms the task's `signal` aborts (it may clean up and return or throw). Default none. */
  softTimeLimitMs?: number;
  /**
   * After this many ms the task is killed and fails with `E_TASK_TIME_LIMIT`: the pool child
   * (processes, threads) is terminated and replaced. In the async and solo pools the function
   * cannot be stopped: its result is dropped, it fails, and its slot is freed. Default none.
   */
  timeLimitMs?: number;
  /** Starts allowed per worker, like `'60/m'`, `'10/s'` or `'100/h'`. Default none. */
  rateLimit?: string;
  /** Keep no result and no state for this task. Default false. */
  ignoreResult?: boolean;
  /** How long results are kept, ms. Default 86_400_000 (one day, as Celery's `result_expires`). */
  resultTtlMs?: number;
  /** Queue, when no route names one. */
  queue?: string;
  /** Default priority 0–9. */
  priority?: number;
}

export interface ResolvedTaskOptions {
  acksLate: boolean;
  retry: Required<RetryOptions>;
  autoretry: ((error: unknown) => boolean) | undefined;
  softTimeLimitMs: number | undefined;
  timeLimitMs: number | undefined;
  rateLimit: string | undefined;
  /** Ms between starts under `rateLimit`. */
  rateIntervalMs: number | undefined;
  ignoreResult: boolean;
  resultTtlMs: number;
  queue: string | undefined;
  priority: number | undefined;
}

export const TASK_DEFAULTS = {
  acksLate: true,
  retry: { max: 3, backoffMs: 1000, backoffMaxMs: 600_000, jitter: true },
  ignoreResult: false,
  resultTtlMs: 86_400_000,
} as const;

function checkMs(name: string, value: number | undefined, { min = 0 } = {}): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value < min) {
    throw new TaskError('E_TASK_INVALID', `"${name}" must be a number ≥ ${min} (ms), got ${String(value)}`);
  }
}

function toPredicate(autoretryFor: AutoretryFor | undefined, retrySet: boolean): ((error: unknown) => boolean) | undefined {
  if (typeof autoretryFor === 'function') return autoretryFor;
  if (autoretryFor !== undefined) {
    const classes = [...autoretryFor];
    return (error) => classes.some((cls) => error instanceof cls);
  }
  return retrySet ? () => true : undefined;
}

/** Merges a task's options over the app's defaults, checks them, and freezes the result. */
export function resolveTaskOptions(name: string, own: TaskOptions = {}, defaults: TaskOptions = {}): Readonly<ResolvedTaskOptions> {
  const merged: TaskOptions = { ...defaults, ...own };
  const retrySet = own.retry !== undefined || defaults.retry !== undefined;
  const retry = { ...TASK_DEFAULTS.retry, ...defaults.retry, ...own.retry };
  if (!Number.isSafeInteger(retry.max) || retry.max < 0) {
    throw new TaskError('E_TASK_INVALID', `task ${name}: "retry.max" must be an integer ≥ 0, got ${String(retry.max)}`);
  }
  checkMs(`task ${name}: retry.backoffMs`, retry.backoffMs);
  checkMs(`task ${name}: retry.backoffMaxMs`, retry.backoffMaxMs);
  checkMs(`task ${name}: softTimeLimitMs`, merged.softTimeLimitMs, { min: 1 });
  checkMs(`task ${name}: timeLimitMs`, merged.timeLimitMs, { min: 1 });
  checkMs(`task ${name}: resultTtlMs`, merged.resultTtlMs, { min: 1 });
  if (merged.softTimeLimitMs !== undefined && merged.timeLimitMs !== undefined && merged.softTimeLimitMs >= merged.timeLimitMs) {
    throw new TaskError('E_TASK_INVALID', `task ${name}: "softTimeLimitMs" must be < "timeLimitMs" so the task can clean up before it is killed`);
  }
  if (merged.priority !== undefined && !(Number.isInteger(merged.priority) && merged.priority >= 0 && merged.priority <= 9)) {
    throw new TaskError('E_TASK_INVALID', `task ${name}: "priority" must be an integer 0–9, got ${String(merged.priority)}`);
  }
  return Object.freeze({
    acksLate: merged.acksLate ?? TASK_DEFAULTS.acksLate,
    retry: Object.freeze(retry),
    autoretry: toPredicate(merged.autoretryFor, retrySet),
    softTimeLimitMs: merged.softTimeLimitMs,
    timeLimitMs: merged.timeLimitMs,
    rateLimit: merged.rateLimit,
    rateIntervalMs: merged.rateLimit === undefined ? undefined : parseRateLimit(merged.rateLimit),
    ignoreResult: merged.ignoreResult ?? TASK_DEFAULTS.ignoreResult,
    resultTtlMs: merged.resultTtlMs ?? TASK_DEFAULTS.resultTtlMs,
    queue: merged.queue,
    priority: merged.priority,
  });
}

/** The delay before retry number `retries` (0 = the first retry): exponential, capped, with full jitter. */
export function backoffDelayMs(retry: Required<RetryOptions>, retries: number, random: () => number = Math.random): number {
  const exp = Math.min(retry.backoffMaxMs, retry.backoffMs * 2 ** Math.min(retries, 52));
  return Math.round(retry.jitter ? random() * exp : exp);
}
