/**
 * The task app: register tasks by name, send them, read their results.
 *
 * Producer side only: nothing here needs Node, so a browser or an edge runtime can send tasks.
 * Workers (`app.worker()`) load their Node-only parts when they start.
 */
import { connect, type Connection, type ConnectOptions } from '../connection.js';
import type { TaskState } from '../../protocol/index.js';
import { TaskError, TaskFailedError, type SerializedError } from './errors.js';
import { resolveTaskOptions, type ResolvedTaskOptions, type TaskOptions } from './options.js';
import { createRouter, type Route, type Routes } from './routes.js';
import { newTaskId } from './task-id.js';
import { decodeJson, encodeJson, TaskHeader, type ResultPayload, type Signature, type TaskBody } from './wire.js';
import { createWorker, type Worker, type WorkerOptions } from './worker.js';

/** What a running task sees as `this` (Celery's `bind=True` + `self.request`). */
export interface TaskContext {
  /** The task id, the same across retries. */
  readonly id: string;
  readonly name: string;
  /** Retries before this run: 0 on the first run. */
  readonly retries: number;
  /** Times the broker delivered this run's message (above 1 after a worker was lost). */
  readonly deliveryCount: number;
  /** The queue the task came from. */
  readonly queue: string;
  /**
   * Aborts when the soft time limit passes, the task is revoked, or the worker shuts down cold.
   * Pass it to fetch, timers and child calls; `signal.reason` says why.
   */
  readonly signal: AbortSignal;
  /**
   * Ends this run and runs the task again later: after `countdownMs`, at `eta`, or by default after
   * the task's backoff. Throws a {@link Retry}; use as `throw this.retry(...)` or just call it.
   * Past `retry.max` retries the task fails instead (with `cause` when given).
   */
  retry(options?: { countdownMs?: number; eta?: Date | number; maxRetries?: number; cause?: unknown }): never;
}

export type TaskFunction<A extends unknown[], R> = (this: TaskContext, ...args: A) => R | Promise<R>;

/** Options of one send; they override the task's and the routes'. */
export interface ApplyOptions {
  /** Run no sooner than this many ms from now (held by the broker, not by a worker). */
  countdownMs?: number;
  /** Run no sooner than this time. Wins over `countdownMs`. */
  eta?: Date | number;
  /** Do not run later than this many ms from now: a task still queued then is marked REVOKED instead. */
  expiresMs?: number;
  /** Queue to send to, instead of the task's route. */
  queue?: string;
  /** 0–9, higher runs first. */
  priority?: number;
  /** Task id; default a random UUID. Sending the same id twice within the dedup window runs it once. */
  taskId?: string;
  /** Task(s) to call with the result as first argument when this task succeeds. */
  link?: Signature | Task<never, unknown> | ReadonlyArray<Signature | Task<never, unknown>>;
  /** Task(s) to call with a {@link TaskFailure} as first argument when this task fails for good. */
  linkError?: Signature | Task<never, unknown> | ReadonlyArray<Signature | Task<never, unknown>>;
  /** Keep no result (overrides the task's option). */
  ignoreResult?: boolean;
}

/** A registered task. `A` are its parameters, `R` what its promise resolves to. */
export interface Task<A extends unknown[], R> {
  readonly name: string;
  readonly options: Readonly<ResolvedTaskOptions>;
  /** Sends the task with these arguments; resolves once the broker has stored it. */
  delay(...args: A): Promise<AsyncResult<R>>;
  /** Sends the task with options (countdown, eta, expiry, queue, priority, callbacks). */
  applyAsync(args: A, options?: ApplyOptions): Promise<AsyncResult<R>>;
  /** A signature for `link`/`linkError`: this task with these extra (trailing) arguments. */
  s(...args: unknown[]): Signature;
  /** Runs the function here and now, without a broker (for tests and scripts). */
  call(...args: A): Promise<R>;
}

/** Where a task is, and its result or failure once it has one. */
export interface TaskInfo<R> {
  state: TaskState;
  result?: R;
  error?: SerializedError;
  retries?: number;
  updatedAt?: number;
}

/** A handle on a sent task (Celery's `AsyncResult`). */
export interface AsyncResult<R> {
  readonly id: string;
  /** True when the task was sent with `ignoreResult`: `get()` rejects with `E_RESULT_IGNORED`. */
  readonly ignored: boolean;
  /**
   * Waits for the task to finish and resolves with its return value. Rejects with the task's own
   * failure (a {@link TaskFailedError} with the task's error type, message and stack), with
   * `E_TASK_REVOKED`, with `E_TASK_TIMEOUT` after `timeoutMs` (default: wait for ever, as Celery),
   * or with `E_TASK_NOT_FOUND` when the broker knows no such task.
   */
  get(options?: { timeoutMs?: number }): Promise<R>;
  /** The task's state now. */
  state(): Promise<TaskState>;
  /** State plus result, error and retry count. */
  info(): Promise<TaskInfo<R>>;
  /** Revokes the task (see {@link App.revoke}). */
  revoke(options?: { terminate?: boolean }): Promise<void>;
}

export interface AppOptions {
  /** Broker URL, e.g. `ws://127.0.0.1:7700`. */
  broker: string;
  token?: string;
  /** Task name (exact or glob) → queue, like Celery's `task_routes`. */
  routes?: Routes;
  /** Queue of tasks no route or option places. Default `'tasks'`. */
  defaultQueue?: string;
  /** Options every task starts from. */
  taskDefaults?: TaskOptions;
  /** More connection options (reconnect, timeouts). */
  connection?: Omit<ConnectOptions, 'token'>;
}

/** The task app. */
export interface App {
  readonly options: Readonly<AppOptions>;
  /** Queue of tasks no route or option places (`defaultQueue`, default `'tasks'`). */
  readonly defaultQueue: string;
  /** Registers a task under `name`; throws `E_TASK_INVALID` if the name is taken. */
  task<A extends unknown[], R>(name: string, fn: TaskFunction<A, R>, options?: TaskOptions): Task<A, Awaited<R>>;
  /** The registered task of this name. */
  getTask(name: string): RegisteredTask | undefined;
  /** The route of a task name: its queue and priority. */
  route(name: string): Route;
  /** Sends a task by name, registered here or not (Celery's `send_task`). */
  sendTask<R = unknown>(name: string, args: unknown[], options?: ApplyOptions): Promise<AsyncResult<R>>;
  /** A handle on a task sent earlier, by id. */
  asyncResult<R = unknown>(taskId: string): AsyncResult<R>;
  /**
   * Revokes a task: queued and delayed copies are never run, by any worker, also after a broker
   * restart; a running one gets its `signal` aborted, and with `terminate` it is killed. Lasts
   * `ttlMs` (default: the broker's result TTL). Its state becomes REVOKED unless it already finished.
   */
  revoke(taskId: string, options?: { terminate?: boolean; ttlMs?: number }): Promise<void>;
  /** A worker for this app's tasks; call `start()`. */
  worker(options?: WorkerOptions): Worker;
  /** The app's producer connection, opened on first use. */
  connection(): Promise<Connection>;
  /** Closes the producer connection (workers close their own). */
  close(): Promise<void>;
}

/** A task as the worker runtime sees it. */
export interface RegisteredTask {
  readonly name: string;
  readonly fn: TaskFunction<unknown[], unknown>;
  readonly options: Readonly<ResolvedTaskOptions>;
}

/** Marks app objects, so a module's exports can be searched for the app (CLI, pool children). */
export const APP_MARK: unique symbol = Symbol.for('berth.app');

export function isApp(value: unknown): value is App {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[APP_MARK] === true;
}

/** Sends tasks and reads results over a given connection; the app's and each worker's. */
export interface Sender {
  /** Options of tasks this app does not register: its `taskDefaults` over the built-in ones. */
  readonly resolvedDefaults: Readonly<ResolvedTaskOptions>;
  /** Publishes a task; resolves with its id, and whether it keeps no result, once it is durable. */
  send(conn: Connection, name: string, args: unknown[], options: ApplyOptions & { retries?: number; messageId?: string }): Promise<{ taskId: string; ignoreResult: boolean }>;
}

/** Longest single wait asked of the broker; `get()` asks again until its own timeout. */
const MAX_WAIT_SLICE_MS = 60_000;

function toSignatures(value: ApplyOptions['link']): Signature[] | undefined {
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  return list.map((item: Signature | Task<never, unknown>) => ('task' in item && typeof item.task === 'string' ? (item as Signature) : (item as Task<never, unknown>).s()));
}

function assertTaskName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '' || name.length > 200) {
    throw new TaskError('E_TASK_INVALID', `task name must be a non-empty string of at most 200 characters, got ${JSON.stringify(name)}`);
  }
}

function etaOf(options: ApplyOptions): number | undefined {
  if (options.eta !== undefined) {
    const eta = options.eta instanceof Date ? options.eta.getTime() : options.eta;
    if (!Number.isFinite(eta)) throw new TaskError('E_TASK_INVALID', `"eta" must be a Date or ms since epoch, got ${String(options.eta)}`);
    return eta;
  }
  if (options.countdownMs !== undefined) {
    if (!(Number.isFinite(options.countdownMs) && options.countdownMs >= 0)) {
      throw new TaskError('E_TASK_INVALID', `"countdownMs" must be a number ≥ 0, got ${String(options.countdownMs)}`);
    }
    return options.countdownMs > 0 ? Date.now() + options.countdownMs : undefined;
  }
  return undefined;
}

class TaskApp implements App {
  readonly [APP_MARK] = true;
  readonly options: Readonly<AppOptions>;
  readonly #tasks = new Map<string, RegisteredTask>();
  readonly #router;
  readonly defaultQueue: string;
  readonly resolvedDefaults: Readonly<ResolvedTaskOptions>;
  /** Queues declared on each connection (declaring is idempotent, but costs a round trip). */
  readonly #declared = new WeakMap<Connection, Map<string, Promise<unknown>>>();
  #connection: Promise<Connection> | undefined;

  constructor(options: AppOptions) {
    if (typeof options?.broker !== 'string' || options.broker === '') {
      throw new TaskError('E_TASK_INVALID', 'createApp: "broker" must be the broker URL, e.g. "ws://127.0.0.1:7700"');
    }
    this.options = Object.freeze({ ...options });
    this.#router = createRouter(options.routes);
    this.defaultQueue = options.defaultQueue ?? 'tasks';
    // Checked once, so a bad value fails at createApp, not at the first task.
    this.resolvedDefaults = resolveTaskOptions('(defaults)', {}, options.taskDefaults);
  }

  task<A extends unknown[], R>(name: string, fn: TaskFunction<A, R>, options: TaskOptions = {}): Task<A, Awaited<R>> {
    assertTaskName(name);
    if (typeof fn !== 'function') throw new TaskError('E_TASK_INVALID', `task ${name}: the task must be a function`);
    if (this.#tasks.has(name)) throw new TaskError('E_TASK_INVALID', `task ${name} is already registered`);
    const registered: RegisteredTask = {
      name,
      fn: fn as TaskFunction<unknown[], unknown>,
      options: resolveTaskOptions(name, options, this.options.taskDefaults),
    };
    this.#tasks.set(name, registered);
    return {
      name,
      options: registered.options,
      delay: (...args: A) => this.sendTask<Awaited<R>>(name, args),
      applyAsync: (args: A, applyOptions: ApplyOptions = {}) => this.sendTask<Awaited<R>>(name, args, applyOptions),
      s: (...args: unknown[]) => ({ task: name, args }),
      call: async (...args: A): Promise<Awaited<R>> => await fn.apply(localContext(name), args),
    };
  }

  getTask(name: string): RegisteredTask | undefined {
    return this.#tasks.get(name);
  }

  route(name: string): Route {
    const route = this.#router.route(name);
    if (route !== undefined) return route;
    const task = this.#tasks.get(name);
    return { queue: task?.options.queue ?? this.defaultQueue };
  }

  connection(): Promise<Connection> {
    if (this.#connection === undefined) {
      const opening = connect(this.options.broker, { ...this.options.connection, ...(this.options.token === undefined ? {} : { token: this.options.token }) });
      this.#connection = opening;
      // A first connect that fails (broker not up yet) is not remembered: the next send tries again.
      opening.catch(() => {
        if (this.#connection === opening) this.#connection = undefined;
      });
    }
    return this.#connection;
  }

  /** Declares `queue` on `conn` once. */
  ensureQueue(conn: Connection, queue: string): Promise<unknown> {
    let byQueue = this.#declared.get(conn);
    if (byQueue === undefined) this.#declared.set(conn, (byQueue = new Map()));
    let declared = byQueue.get(queue);
    if (declared === undefined) {
      declared = conn.assertQueue(queue);
      byQueue.set(queue, declared);
      declared.catch(() => byQueue.delete(queue));
    }
    return declared;
  }

  /** Publishes a task message on `conn`; resolves with the task id once it is durable. */
  async send(conn: Connection, name: string, args: unknown[], options: ApplyOptions & { retries?: number; messageId?: string } = {}): Promise<{ taskId: string; ignoreResult: boolean }> {
    assertTaskName(name);
    if (!Array.isArray(args)) throw new TaskError('E_TASK_INVALID', `task ${name}: arguments must be an array`);
    const task = this.#tasks.get(name);
    const route = this.#router.route(name);
    const queue = options.queue ?? route?.queue ?? task?.options.queue ?? this.defaultQueue;
    const priority = options.priority ?? route?.priority ?? task?.options.priority;
    const taskId = options.taskId ?? newTaskId();
    const ignoreResult = options.ignoreResult ?? (task?.options ?? this.resolvedDefaults).ignoreResult;
    const eta = etaOf(options);
    const headers: Record<string, string | number | boolean> = {
      [TaskHeader.name]: name,
      [TaskHeader.id]: taskId,
      [TaskHeader.retries]: options.retries ?? 0,
    };
    if (options.expiresMs !== undefined) {
      if (!(Number.isFinite(options.expiresMs) && options.expiresMs > 0)) {
        throw new TaskError('E_TASK_INVALID', `"expiresMs" must be a number > 0, got ${String(options.expiresMs)}`);
      }
      headers[TaskHeader.expires] = Date.now() + options.expiresMs;
    }
    if (ignoreResult) headers[TaskHeader.ignoreResult] = true;
    if (eta !== undefined) headers[TaskHeader.eta] = eta;
    const body: TaskBody = { args };
    const link = toSignatures(options.link);
    const linkError = toSignatures(options.linkError);
    if (link !== undefined) body.link = link;
    if (linkError !== undefined) body.linkError = linkError;
    let encoded: Uint8Array;
    try {
      encoded = encodeJson(body);
    } catch (err) {
      throw new TaskError('E_TASK_INVALID', `task ${name}: arguments must be JSON-serializable (${(err as Error).message})`, { cause: err });
    }
    await this.ensureQueue(conn, queue);
    const resultTtlMs = (task?.options ?? this.resolvedDefaults).resultTtlMs;
    await conn.publish(queue, encoded, {
      messageId: options.messageId ?? taskId,
      headers,
      ...(priority === undefined ? {} : { priority }),
      ...(eta === undefined ? {} : { notBefore: eta }),
      ...(ignoreResult ? {} : { resultTtlMs }),
    });
    return { taskId, ignoreResult };
  }

  async sendTask<R = unknown>(name: string, args: unknown[], options: ApplyOptions = {}): Promise<AsyncResult<R>> {
    const conn = await this.connection();
    const { taskId, ignoreResult } = await this.send(conn, name, args, options);
    return this.#result<R>(taskId, ignoreResult);
  }

  asyncResult<R = unknown>(taskId: string): AsyncResult<R> {
    return this.#result<R>(taskId, false);
  }

  async revoke(taskId: string, options: { terminate?: boolean; ttlMs?: number } = {}): Promise<void> {
    const conn = await this.connection();
    await conn.revoke(taskId, options);
  }

  worker(options: WorkerOptions = {}): Worker {
    return createWorker(this, options);
  }

  async close(): Promise<void> {
    const pending = this.#connection;
    this.#connection = undefined;
    if (pending !== undefined) await (await pending.catch(() => undefined))?.close();
  }

  #result<R>(id: string, ignored: boolean): AsyncResult<R> {
    const app = this;
    const info = async (waitMs = 0): Promise<TaskInfo<R>> => {
      const conn = await app.connection();
      const stored = await conn.getResult(id, waitMs > 0 ? { waitMs } : {});
      const payload = decodeJson<ResultPayload>(stored.payload);
      const out: TaskInfo<R> = { state: stored.state };
      if (stored.updatedAt !== undefined) out.updatedAt = stored.updatedAt;
      if (payload !== undefined) {
        if ('result' in payload) out.result = payload.result as R;
        if ('error' in payload) out.error = payload.error;
        if ('retries' in payload && payload.retries !== undefined) out.retries = payload.retries;
      }
      return out;
    };
    return {
      id,
      ignored,
      async get({ timeoutMs = Infinity } = {}) {
        if (ignored) throw new TaskError('E_RESULT_IGNORED', `task ${id} was sent with ignoreResult: it has no result to wait for`, { taskId: id });
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const remaining = deadline - Date.now();
          const current = await info(Math.max(0, Math.min(remaining, MAX_WAIT_SLICE_MS)));
          switch (current.state) {
            case 'SUCCESS':
              return current.result as R;
            case 'FAILURE':
              throw new TaskFailedError(id, current.error ?? { type: 'Error', message: 'task failed' });
            case 'REVOKED':
              throw new TaskError('E_TASK_REVOKED', `task ${id} was revoked`, { taskId: id });
            case 'NOT_FOUND':
              throw new TaskError('E_TASK_NOT_FOUND', `the broker knows no task ${id} (never sent with results kept, or its result expired)`, { taskId: id });
          }
          if (deadline - Date.now() <= 0) {
            throw new TaskError('E_TASK_TIMEOUT', `task ${id} did not finish within ${timeoutMs} ms (state ${current.state})`, { taskId: id });
          }
        }
      },
      async state() {
        return (await info()).state;
      },
      info: () => info(),
      revoke: (options = {}) => app.revoke(id, options),
    };
  }
}

/** The context of a task called directly with `task.call()`: no broker, no retries. */
function localContext(name: string): TaskContext {
  return {
    id: newTaskId(),
    name,
    retries: 0,
    deliveryCount: 0,
    queue: '',
    signal: new AbortController().signal,
    retry() {
      throw new TaskError('E_TASK_INVALID', `task ${name} called directly cannot retry`);
    },
  };
}

/** Creates a task app. Connects lazily: on the first send, or when a worker starts. */
export function createApp(options: AppOptions): App {
  return new TaskApp(options);
}

/** The internal side of an app that workers use. */
export type AppInternals = App & Sender & { ensureQueue(conn: Connection, queue: string): Promise<unknown> };
