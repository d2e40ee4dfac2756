import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** queue.purge → ok { messages: purged } [PROTO §5.3]. */
export function handleQueuePurge(ctx: ConnectionContext, frame: FrameOf<'queue.purge'>): void {
  ctx.replyOk(frame.ref, { messages: ctx.engine.purgeQueue(frame.queue) });
}
