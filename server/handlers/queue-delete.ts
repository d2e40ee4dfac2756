import type { FrameOf } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';

/** queue.delete → ok { messages: deleted } [PROTO §5.2]. */
export function handleQueueDelete(ctx: ConnectionContext, frame: FrameOf<'queue.delete'>): void {
  const opts: { ifEmpty?: boolean; ifUnused?: boolean } = {};
  if (frame.ifEmpty !== undefined) opts.ifEmpty = frame.ifEmpty;
  if (frame.ifUnused !== undefined) opts.ifUnused = frame.ifUnused;
  ctx.replyOk(frame.ref, { messages: ctx.engine.deleteQueue(frame.queue, opts) });
}
