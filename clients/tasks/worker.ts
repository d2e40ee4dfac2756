/**
 * The worker runtime: consumes task queues, runs tasks in a pool, stores results, retries,
 * enforces time and rate limits, keeps leases alive, and shuts down warm or cold.
 *
 * Everything that talks to the broker happens here, in the worker's main thread: a pool child
 * only runs functions. So a CPU-bound task in a processes or threads pool cannot starve the
 * lease extensions of its own message (BullMQ's "stalled job" trap).
 */
import type { Connection, Subscription } from '../connection.js';
import type { Message } from '../message.js';
import type { TaskState } from '../../protocol/index.js';
import type { AppInternals, App, RegisteredTask } from './app.js';
import { serializeError, softTimeLimitError, TaskError, type SerializedError } from './errors.js';
import type { Outcome, PoolJob } from './execute.js';
import { backoffDelayMs } from './options.js';
import { inPoolChild } from './pools/child-protocol.js';
import type { Pool, PoolKind } from './pools/pool.js';
import { StartSpacer } from './rate-limit.js';
import { decodeJson, encodeJson, readTaskHeaders, type ResultPayload, type Signature, type TaskBody, type TaskFailure, type TaskHeaders } from './wire.js';

export interface WorkerOptions {
  /** Queues to take tasks from. Default: the app's default queue (`'tasks'`). */
  queues?: string[];
  /** Tasks run at once. Default: 100 for `async`, 1 for `solo`, the number of CPUs for `processes` and `threads`. */
  concurrency?: number;
  /**
   * Where tasks run. `async` (default): in this process's event loop, many at once, for I/O-bound
   * tasks. `processes`: forked children (CPU-bound work; a hard time limit kills the child).
   * `threads`: worker_threads (CPU-bound, lighter than processes). `solo`: one at a time, here.
   * `processes` and `threads` need `module`.
   */
  pool?: PoolKind;
  /** Prefetch = concurrency × this, per queue. Default 4 (Celery's). 1 with `acksLate` holds only what runs. */
  prefetchMultiplier?: number;
  /**
   * Fair dispatch (default true): a task goes to a free slot only, so a short task never waits
   * behind a long one in a busy child. false: tasks are assigned to slots round-robin as they
   * arrive, as Celery's default prefork scheduling did.
   */
  fair?: boolean;
  /** Module that defines the app (path or URL; `MODULE:EXPORT` picks an export): pool children import it. */
  module?: string | URL;
  /** Warm shutdown waits this long for running tasks, then shuts down cold. Default 30_000. */
  shutdownTimeoutMs?: number;
  /** Worker name in STARTED states and events. Default `<hostname>:<pid>` (or a random name). */
  name?: string;
}

/** Things a worker tells, to log or to wait for. */
export type WorkerEvent =
  | { type: 'task-received'; taskId: string; name: string }
  | { type: 'task-started'; taskId: string; name: string; slot: number }
  | { type: 'task-succeeded'; taskId: string; name: string; runtimeMs: number }
  | { type: 'task-failed'; taskId: string; name: string; error: SerializedError }
  | { type: 'task-retried'; taskId: string; name: string; retries: number; delayMs: number }
  | { type: 'task-revoked'; taskId: string; name: string; reason: 'revoked' | 'expired' }
  | { type: 'task-lost'; taskId: string; name: string }
  | { type: 'error'; error: Error };

export interface Worker {
  readonly name: string;
  /** Tasks running now (or storing their outcome). */
  readonly running: number;
  /** Messages held: running plus prefetched. */
  readonly held: number;
  /** Connects, starts the pool and consumes the queues. */
  start(): Promise<void>;
  /**
   * Shuts down. Warm (default): stop taking tasks, give prefetched ones back at once, let running
   * ones finish (up to `shutdownTimeoutMs`) and ack them. `force: true` is cold: running tasks are
   * killed and, with `acksLate`, go back to the queue. Idempotent; a forced call hurries a warm one.
   */
  close(options?: { force?: boolean }): Promise<void>;
  /** Listens to events; returns a function that stops listening. */
  on(listener: (event: WorkerEvent) => void): () => void;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Held {
  readonly msg: Message;
  readonly task: TaskHeaders;
  readonly body: TaskBody;
  readonly registered: RegisteredTask;
  readonly leaseMs: number;
  nextExtendAt: number;
  /** buffered → running → finishing (the outcome is being stored and acked) → done. */
  state: 'buffered' | 'running' | 'finishing' | 'done';
  slot: number;
  /** Why the pool killed it, when it did. */
  killedFor: 'time-limit' | 'revoked' | undefined;
}

const DEFAULT_CONCURRENCY = { async: 100, solo: 1 } as const;
/** Renew a lease when half of it is gone; check at least this often. */
const MAX_LEASE_CHECK_MS = 1000;
const MIN_LEASE_CHECK_MS = 20;

function availableCpus(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return Math.max(1, nav?.hardwareConcurrency ?? 1);
}

class TaskWorker implements Worker {
  readonly name: string;
  readonly #app: AppInternals;
  readonly #queues: string[];
  readonly #poolKind: PoolKind;
  readonly #concurrency: number;
  readonly #prefetch: number;
  readonly #fair: boolean;
  readonly #module: string | undefined;
  readonly #shutdownTimeoutMs: number;
  readonly #listeners = new Set<(event: WorkerEvent) => void>();

  #conn: Connection | undefined;
  #pool: Pool | undefined;
  readonly #subs: Subscription[] = [];
  /** Prefetched, not started, in arrival order. */
  #buffer: Held[] = [];
  /** Running, by slot. */
  readonly #slots: Array<Held | undefined>;
  /** Every message held (prefetched or running), by message: revoke events name the message. */
  readonly #held = new Map<Message, Held>();
  /** Idle slots (fair dispatch takes from here). */
  readonly #freeSlots: number[];
  #runningCount = 0;
  /** Tasks started this turn whose STARTED state is not written yet (see #noteStarted). */
  #startedPending: Held[] = [];
  #startedFlush: ReturnType<typeof setImmediate> | undefined;
  readonly #spacers = new Map<string, StartSpacer>();
  #nextSlot = 0;
  #rateTimer: ReturnType<typeof setTimeout> | undefined;
  #leaseTimer: ReturnType<typeof setInterval> | undefined;
  /** How often held leases are checked: a quarter of the shortest lease seen, at most a second. */
  #leaseCheckMs = MAX_LEASE_CHECK_MS;
  #started: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #cold = false;
  #idleWaiters: Array<() => void> = [];
  /** Settles not yet written to the socket: a warm shutdown waits for them (and so for the states queued before). */
  #inflight = 0;
  #drainWaiters: Array<() => void> = [];

  constructor(app: AppInternals, options: WorkerOptions) {
    this.#app = app;
    const pool = options.pool ?? 'async';
    if (!['processes', 'threads', 'async', 'solo'].includes(pool)) {
      throw new TaskError('E_TASK_INVALID', `"pool" must be processes, threads, async or solo, got ${JSON.stringify(pool)}`);
    }
    this.#poolKind = pool;
    const concurrency = pool === 'solo' ? 1 : (options.concurrency ?? (pool === 'async' ? DEFAULT_CONCURRENCY.async : availableCpus()));
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 10_000) {
      throw new TaskError('E_TASK_INVALID', `"concurrency" must be an integer 1–10000, got ${String(options.concurrency)}`);
    }
    if (pool === 'solo' && options.concurrency !== undefined && options.concurrency !== 1) {
      throw new TaskError('E_TASK_INVALID', `the solo pool runs one task at a time: "concurrency" must be 1, got ${options.concurrency}`);
    }
    this.#concurrency = concurrency;
    const multiplier = options.prefetchMultiplier ?? 4;
    if (!Number.isSafeInteger(multiplier) || multiplier < 1) {
      throw new TaskError('E_TASK_INVALID', `"prefetchMultiplier" must be an integer ≥ 1, got ${String(multiplier)}`);
    }
    this.#prefetch = Math.min(concurrency * multiplier, 65_535);
    this.#fair = options.fair ?? true;
    this.#module = options.module === undefined ? undefined : String(options.module);
    if ((pool === 'processes' || pool === 'threads') && this.#module === undefined) {
      throw new TaskError('E_TASK_INVALID', `the ${pool} pool needs "module": the app module its children import (e.g. import.meta.url of the file that defines the tasks)`);
    }
    this.#shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
    const queues = options.queues ?? [app.defaultQueue];
    if (queues.length === 0) throw new TaskError('E_TASK_INVALID', '"queues" must name at least one queue');
    this.#queues = [...new Set(queues)];
    this.#slots = new Array<Held | undefined>(concurrency).fill(undefined);
    this.#freeSlots = Array.from({ length: concurrency }, (_, i) => concurrency - 1 - i);
    const proc = (globalThis as { process?: { pid?: number } }).process;
    this.name = options.name ?? `worker-${proc?.pid ?? crypto.randomUUID().slice(0, 8)}`;
  }

  get running(): number {
    return this.#runningCount;
  }

  get held(): number {
    return this.#held.size;
  }

  on(listener: (event: WorkerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: WorkerEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  #fail(error: unknown): void {
    this.#emit({ type: 'error', error: error instanceof Error ? error : new Error(String(error)) });
  }

  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    if (inPoolChild()) {
      throw new TaskError('E_TASK_INVALID', 'a worker cannot start inside a pool child: start it from a module that is not the app module (or use `berth worker --app`)');
    }
    this.#pool = await this.#createPool();
    try {
      await this.#pool.start();
      const conn = await this.#connect();
      this.#conn = conn;
      conn.onTaskRevoked(({ taskId, terminate }) => this.#onTaskRevoked(taskId, terminate));
      for (const queue of this.#queues) {
        await this.#app.ensureQueue(conn, queue);
        this.#subs.push(
          await conn.consume(queue, (msg) => this.#receive(msg), {
            prefetch: this.#prefetch,
            autoSettle: false,
            // As in Celery over AMQP, acks get no reply: a refused one (lease expired) reaches the
            // app connection's onError, and one lost in a broker crash means the task runs again.
            confirmSettles: false,
            onRevoked: (msg) => this.#onRevoked(msg),
          }),
        );
      }
    } catch (err) {
      await this.#pool.close();
      await this.#conn?.close();
      throw err;
    }
    this.#armLeaseTimer();
  }

  #armLeaseTimer(): void {
    if (this.#leaseTimer !== undefined) clearInterval(this.#leaseTimer);
    this.#leaseTimer = setInterval(() => this.#extendLeases(), this.#leaseCheckMs);
  }

  /** The worker's own connection: its acks and retries never queue behind the app's producer traffic. */
  async #connect(): Promise<Connection> {
    const { connect } = await import('../connection.js');
    const { broker, token, connection } = this.#app.options;
    // A worker answers a batch of deliveries with a batch of states and acks: one message per turn.
    return connect(broker, { writeBatching: 'turn', ...connection, ...(token === undefined ? {} : { token }) });
  }

  async #createPool(): Promise<Pool> {
    const lookup = (name: string): RegisteredTask | undefined => this.#app.getTask(name);
    if (this.#poolKind === 'async' || this.#poolKind === 'solo') {
      const { createInlinePool } = await import('./pools/inline.js');
      return createInlinePool(this.#poolKind, this.#concurrency, lookup);
    }
    const { createChildPool } = await import('./pools/children.js');
    return createChildPool(this.#poolKind, this.#concurrency, this.#module as string);
  }

  /** The consume handler (autoSettle off): every message is settled by the worker, when its task ends. */
  #receive(msg: Message): void {
    const task = readTaskHeaders(msg.headers);
    let body: TaskBody | undefined;
    try {
      body = decodeJson<TaskBody>(msg.body);
    } catch {
      body = undefined;
    }
    if (task === undefined || body === undefined || !Array.isArray(body.args)) {
      this.#settle(msg.reject({ reason: 'not a task message (needs "task" and "task-id" headers and a JSON body with "args")' }));
      return;
    }
    this.#emit({ type: 'task-received', taskId: task.id, name: task.name });
    const registered = this.#app.getTask(task.name);
    if (registered === undefined) {
      const error = serializeError(new TaskError('E_TASK_UNKNOWN', `task ${task.name} is not registered in this worker's app`, { taskId: task.id }));
      if (!task.ignoreResult) this.#putResult(task.id, 'FAILURE', { error }, this.#app.resolvedDefaults.resultTtlMs);
      this.#emit({ type: 'task-failed', taskId: task.id, name: task.name, error });
      this.#settle(msg.reject({ reason: error.message }));
      return;
    }
    if (msg.revoked !== null || this.#closing !== undefined) {
      this.#settle(msg.revoked !== null ? msg.ack() : msg.nack({ requeue: true }));
      return;
    }
    if (task.expires !== undefined && Date.now() > task.expires) {
      if (!task.ignoreResult) this.#putResult(task.id, 'REVOKED', { reason: 'expired' }, registered.options.resultTtlMs);
      this.#emit({ type: 'task-revoked', taskId: task.id, name: task.name, reason: 'expired' });
      this.#settle(msg.ack());
      return;
    }
    const now = Date.now();
    const leaseMs = Math.max(100, msg.leaseExpiresAt - now);
    const held: Held = {
      msg,
      task,
      body,
      registered,
      leaseMs,
      nextExtendAt: now + leaseMs / 2,
      state: 'buffered',
      slot: this.#fair ? -1 : this.#nextSlot++ % this.#concurrency,
      killedFor: undefined,
    };
    this.#held.set(msg, held);
    this.#buffer.push(held);
    if (leaseMs / 4 < this.#leaseCheckMs && this.#closing === undefined) {
      this.#leaseCheckMs = Math.max(MIN_LEASE_CHECK_MS, Math.floor(leaseMs / 4));
      this.#armLeaseTimer();
    }
    this.#schedule();
  }

  #onRevoked(msg: Message): void {
    const held = this.#held.get(msg);
    if (held === undefined) return;
    const terminate = held.msg.revoked?.terminate ?? false;
    if (held.state === 'buffered') {
      this.#buffer = this.#buffer.filter((h) => h !== held);
      this.#emit({ type: 'task-revoked', taskId: held.task.id, name: held.task.name, reason: 'revoked' });
      this.#done(held, held.msg.ack());
    } else if (held.state === 'running') {
      this.#revokeRunning(held, terminate);
    }
  }

  /** A revocation announced to every worker: finds a task this worker runs after acking it early. */
  #onTaskRevoked(taskId: string, terminate: boolean): void {
    for (const held of this.#slots) if (held?.task.id === taskId && held.state === 'running') this.#revokeRunning(held, terminate);
  }

  /** Aborts a running task's signal, and kills it when the revoker asked to terminate. */
  #revokeRunning(held: Held, terminate: boolean): void {
    const reason = serializeError(new TaskError('E_TASK_REVOKED', `task ${held.task.id} was revoked`, { taskId: held.task.id }));
    this.#pool?.abort(held.slot, reason);
    if (terminate) {
      held.killedFor = 'revoked';
      this.#pool?.kill(held.slot);
    }
  }

  /** Starts buffered tasks on free slots, as rate limits allow. */
  #schedule(): void {
    if (this.#closing !== undefined || this.#pool === undefined) return;
    const now = Date.now();
    let waitMs = Infinity;
    for (let i = 0; i < this.#buffer.length; ) {
      const held = this.#buffer[i] as Held;
      const slot = this.#fair ? (this.#freeSlots.at(-1) ?? -1) : this.#slots[held.slot] === undefined ? held.slot : -1;
      if (slot === -1) {
        if (this.#fair) break;
        i++;
        continue;
      }
      const spacer = this.#spacer(held.registered);
      const wait = spacer?.waitMs(now) ?? 0;
      if (wait > 0) {
        // Rate-limited: let other task types by, and come back when a start is allowed.
        waitMs = Math.min(waitMs, wait);
        i++;
        continue;
      }
      spacer?.take(now);
      this.#buffer.splice(i, 1);
      if (this.#fair) this.#freeSlots.pop();
      else this.#freeSlots.splice(this.#freeSlots.indexOf(slot), 1);
      this.#run(held, slot);
    }
    if (waitMs !== Infinity && this.#rateTimer === undefined) {
      this.#rateTimer = setTimeout(() => {
        this.#rateTimer = undefined;
        this.#schedule();
      }, waitMs);
    }
  }

  #spacer(task: RegisteredTask): StartSpacer | undefined {
    const interval = task.options.rateIntervalMs;
    if (interval === undefined) return undefined;
    let spacer = this.#spacers.get(task.name);
    if (spacer === undefined) this.#spacers.set(task.name, (spacer = new StartSpacer(interval)));
    return spacer;
  }

  /**
   * STARTED is written at the end of the turn, and only for tasks still running then: a task that
   * finishes within its first turn goes from PENDING to its outcome in one write instead of two.
   */
  #noteStarted(held: Held): void {
    this.#startedPending.push(held);
    this.#startedFlush ??= setImmediate(() => {
      this.#startedFlush = undefined;
      const started = this.#startedPending;
      this.#startedPending = [];
      const now = Date.now();
      for (const h of started) {
        if (h.state !== 'running') continue;
        this.#putResult(h.task.id, 'STARTED', { worker: this.name, startedAt: now, retries: h.task.retries }, h.registered.options.resultTtlMs);
      }
    });
  }

  #run(held: Held, slot: number): void {
    const pool = this.#pool as Pool;
    const { task, registered, msg } = held;
    const options = registered.options;
    held.state = 'running';
    held.slot = slot;
    this.#slots[slot] = held;
    this.#runningCount++;
    if (!options.acksLate) this.#settle(msg.ack());
    const startedAt = Date.now();
    if (!task.ignoreResult) this.#noteStarted(held);
    this.#emit({ type: 'task-started', taskId: task.id, name: task.name, slot });
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    if (options.softTimeLimitMs !== undefined) {
      const limit = options.softTimeLimitMs;
      timers.push(setTimeout(() => pool.abort(slot, serializeError(softTimeLimitError(limit))), limit));
    }
    if (options.timeLimitMs !== undefined) {
      timers.push(
        setTimeout(() => {
          held.killedFor = 'time-limit';
          pool.kill(slot);
        }, options.timeLimitMs),
      );
    }
    const job: PoolJob = { taskId: task.id, name: task.name, args: held.body.args, retries: task.retries, deliveryCount: msg.deliveryCount, queue: msg.queue };
    pool.run(slot, job).then((outcome) => {
      for (const timer of timers) clearTimeout(timer);
      this.#slots[slot] = undefined;
      this.#freeSlots.push(slot);
      held.state = 'finishing';
      this.#finish(held, outcome, Date.now() - startedAt).catch((err: unknown) => this.#fail(err));
      this.#schedule();
    });
  }

  async #finish(held: Held, outcome: Outcome, runtimeMs: number): Promise<void> {
    const { task, registered, msg } = held;
    const options = registered.options;
    const acksLate = options.acksLate;
    const ttl = options.resultTtlMs;
    switch (outcome.kind) {
      case 'success': {
        await this.#callbacks(held.body.link, outcome.value);
        if (!task.ignoreResult) this.#putResult(task.id, 'SUCCESS', { result: outcome.value }, ttl);
        this.#emit({ type: 'task-succeeded', taskId: task.id, name: task.name, runtimeMs });
        return this.#done(held, acksLate ? msg.ack() : undefined);
      }
      case 'killed': {
        if (held.killedFor === 'revoked' || msg.revoked !== null) {
          this.#emit({ type: 'task-revoked', taskId: task.id, name: task.name, reason: 'revoked' });
          return this.#done(held, acksLate ? msg.ack() : undefined);
        }
        if (this.#cold) return this.#done(held, undefined);
        const error = serializeError(new TaskError('E_TASK_TIME_LIMIT', `task ${task.name} ran past its time limit (${options.timeLimitMs} ms) and was killed`, { taskId: task.id }));
        error.type = 'TimeLimitExceeded';
        return this.#failed(held, error);
      }
      case 'lost': {
        this.#emit({ type: 'task-lost', taskId: task.id, name: task.name });
        // With acksLate a lost child is like a lost worker: the message goes back and runs again.
        if (acksLate) return this.#done(held, msg.nack({ requeue: true, reason: outcome.error.message }));
        return this.#failed(held, outcome.error);
      }
      case 'reject':
        return this.#failed(held, outcome.error, { reject: true });
      case 'retry': {
        const max = outcome.maxRetries ?? options.retry.max;
        if (task.retries >= max) {
          const error =
            outcome.cause ??
            serializeError(new TaskError('E_TASK_MAX_RETRIES', `task ${task.name} asked for retry ${task.retries + 1}, more than its ${max}`, { taskId: task.id }));
          return this.#failed(held, error);
        }
        const delayMs =
          outcome.eta !== undefined ? Math.max(0, outcome.eta - Date.now()) : (outcome.countdownMs ?? backoffDelayMs(options.retry, task.retries));
        return this.#retry(held, delayMs, outcome.cause);
      }
      case 'failure': {
        if (outcome.retryable && task.retries < options.retry.max) {
          return this.#retry(held, backoffDelayMs(options.retry, task.retries), outcome.error);
        }
        return this.#failed(held, outcome.error);
      }
    }
  }

  async #retry(held: Held, delayMs: number, error: SerializedError | undefined): Promise<void> {
    const { task, msg, body } = held;
    const retries = task.retries + 1;
    const ttl = held.registered.options.resultTtlMs;
    if (!task.ignoreResult) {
      const payload: ResultPayload = { error: error ?? { type: 'Retry', message: 'task asked to be retried' }, retries, eta: Date.now() + delayMs };
      this.#putResult(task.id, 'RETRY', payload, ttl);
    }
    // The next run is a new message with the same task id, published before this one is acked:
    // a crash in between runs the task again (at least once), never zero times. Its messageId
    // makes a second publish of the same retry a duplicate the broker drops.
    await this.#app.send(this.#conn as Connection, task.name, body.args, {
      queue: msg.queue,
      priority: msg.priority,
      taskId: task.id,
      retries,
      messageId: `${task.id}/retry/${retries}`,
      countdownMs: delayMs,
      ignoreResult: task.ignoreResult,
      ...(task.expires === undefined ? {} : { expiresMs: Math.max(1, task.expires - Date.now()) }),
      ...(body.link === undefined ? {} : { link: body.link }),
      ...(body.linkError === undefined ? {} : { linkError: body.linkError }),
    });
    this.#emit({ type: 'task-retried', taskId: task.id, name: task.name, retries, delayMs });
    this.#done(held, held.registered.options.acksLate ? msg.ack() : undefined);
  }

  async #failed(held: Held, error: SerializedError, { reject = false } = {}): Promise<void> {
    const { task, msg, body } = held;
    const failure: TaskFailure = { ...error, taskId: task.id, task: task.name };
    await this.#callbacks(body.linkError, failure);
    if (!task.ignoreResult) this.#putResult(task.id, 'FAILURE', { error }, held.registered.options.resultTtlMs);
    this.#emit({ type: 'task-failed', taskId: task.id, name: task.name, error });
    if (reject) return this.#done(held, msg.settled ? undefined : msg.reject({ reason: error.message }));
    return this.#done(held, held.registered.options.acksLate ? msg.ack() : undefined);
  }

  /** Sends link or linkError callbacks: each gets `first` before its own arguments. */
  async #callbacks(signatures: Signature[] | undefined, first: unknown): Promise<void> {
    if (signatures === undefined || signatures.length === 0) return;
    const conn = this.#conn as Connection;
    await Promise.all(
      signatures.map((sig) => this.#app.send(conn, sig.task, [first, ...sig.args], sig.queue === undefined ? {} : { queue: sig.queue })),
    );
  }

  /**
   * States go without a reply (saves a frame, a tracked request and a promise per task: about 12%
   * more tasks/s at concurrency 10). They travel with the ack that follows: frames are handled in
   * order, so the broker commits the state in the ack's commit or an earlier one, and a crash
   * before it loses both (the task runs again). A state the broker refuses is reported to the app
   * connection's `onError`.
   */
  #putResult(taskId: string, state: Exclude<TaskState, 'NOT_FOUND'>, payload: ResultPayload, ttlMs: number): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    try {
      conn.sendResult(taskId, state, { payload: encodeJson(payload), ttlMs });
    } catch (err) {
      this.#fail(err);
    }
  }

  #settle(settling: Promise<void> | undefined): void {
    if (settling === undefined) return;
    this.#inflight++;
    settling.then(this.#untrack, this.#settleFailed);
  }

  // Bound once: these run for every settle (one derived promise each, no closure).
  readonly #untrack = (): void => {
    if (--this.#inflight === 0) for (const wake of this.#drainWaiters.splice(0)) wake();
  };

  readonly #settleFailed = (err: unknown): void => {
    // E_LEASE_EXPIRED / E_CONNECTION_CLOSED: the broker delivers the message again; nothing to do here.
    if (!(err instanceof Error && 'code' in err)) this.#fail(err);
    this.#untrack();
  };

  #done(held: Held, settling: Promise<void> | undefined): void {
    if (held.state === 'running' || held.state === 'finishing') this.#runningCount--;
    held.state = 'done';
    // Whatever is left unsettled goes back to the queue: releasing the consume handler would
    // otherwise let the SDK ack it (a cold shutdown must not lose the running task).
    this.#settle(settling ?? (held.msg.settled ? undefined : held.msg.nack({ requeue: true, reason: 'worker shut down' })));
    this.#held.delete(held.msg);
    if (this.#idleWaiters.length > 0 && this.running === 0) {
      for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  /** Renews the leases of held messages (running or prefetched) once half of each is gone. */
  #extendLeases(): void {
    const now = Date.now();
    for (const held of this.#held.values()) {
      if (held.state === 'done' || now < held.nextExtendAt) continue;
      held.nextExtendAt = now + held.leaseMs / 2;
      this.#settle(held.msg.extend(held.leaseMs));
    }
  }

  close({ force = false }: { force?: boolean } = {}): Promise<void> {
    if (force) this.#goCold();
    this.#closing ??= this.#close();
    return this.#closing;
  }

  #goCold(): void {
    if (this.#cold) return;
    this.#cold = true;
    for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  async #close(): Promise<void> {
    await this.#started?.catch(() => {});
    if (this.#rateTimer !== undefined) clearTimeout(this.#rateTimer);
    // Stop taking tasks, and give back the prefetched ones at once for other workers.
    await Promise.all(this.#subs.map((sub) => sub.cancel().catch(() => {})));
    for (const held of this.#buffer.splice(0)) this.#done(held, held.msg.nack({ requeue: true }));
    if (!this.#cold && this.running > 0) {
      const deadline = setTimeout(() => this.#goCold(), this.#shutdownTimeoutMs);
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      clearTimeout(deadline);
    }
    if (this.#leaseTimer !== undefined) clearInterval(this.#leaseTimer);
    // Cold: running tasks are killed, and their messages (unacked with acksLate) go back to the
    // queue (see #done).
    await this.#pool?.close();
    // Let the last results and acks be written before the socket closes; the broker handles them
    // before the close (a cold shutdown skips this: what was not acked goes back to the queue).
    if (!this.#cold && this.#inflight > 0) await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
    await this.#conn?.close();
    this.#held.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export function createWorker(app: App, options: WorkerOptions): Worker {
  return new TaskWorker(app as AppInternals, options);
}
