/**
 * Per-worker task rate limits, as Celery's `rate_limit`: `'10/s'`, `'60/m'`, `'100/h'` (a bare
 * number means per second). Starts are spaced evenly: `'60/m'` lets one task start per second,
 * never a burst of 60 (a token bucket holding one token, as Celery's).
 */
import { TaskError } from './errors.js';

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;

/** The interval between two starts, in ms, of a rate like `'60/m'`. */
export function parseRateLimit(rate: string | number): number {
  const text = String(rate).trim();
  const match = /^(\d+(?:\.\d+)?)\s*(?:\/\s*([smh]))?$/.exec(text);
  const count = match === null ? NaN : Number(match[1]);
  if (match === null || !(count > 0)) {
    throw new TaskError('E_TASK_INVALID', `rateLimit must look like "10/s", "60/m" or "100/h", got ${JSON.stringify(rate)}`);
  }
  const unit = (match[2] ?? 's') as keyof typeof UNIT_MS;
  return UNIT_MS[unit] / count;
}

/** One task type's start schedule on one worker. */
export class StartSpacer {
  readonly #intervalMs: number;
  #nextAt = 0;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Ms to wait before a start is allowed (0 = now). */
  waitMs(now: number): number {
    return Math.max(0, this.#nextAt - now);
  }

  /** Records a start at `now`; call only when `waitMs(now)` is 0. */
  take(now: number): void {
    this.#nextAt = Math.max(now, this.#nextAt) + this.#intervalMs;
  }
}
