import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

const EMPTY = new Uint8Array(0);

/** result.get → result { state, updatedAt?, expiresAt? } + payload, at once or when the wait ends [PROTO §5.18]. */
export function handleResultGet(ctx: ConnectionContext, frame: FrameOf<'result.get'>): void {
  const { ref, taskId } = frame;
  ctx.engine.getResult(ctx.session, taskId, frame.waitMs ?? 0, (outcome) => {
    if (outcome instanceof Error) {
      ctx.replyError(ref, outcome);
      return;
    }
    if (outcome === null) {
      ctx.send({ type: 'result', ref, taskId, state: 'NOT_FOUND', body: EMPTY });
      return;
    }
    ctx.send({
      type: 'result',
      ref,
      taskId,
      state: outcome.state,
      updatedAt: outcome.updatedAt,
      expiresAt: outcome.expiresAt,
      body: outcome.payload ?? EMPTY,
    });
  });
}
