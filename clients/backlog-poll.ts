/**
 * Keeps this process's event loop polling its sockets, instead of sleeping in the kernel, for a
 * short window after a consumer settled deliveries while the broker held more messages back for
 * its credit (`deliver.backlog`, [PROTO §5.5]): the next delivery is then one round trip away.
 *
 * Why: a process asleep in epoll_wait is woken by the kernel when bytes arrive, and on a virtual
 * machine that wake-up is the slowest step of a round trip (on the 2-vCPU bench host, 122 µs
 * with both ends of a WebSocket round trip asleep against 46 µs with one polling; `npm run
 * bench:floors`). A consumer at prefetch 1 waits for one round trip per message. The broker
 * already polls after it delivers (`berth serve --busy-poll-us`); with its consumer polling too,
 * the bench's w3 at prefetch 1 went from 6.5k to 12.0k msgs/s (Berth alone, 3 alternating pairs),
 * and the consumer spent no more CPU per message: the wake-ups it no longer pays cost as much.
 *
 * The connection starts a window only after a delivery announced a backlog and once it has settled
 * every delivery it holds, so a consumer of an empty queue, one with credit to spare and one with
 * deliveries still to work on never poll: for them no message is one round trip away. A window that
 * passes without a settle ends the polling. Process-wide, so many connections share one loop of
 * immediates. Where `setImmediate` is missing (browsers) it does nothing.
 */

const canPoll = typeof globalThis.setImmediate === 'function' && typeof globalThis.performance?.now === 'function';

let deadline = 0;
let running = false;
let polledMs = 0;
let startedAt = 0;

// A pending immediate makes libuv poll its sockets with a zero timeout, run their callbacks, then
// run this again. It must stay ref'd: an unref'd immediate lets libuv block in epoll_wait.
function step(): void {
  const now = performance.now();
  if (now < deadline) {
    setImmediate(step);
    return;
  }
  running = false;
  polledMs += now - startedAt;
}

/** Polls until `windowUs` µs from now, or longer if an earlier call asked for longer. */
export function pollForBacklog(windowUs: number): void {
  if (windowUs <= 0 || !canPoll) return;
  const now = performance.now();
  deadline = Math.max(deadline, now + windowUs / 1000);
  if (running) return;
  running = true;
  startedAt = now;
  setImmediate(step);
}

/** True while the event loop is kept polling. */
export function pollingForBacklog(): boolean {
  return running;
}

/** Wall time of the polling runs that have ended, in ms: at most what polling cost this process in CPU. */
export function backlogPolledMs(): number {
  return polledMs;
}
