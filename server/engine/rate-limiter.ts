import { BrokerError } from '../../protocol/index.js';

/** A rate such as `100/s`: `count` events per `perMs`. */
export interface Rate {
  count: number;
  perMs: number;
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;

/** Parses `N/s`, `N/m` or `N/h` (N may be fractional, > 0). */
export function parseRate(text: string): Rate {
  const match = /^(\d+(?:\.\d+)?)\/([smh])$/.exec(text);
  const count = match === null ? NaN : Number(match[1]);
  if (match === null || !(count > 0)) {
    throw new BrokerError('E_INVALID_ARGUMENT', `rate limit ${JSON.stringify(text)} must look like "100/s", "60/m" or "1000/h" with a count > 0`);
  }
  return { count, perMs: UNIT_MS[match[2] as keyof typeof UNIT_MS] };
}

/**
 * A GCRA limiter (a token bucket without a refill loop). It allows a small
 * burst of 20 ms worth of events (at least one), so timer jitter does not
 * lower the rate, and never more than the rate over any longer window.
 */
export class RateLimiter {
  readonly #intervalMs: number;
  readonly #toleranceMs: number;
  /** Theoretical arrival time of the next event. */
  #tat = 0;

  constructor(rate: Rate) {
    this.#intervalMs = rate.perMs / rate.count;
    const burst = Math.max(1, Math.floor(20 / this.#intervalMs));
    this.#toleranceMs = this.#intervalMs * (burst - 1);
  }

  /** Takes one event if allowed at `now`. */
  tryTake(now: number): boolean {
    if (now < this.#tat - this.#toleranceMs) return false;
    this.#tat = Math.max(this.#tat, now) + this.#intervalMs;
    return true;
  }

  /** When the next event will be allowed. */
  nextAt(): number {
    return this.#tat - this.#toleranceMs;
  }

  /** True when unused long enough that forgetting it changes nothing. */
  idle(now: number): boolean {
    return this.#tat < now;
  }
}
