import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** consume → ok, then deliver frames within the prefetch window [PROTO §5.5]. */
export function handleConsume(ctx: ConnectionContext, frame: FrameOf<'consume'>): void {
  ctx.engine.consume(ctx.session, { queue: frame.queue, consumerTag: frame.consumerTag, prefetch: frame.prefetch });
  ctx.replyOk(frame.ref);
}
