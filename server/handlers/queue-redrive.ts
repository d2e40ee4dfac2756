import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** queue.redrive → ok { messages: moved } [PROTO §5.12]. */
export function handleQueueRedrive(ctx: ConnectionContext, frame: FrameOf<'queue.redrive'>): void {
  const opts: { to?: string; limit?: number } = {};
  if (frame.to !== undefined) opts.to = frame.to;
  if (frame.limit !== undefined) opts.limit = frame.limit;
  ctx.replyOk(frame.ref, { messages: ctx.engine.redrive(frame.queue, opts) });
}
