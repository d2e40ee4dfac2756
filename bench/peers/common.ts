/** Pieces shared by the adapters. */
import { makeBody, publishWindowed } from '../lib/util.js';
import type { Session } from './types.js';

/** Fills `queue` through one session with a wide publish window. */
export async function fillThroughSession(open: () => Promise<Session>, queue: string, count: number, inFlight = 5000): Promise<void> {
  const session = await open();
  try {
    const body = makeBody(0);
    await publishWindowed(count, inFlight, () => session.publish(queue, body));
  } finally {
    await session.close();
  }
}

/** Settles after `ms` at most, so a close that hangs on a dead peer cannot hang the bench. */
export async function closeWithin(ms: number, close: () => Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    close().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
