import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';
import type { SettleAction } from '../engine/engine.js';

type SettleFrame = FrameOf<'ack'> | FrameOf<'nack'> | FrameOf<'reject'>;

/**
 * ack / nack / reject of delivery tags [PROTO §5.7]. Known tags are settled even
 * when others in the frame are unknown; the unknown ones are listed in one error
 * frame. With a `ref`, success is answered with `ok`.
 */
export function handleSettle(ctx: ConnectionContext, frame: SettleFrame): void {
  const opts: { requeue?: boolean; reason?: string } = {};
  if (frame.type === 'nack' && frame.requeue !== undefined) opts.requeue = frame.requeue;
  if (frame.type === 'reject' && frame.reason !== undefined) opts.reason = frame.reason;
  const unknown = ctx.engine.settle(ctx.session, frame.deliveryTags, frame.type as SettleAction, opts);
  if (unknown.length > 0) {
    const error: FrameOf<'error'> = {
      type: 'error',
      code: 'E_DELIVERY_UNKNOWN',
      message: `${frame.type}: delivery tags ${unknown.slice(0, 10).join(', ')}${unknown.length > 10 ? ', …' : ''} are unknown or already settled on this connection (a lease that expired or a connection that was lost hands the message to another delivery)`,
      retryable: false,
      deliveryTags: unknown,
    };
    if (frame.ref !== undefined) error.ref = frame.ref;
    ctx.send(error);
  } else if (frame.ref !== undefined) {
    ctx.replyOk(frame.ref);
  }
}
