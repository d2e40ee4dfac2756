/**
 * Keeps the event loop polling its sockets, instead of sleeping in the kernel,
 * for a short window after a connection did work.
 *
 * Why: a process asleep in epoll_wait is woken by the kernel when bytes arrive,
 * and on a virtual machine that wake-up is the slowest step of a round trip. On
 * the 2-vCPU bench host a WebSocket round trip between two Node processes took
 * 75.7 µs with both asleep between messages and 24.1 µs with the echo side
 * polling (`npm run bench:floors`). Everything that waits on a reply — a
 * consumer at prefetch 1, a publisher waiting for each confirm, a worker asking
 * for its next task — pays that wake-up once per message. Erlang's schedulers
 * spin the same way before they sleep (`+sbwt`, on by default), which is why
 * RabbitMQ pays it less.
 *
 * The cost is CPU: while work keeps arriving less than a window apart the loop
 * never sleeps and the broker uses a whole core; once traffic stops it sleeps
 * again after one window. Heartbeats do not count as work, so idle connections
 * never keep it awake. Polling also holds back a process the kernel wakes on the
 * polling CPU: at a steady 1,000 msg/s the publish-to-deliver p50 was 0.38, 0.45,
 * 0.52 and 0.71 ms with windows of 0, 100, 200 and 400 µs, while prefetch-1
 * consumers gained as much at 50 µs as at 200. Hence a short default (100 µs).
 * `windowUs = 0` turns it off.
 */
import { performance } from 'node:perf_hooks';

export class BusyPoll {
  readonly #windowMs: number;
  #running = false;
  #touched = false;
  #deadline = 0;
  #startedAt = 0;
  #polledMs = 0;
  #closed = false;

  constructor(windowUs: number) {
    this.#windowMs = windowUs / 1000;
  }

  /** True while the loop is being kept awake. */
  get polling(): boolean {
    return this.#running;
  }

  /** Wall time of the polling runs that have ended: what the option has cost, at most, in CPU. */
  get polledSeconds(): number {
    return this.#polledMs / 1000;
  }

  /**
   * Marks work done now: the loop polls until a window has passed with no more.
   * Called per frame, so it only sets a flag; the poll step reads the clock.
   */
  touch(): void {
    if (this.#windowMs === 0 || this.#closed) return;
    this.#touched = true;
    if (!this.#running) {
      this.#running = true;
      this.#startedAt = performance.now();
      setImmediate(this.#poll);
    }
  }

  /** Stops polling at the next step and ignores later touches. */
  close(): void {
    this.#closed = true;
  }

  // A pending immediate makes libuv poll its sockets with a zero timeout, run
  // their callbacks, then run this again: that is the busy loop.
  readonly #poll = (): void => {
    const now = performance.now();
    if (this.#touched) {
      this.#touched = false;
      this.#deadline = now + this.#windowMs;
    }
    if (now < this.#deadline && !this.#closed) {
      setImmediate(this.#poll);
      return;
    }
    this.#running = false;
    this.#polledMs += now - this.#startedAt;
  };
}
