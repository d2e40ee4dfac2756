import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';
import type { PublishInput } from '../engine/engine.js';

/** publish → confirm after commit, or publish.nack now [PROTO §5.4]. */
export function handlePublish(ctx: ConnectionContext, frame: FrameOf<'publish'>): void {
  if (frame.seq <= ctx.lastPublishSeq) {
    ctx.send({
      type: 'publish.nack',
      seq: frame.seq,
      code: 'E_FRAME_INVALID',
      message: `publish seq ${frame.seq} must be greater than the previous one (${ctx.lastPublishSeq}) on this connection`,
    });
    return;
  }
  ctx.lastPublishSeq = frame.seq;
  const input: PublishInput = { seq: frame.seq, queue: frame.queue, body: frame.body };
  if (frame.messageId !== undefined) input.messageId = frame.messageId;
  if (frame.headers !== undefined) input.headers = frame.headers;
  if (frame.priority !== undefined) input.priority = frame.priority;
  if (frame.delayMs !== undefined) input.delayMs = frame.delayMs;
  if (frame.notBefore !== undefined) input.notBefore = frame.notBefore;
  if (frame.ttlMs !== undefined) input.ttlMs = frame.ttlMs;
  if (frame.resultTtlMs !== undefined) input.resultTtlMs = frame.resultTtlMs;
  const refused = ctx.engine.publish(ctx.session, input);
  if (refused !== null) {
    const nack: FrameOf<'publish.nack'> = { type: 'publish.nack', seq: frame.seq, code: refused.code, message: refused.message };
    if (refused.retryAfterMs !== undefined) nack.retryAfterMs = refused.retryAfterMs;
    ctx.send(nack);
  }
}
