import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** queue.declare → ok { messages, consumers } [PROTO §5.1]. */
export function handleQueueDeclare(ctx: ConnectionContext, frame: FrameOf<'queue.declare'>): void {
  ctx.replyOk(frame.ref, ctx.engine.declareQueue(frame.queue, frame.options));
}
