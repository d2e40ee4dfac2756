/** Public surface of the Berth wire protocol: pure, no I/O. */
export {
  PROTOCOL_VERSION,
  BACKLOG_HINT,
  Op,
  frameTypeOf,
  HeaderSchemas,
  QueueOptionsSchema,
  CLIENT_FRAME_TYPES,
  BODY_FRAME_TYPES,
  TASK_STATES,
  TERMINAL_TASK_STATES,
  isTerminalTaskState,
  TASK_ID_HEADER,
  MAX_RESULT_WAIT_MS,
  MAX_TASK_ID_LENGTH,
  MAX_MS,
  MAX_NAME_LENGTH,
  MAX_TIME,
  QUEUE_NAME_PATTERN,
} from './frames.js';
export { COMPACT_FRAMES, CompactOp, compactDeliverNames, type CompactDeliverFields } from './compact.js';
export { decodeFrames, encodeFrames, FrameWriter, FRAME_OVERHEAD_BYTES, DEFAULT_DECODE_LIMITS } from './codec.js';
export { ErrorCodes, BrokerError, isErrorCode } from './errors.js';
export { jsonString } from './json-text.js';
export type {
  Frame,
  FrameOf,
  FrameType,
  HelloFrame,
  WelcomeFrame,
  PublishFrame,
  DeliverFrame,
  ConsumeFrame,
  QueueOptions,
  MessageHeaders,
  BodyFrameType,
  TaskState,
  StoredTaskState,
} from './frames.js';
export type { DecodeLimits, DecodeError } from './codec.js';
export type { ErrorCode, BrokerErrorOptions } from './errors.js';
