/** Small helpers shared by the bench modules: statistics, deadlines, bodies, pacing. */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Thrown when a step runs past its deadline; the cell is reported as timed out. */
export class DeadlineError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${Math.round(ms / 1000)} s`);
    this.name = 'DeadlineError';
  }
}

/** Resolves or rejects like `promise`, or rejects with a {@link DeadlineError} after `ms`. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An absolute deadline that steps can check and wait against. */
export interface Deadline {
  readonly at: number;
  /** Milliseconds left, never below 1. */
  left(): number;
  /** Races `promise` against the time left. */
  race<T>(promise: Promise<T>, what: string): Promise<T>;
}

export function deadlineIn(ms: number): Deadline {
  const at = performance.now() + ms;
  const left = (): number => Math.max(1, at - performance.now());
  return { at, left, race: (promise, what) => withDeadline(promise, left(), what) };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile of already sorted values; `p` in 0..100. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export const BODY_BYTES = 256;

/**
 * A 256-byte printable-ASCII body whose first 12 bytes carry `index` in decimal,
 * so a consumer can find the message's publish time. Printable so that BullMQ
 * (JSON job data) carries the same 256 bytes as a latin1 string.
 */
export function makeBody(index: number): Buffer {
  const body = Buffer.alloc(BODY_BYTES, 0x61); // 'a'
  body.write(String(index).padStart(12, '0'), 0, 'latin1');
  return body;
}

export function bodyIndex(body: Uint8Array): number {
  return Number(Buffer.from(body.buffer, body.byteOffset, 12).toString('latin1'));
}

/**
 * Runs `publishOne(i)` for i in [0, n) with at most `inFlight` unsettled at once
 * (each slot starts the next publish as soon as its confirm arrives). Stops
 * starting new publishes once `stop()` returns true. Resolves with how many
 * were confirmed.
 */
export async function publishWindowed(
  n: number,
  inFlight: number,
  publishOne: (i: number) => Promise<void>,
  options: { onProgress?: (done: number) => void; stop?: () => boolean } = {},
): Promise<number> {
  let next = 0;
  let done = 0;
  let failed: unknown = null;
  const lane = async (): Promise<void> => {
    while (next < n && failed === null && options.stop?.() !== true) {
      const i = next++;
      try {
        await publishOne(i);
      } catch (err) {
        failed ??= err;
        return;
      }
      done++;
      options.onProgress?.(done);
    }
  };
  const lanes: Array<Promise<void>> = [];
  for (let k = 0; k < Math.min(inFlight, n); k++) lanes.push(lane());
  await Promise.all(lanes);
  if (failed !== null) throw failed;
  return done;
}

/** A time cap on a measured phase: `reached` turns true after `ms`; `wait` resolves then. */
export function timeCap(ms: number): { readonly reached: boolean; readonly wait: Promise<void>; clear(): void } {
  let reached = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wait = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      reached = true;
      resolve();
    }, ms);
  });
  return {
    get reached() {
      return reached;
    },
    wait,
    clear: () => clearTimeout(timer),
  };
}

/** A promise with its resolve/reject, for "resolve when the N-th message arrives". */
export function signal<T = void>(): { promise: Promise<T>; resolve(value: T): void; reject(error: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Avoid an unhandled rejection when nobody waits any more.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export function errorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return errorMessage(err.errors[0]);
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
