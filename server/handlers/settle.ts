import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';
import type { SettleAction, TagOutcome } from '../engine/engine.js';

type SettleFrame = FrameOf<'ack'> | FrameOf<'nack'> | FrameOf<'reject'>;

/**
 * ack / nack / reject of delivery tags [PROTO §5.7]. Known tags are settled even
 * when others in the frame are refused; refused ones are listed in error frames
 * (`E_LEASE_EXPIRED`, `E_DELIVERY_UNKNOWN`). With a `ref`, success is answered with `ok`.
 */
export function handleSettle(ctx: ConnectionContext, frame: SettleFrame): void {
  const opts: { requeue?: boolean; reason?: string; delayMs?: number } = {};
  if (frame.type === 'nack') {
    if (frame.requeue !== undefined) opts.requeue = frame.requeue;
    if (frame.delayMs !== undefined) opts.delayMs = frame.delayMs;
  }
  if (frame.type !== 'ack' && frame.reason !== undefined) opts.reason = frame.reason;
  const outcome = ctx.engine.settle(ctx.session, frame.deliveryTags, frame.type as SettleAction, opts);
  replyToTags(ctx, frame.type, frame.ref, outcome);
}

/** Sends one error per kind of refused tag, or `ok` when the frame had a ref and nothing was refused. */
export function replyToTags(
  ctx: ConnectionContext,
  verb: string,
  ref: number | undefined,
  outcome: TagOutcome,
  okFields: { leaseExpiresAt?: number } = {},
): void {
  const list = (tags: number[]): string => `${tags.slice(0, 10).join(', ')}${tags.length > 10 ? ', …' : ''}`;
  const refusals: Array<FrameOf<'error'>> = [];
  if (outcome.expired.length > 0) {
    refusals.push({
      type: 'error',
      code: 'E_LEASE_EXPIRED',
      message: `${verb}: the lease of delivery tags ${list(outcome.expired)} expired; the message was handed out again (extend long tasks with extend)`,
      retryable: false,
      deliveryTags: outcome.expired,
    });
  }
  if (outcome.unknown.length > 0) {
    refusals.push({
      type: 'error',
      code: 'E_DELIVERY_UNKNOWN',
      message: `${verb}: delivery tags ${list(outcome.unknown)} are unknown or already settled on this connection`,
      retryable: false,
      deliveryTags: outcome.unknown,
    });
  }
  for (const error of refusals) {
    if (ref !== undefined) error.ref = ref;
    ctx.send(error);
  }
  if (refusals.length === 0 && ref !== undefined) ctx.replyOk(ref, okFields);
}
