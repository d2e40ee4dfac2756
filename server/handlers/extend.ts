import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';
import { replyToTags } from './settle.js';

/** extend: renews the leases of deliveries still held [PROTO §5.10]. */
export function handleExtend(ctx: ConnectionContext, frame: FrameOf<'extend'>): void {
  const outcome = ctx.engine.extend(ctx.session, frame.deliveryTags, frame.ms);
  replyToTags(ctx, 'extend', frame.ref, outcome, { leaseExpiresAt: outcome.leaseExpiresAt });
}
