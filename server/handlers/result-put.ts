import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/**
 * result.put → ok { stored } after the commit, or nothing with `noReply`; an error either way [PROTO §5.18].
 * A `noReply` write may wait for company before it commits, as acks do.
 */
export function handleResultPut(ctx: ConnectionContext, frame: FrameOf<'result.put'>): void {
  const { ref } = frame;
  const reply = frame.noReply !== true;
  const input = { taskId: frame.taskId, state: frame.state, payload: frame.body, ttlMs: frame.ttlMs };
  const done = (outcome: boolean | Error): void => {
    if (typeof outcome !== 'boolean') ctx.replyError(ref, outcome);
    else if (reply) ctx.replyOk(ref, { stored: outcome });
  };
  ctx.engine.putResult(ctx.session, input, done, reply);
}
