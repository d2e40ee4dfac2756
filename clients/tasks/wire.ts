/**
 * How a task travels as a Berth message, and how its result is stored.
 *
 * A task message is an ordinary message: the body is JSON `{ args, link?, linkError? }`, and the
 * headers say what it is. `task-id` is the broker's key for results and revocation
 * ([PROTO §5.18], [PROTO §5.20]); everything else is the task layer's own.
 */
import type { MessageHeaders } from '../../protocol/index.js';
import type { SerializedError } from './errors.js';

/** Header names of a task message. */
export const TaskHeader = {
  /** The task's registered name, e.g. `'feed.import'`. */
  name: 'task',
  /** The task id: the same across retries, the key of its result and of a revoke. */
  id: 'task-id',
  /** How many times the task was retried before this run (0 on the first). */
  retries: 'retries',
  /** Do not run after this time (ms since epoch): the task is marked REVOKED (expired) instead. */
  expires: 'expires',
  /** Present (true) when no result is kept. */
  ignoreResult: 'ignore-result',
  /** ETA of this run, ms since epoch, when it was sent with a countdown or eta. */
  eta: 'eta',
} as const;

/** A task call to make later: the callback or errback of another task (Celery's signature). */
export interface Signature {
  /** Task name. */
  task: string;
  /** Arguments after the first one (the parent's result, or its failure for an errback). */
  args: unknown[];
  /** Queue to send it to; default: the routes. */
  queue?: string;
}

/** The JSON body of a task message. */
export interface TaskBody {
  args: unknown[];
  link?: Signature[];
  linkError?: Signature[];
}

/** What an errback receives first: the failed task and its error. */
export interface TaskFailure extends SerializedError {
  taskId: string;
  task: string;
}

/** The stored payload of each state (JSON). */
export type ResultPayload =
  | { result: unknown }
  | { error: SerializedError; retries?: number; eta?: number }
  | { worker: string; startedAt: number; retries: number }
  | { reason: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJson<T>(bytes: Uint8Array | null): T | undefined {
  if (bytes === null || bytes.byteLength === 0) return undefined;
  return JSON.parse(decoder.decode(bytes)) as T;
}

/** The task fields a worker reads from a message's headers; undefined when it is not a task message. */
export interface TaskHeaders {
  name: string;
  id: string;
  retries: number;
  expires: number | undefined;
  eta: number | undefined;
  ignoreResult: boolean;
}

export function readTaskHeaders(headers: Readonly<MessageHeaders>): TaskHeaders | undefined {
  const name = headers[TaskHeader.name];
  const id = headers[TaskHeader.id];
  if (typeof name !== 'string' || typeof id !== 'string') return undefined;
  const retries = headers[TaskHeader.retries];
  const expires = headers[TaskHeader.expires];
  const eta = headers[TaskHeader.eta];
  return {
    name,
    id,
    retries: typeof retries === 'number' && retries >= 0 ? retries : 0,
    expires: typeof expires === 'number' ? expires : undefined,
    eta: typeof eta === 'number' ? eta : undefined,
    ignoreResult: headers[TaskHeader.ignoreResult] === true,
  };
}
