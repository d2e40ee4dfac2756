/** Public surface of the Berth wire protocol: pure, no I/O. */
export { PROTOCOL_VERSION, Op, frameTypeOf, HeaderSchemas, QueueOptionsSchema, CLIENT_FRAME_TYPES } from './frames.js';
export { decodeFrames, encodeFrames, FrameWriter, FRAME_OVERHEAD_BYTES, DEFAULT_DECODE_LIMITS } from './codec.js';
export { ErrorCodes, BrokerError, isErrorCode } from './errors.js';
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
} from './frames.js';
export type { DecodeLimits, DecodeError } from './codec.js';
export type { ErrorCode, BrokerErrorOptions } from './errors.js';
