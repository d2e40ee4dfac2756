import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** result.put → ok { stored } after the commit [PROTO §5.18]. */
export function handleResultPut(ctx: ConnectionContext, frame: FrameOf<'result.put'>): void {
  const { ref } = frame;
  ctx.engine.putResult(ctx.session, { taskId: frame.taskId, state: frame.state, payload: frame.body, ttlMs: frame.ttlMs }, (outcome) => {
    if (typeof outcome === 'boolean') ctx.replyOk(ref, { stored: outcome });
    else ctx.replyError(ref, outcome);
  });
}
