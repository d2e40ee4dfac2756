import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** task.revoke → `revoked` to the holders of its deliveries now, ok { stored } after the commit [PROTO §5.20]. */
export function handleTaskRevoke(ctx: ConnectionContext, frame: FrameOf<'task.revoke'>): void {
  const { ref } = frame;
  const params: { taskId: string; ttlMs?: number; terminate?: boolean } = { taskId: frame.taskId };
  if (frame.ttlMs !== undefined) params.ttlMs = frame.ttlMs;
  if (frame.terminate !== undefined) params.terminate = frame.terminate;
  ctx.engine.revoke(ctx.session, params, (outcome) => {
    if (typeof outcome === 'boolean') ctx.replyOk(ref, { stored: outcome });
    else ctx.replyError(ref, outcome);
  });
}
