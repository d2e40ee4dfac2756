import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

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
  const input: Parameters<ConnectionContext['engine']['publish']>[1] = { seq: frame.seq, queue: frame.queue, body: frame.body };
  if (frame.messageId !== undefined) input.messageId = frame.messageId;
  if (frame.headers !== undefined) input.headers = frame.headers;
  if (frame.priority !== undefined) input.priority = frame.priority;
  const refused = ctx.engine.publish(ctx.session, input);
  if (refused !== null) {
    ctx.send({ type: 'publish.nack', seq: frame.seq, code: refused.code, message: refused.message });
  }
}
