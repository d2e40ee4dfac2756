/** The Berth SDK: connect, publish with confirms, consume with prefetch. */
export { connect } from './connection.js';
export { BrokerError, ErrorCodes } from '../protocol/index.js';
export type {
  Connection,
  ConnectOptions,
  ConnectionState,
  ConnectionStatus,
  ReconnectOptions,
  PublishOptions,
  PublishResult,
  ConsumeOptions,
  MessageHandler,
  Subscription,
  QueueInfo,
} from './connection.js';
export type { Message } from './message.js';
export type { WebSocketConstructor } from './transport.js';
export type { ErrorCode, QueueOptions, MessageHeaders } from '../protocol/index.js';
export { TASK_STATES, MAX_RESULT_WAIT_MS } from '../protocol/index.js';
export type { TaskState } from '../protocol/index.js';
export type { TaskResult } from './connection.js';
export { createApp, TaskError, TaskFailedError, TaskErrorCodes, Retry, Reject, parseRateLimit } from './tasks/index.js';
export type {
  App,
  AppOptions,
  Task,
  TaskFunction,
  TaskContext,
  ApplyOptions,
  AsyncResult,
  TaskInfo,
  TaskErrorCode,
  SerializedError,
  TaskOptions,
  RetryOptions,
  AutoretryFor,
  Routes,
  Route,
  Signature,
  TaskFailure,
  Worker,
  WorkerOptions,
  WorkerEvent,
  PoolKind,
} from './tasks/index.js';
