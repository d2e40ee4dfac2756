/** The task layer: Celery-style tasks on the Berth SDK. */
export { createApp } from './app.js';
export { TaskError, TaskFailedError, TaskErrorCodes, Retry, Reject } from './errors.js';
export { parseRateLimit } from './rate-limit.js';
export type { App, AppOptions, Task, TaskFunction, TaskContext, ApplyOptions, AsyncResult, TaskInfo } from './app.js';
export type { TaskErrorCode, SerializedError } from './errors.js';
export type { TaskOptions, RetryOptions, AutoretryFor } from './options.js';
export type { Routes, Route } from './routes.js';
export type { Signature, TaskFailure } from './wire.js';
export type { Worker, WorkerOptions, WorkerEvent } from './worker.js';
export type { PoolKind } from './pools/pool.js';
