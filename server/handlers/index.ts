/** Inbound frame type → handler. `hello` is handled by the connection itself. */
import type { FrameOf, FrameType } from '../../protocol/index.js';
import type { ConnectionContext } from '../connection.js';
import { handleCancel } from './cancel.js';
import { handleConsume } from './consume.js';
import { handlePublish } from './publish.js';
import { handleQueueDeclare } from './queue-declare.js';
import { handleQueueDelete } from './queue-delete.js';
import { handleQueuePurge } from './queue-purge.js';
import { handleSettle } from './settle.js';
import { handleExtend } from './extend.js';
import { handleConsumerUpdate } from './consumer-update.js';
import { handlePull } from './pull.js';
import { handleQueueRedrive } from './queue-redrive.js';
import { handleResultGet } from './result-get.js';
import { handleResultPut } from './result-put.js';
import { handleTaskRevoke } from './task-revoke.js';

export const handlers: { [T in FrameType]?: (ctx: ConnectionContext, frame: FrameOf<T>) => void } = {
  heartbeat: () => {},
  'queue.declare': handleQueueDeclare,
  'queue.delete': handleQueueDelete,
  'queue.purge': handleQueuePurge,
  publish: handlePublish,
  consume: handleConsume,
  cancel: handleCancel,
  ack: handleSettle,
  nack: handleSettle,
  reject: handleSettle,
  extend: handleExtend,
  'consumer.update': handleConsumerUpdate,
  pull: handlePull,
  'queue.redrive': handleQueueRedrive,
  'result.put': handleResultPut,
  'result.get': handleResultGet,
  'task.revoke': handleTaskRevoke,
};
