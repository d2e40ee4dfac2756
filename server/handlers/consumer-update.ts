import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** consumer.update: a new prefetch window for a running consumer [PROTO §5.11]. */
export function handleConsumerUpdate(ctx: ConnectionContext, frame: FrameOf<'consumer.update'>): void {
  ctx.engine.updateConsumer(ctx.session, frame.consumerTag, frame.prefetch);
  ctx.replyOk(frame.ref);
}
