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
  const { expired, unknown } = outcome;
  if (expired.length === 0 && unknown.length === 0) {
    if (ref !== undefined) ctx.replyOk(ref, okFields);
    return;
  }
  // One error frame per request, so a ref is answered once; `expiredTags` tells the two kinds apart.
  const list = (tags: number[]): string => `${tags.slice(0, 10).join(', ')}${tags.length > 10 ? ', …' : ''}`;
  const parts: string[] = [];
  if (expired.length > 0) parts.push(`the lease of delivery tags ${list(expired)} expired and the message was handed out again (extend long tasks)`);
  if (unknown.length > 0) parts.push(`delivery tags ${list(unknown)} are unknown or already settled on this connection`);
  const error: FrameOf<'error'> = {
    type: 'error',
    code: expired.length > 0 ? 'E_LEASE_EXPIRED' : 'E_DELIVERY_UNKNOWN',
    message: `${verb}: ${parts.join('; ')}`,
    retryable: false,
    deliveryTags: [...expired, ...unknown],
  };
  if (expired.length > 0) error.expiredTags = expired;
  if (ref !== undefined) error.ref = ref;
  ctx.send(error);
}
