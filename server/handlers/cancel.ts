import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** cancel → ok; unacked deliveries stay settleable [PROTO §5.6]. */
export function handleCancel(ctx: ConnectionContext, frame: FrameOf<'cancel'>): void {
  ctx.engine.cancel(ctx.session, frame.consumerTag);
  ctx.replyOk(frame.ref);
}
