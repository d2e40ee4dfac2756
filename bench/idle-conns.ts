/**
 * Helper process for w8: opens N idle client connections to one system, reports
 * how many opened, holds them until told to close, then exits. Forked by the cell.
 */
import { createAdapter } from './peers/index.js';
import { errorMessage } from './lib/util.js';
import type { IdleMessage } from './workloads.js';

const CONCURRENCY = 20;
/** Give up after this many refusals in a row (a peer at its connection limit). */
const MAX_CONSECUTIVE_FAILURES = 20;

const handles: Array<{ close(): Promise<void> }> = [];

async function openAll(msg: Extract<IdleMessage, { type: 'open' }>): Promise<void> {
  const adapter = await createAdapter(msg.system, msg.endpoints);
  let next = 0;
  let failed = 0;
  let consecutive = 0;
  let firstError = '';
  const lane = async (): Promise<void> => {
    while (next < msg.count && consecutive < MAX_CONSECUTIVE_FAILURES) {
      next++;
      try {
        handles.push(await adapter.idleConnection());
        consecutive = 0;
      } catch (err) {
        failed++;
        consecutive++;
        firstError ||= errorMessage(err);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  failed += msg.count - next; // never tried after too many refusals
  process.send?.({ type: 'opened', opened: handles.length, failed, firstError } satisfies IdleMessage);
}

async function closeAll(): Promise<void> {
  const all = handles.splice(0);
  for (let i = 0; i < all.length; i += 100) await Promise.all(all.slice(i, i + 100).map((h) => h.close().catch(() => {})));
  process.exit(0);
}

process.on('message', (msg: IdleMessage) => {
  if (msg.type === 'open') {
    openAll(msg).catch((err: unknown) => {
      process.send?.({ type: 'opened', opened: handles.length, failed: msg.count - handles.length, firstError: errorMessage(err) } satisfies IdleMessage);
    });
  } else if (msg.type === 'close') {
    void closeAll();
  }
});
// The cell went away: do not linger.
process.on('disconnect', () => process.exit(0));
