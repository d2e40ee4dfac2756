import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** pull: grants a pull-mode consumer more deliveries [PROTO §5.11]. */
export function handlePull(ctx: ConnectionContext, frame: FrameOf<'pull'>): void {
  ctx.engine.pull(ctx.session, frame.consumerTag, frame.count);
  if (frame.ref !== undefined) ctx.replyOk(frame.ref);
}
