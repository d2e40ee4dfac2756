/**
 * The queue engine: queues, sessions, consumers, deliveries, leases and dispatch.
 *
 * It knows nothing of WebSocket or frames. A front end (the WebSocket session
 * today, an AMQP listener later) opens an {@link EngineSession} per client,
 * calls the verbs below, and turns {@link SessionSink} callbacks into frames.
 *
 * Message states (in memory; the store holds what survives a crash):
 *   delayed   stored with a ready time in the future; one engine timer promotes
 *             due messages to ready. Never in a consumer's window.
 *   ready     in a queue lane (buffered in memory, or only on disk past the lane
 *             cursor), or held back by a per-key rate limit
 *   unacked   delivered and held by its session under a lease. Ack → gone; nack →
 *             ready (or delayed); reject → dead-letter queue; the lease running
 *             out or the session closing → ready again, redelivered
 *   gone      acked, expired, dropped, or moved to the dead-letter queue
 *
 * Group commit: writes of one event-loop turn (publishes, acks, delivery counts,
 * moves) go into one batch, committed in one transaction by `flush()` on
 * `setImmediate`; publishes become deliverable once it has committed, and are confirmed once
 * the store says the commit is on disk (`Store.whenDurable`: the store syncs its log after the
 * deliveries have left, and one sync covers every commit before it).
 *
 * One timer serves every time-based rule: lease expiry, delayed promotion and
 * rate-limit wake-ups. No per-message timers.
 *
 * Task results [PROTO §5.18]: task states are rows of the store, written in the same
 * batch as messages and answered after the commit. A `result.get` that waits holds one
 * timer until the row turns terminal or the wait ends. Revoked task ids are kept in a
 * map (rebuilt from the store at start-up); dispatch drops messages whose `task-id`
 * header is in it, paying one size check while the map is empty. A periodic sweep
 * deletes expired rows and forgets expired revocations.
 */
import {
  BrokerError,
  isTerminalTaskState,
  MAX_TASK_ID_LENGTH,
  TASK_ID_HEADER,
  type MessageHeaders,
  type QueueOptions,
  type StoredTaskState,
} from '../../protocol/index.js';
import {
  emptyBatch,
  isBatchEmpty,
  type DeliveredThrough,
  type MessageRecord,
  type QueueRecord,
  type ResultRecord,
  type Store,
  type WriteBatch,
  type WriteResult,
} from '../../storage/index.js';
import type { Logger } from 'pino';
import { DedupWindow } from './dedup-window.js';
import { Deque } from './deque.js';
import { IndexedHeap, type HeapItem } from './indexed-heap.js';
import {
  firstDifference,
  queueOptionsFromStore,
  rateOf,
  resolveQueueOptions,
  type ResolvedQueueOptions,
} from './queue-options.js';
import { RateLimiter } from './rate-limiter.js';

export const PRIORITY_LEVELS = 10;
/** Delayed messages promoted per store call. */
const PROMOTE_BATCH = 1000;
/**
 * A batch of acks, delivery marks and task states nobody waits for (no publish, move, delay or
 * revocation, no reply or `result.get` waiting on its commit) waits this long for more before it
 * commits. It confirms nothing and needs no fsync, and a crash that
 * undoes it only redelivers, which at-least-once allows; committing per turn instead costs a
 * prefetch-1 consumer one WAL transaction, about 35 µs, per message. 10 ms rather than 1: each
 * commit blocks the event loop while deliveries and acks wait, and a worker that takes turns
 * with the broker waits through it (Berth alone, alternating pairs: w6-c10-ignore +12% in 4 of
 * 4, w3-p1 and w3-p10 +9% at the median of 7).
 */
const ACK_COMMIT_DELAY_MS = 10;
/** A deferrable batch commits at once when it holds this many rows. */
const ACK_COMMIT_MAX_ROWS = 4096;
/**
 * Message ids remembered across all queues, whatever the windows: bounds memory (about 7 MB,
 * typed arrays allocated once) and the restart read-back. The SDK resends at most its
 * unconfirmed window (10,000 by default) after a reconnect, so this covers several producers.
 */
export const MAX_DEDUP_IDS = 50_000;
/** Expired delivery tags remembered per session, for a precise error on a late ack. */
const MAX_EXPIRED_TAGS = 10_000;
/** Most messages moved by one redrive call unless asked for fewer. */
export const DEFAULT_REDRIVE_LIMIT = 100_000;
/** Lifetime of a revocation (and its REVOKED row) when `task.revoke` names none: 24 h. */
export const DEFAULT_RESULT_TTL_MS = 24 * 3600 * 1000;
/** How often expired results and revocations are swept. */
export const DEFAULT_RESULT_SWEEP_MS = 60_000;
/** `result.get` requests that may wait at once on one session. */
export const DEFAULT_MAX_RESULT_WAITERS = 1000;
/** Expired result rows deleted per store call; a full batch is followed by another on the next turn. */
const RESULT_SWEEP_BATCH = 1000;

/** Counters per queue, read by the metrics module at scrape time. */
export interface QueueStats {
  published: number;
  duplicates: number;
  delivered: number;
  redelivered: number;
  acked: number;
  nacked: number;
  rejected: number;
  deadLettered: number;
  expired: number;
  leaseExpired: number;
  dropped: number;
  /** Messages removed instead of delivered because their task was revoked. */
  revoked: number;
}

/** One delivery as handed to a session's sink. */
export interface Delivery {
  readonly deliveryTag: number;
  readonly consumerTag: string;
  readonly queue: string;
  readonly message: MessageRecord;
  readonly deliveryCount: number;
  readonly redelivered: boolean;
  readonly leaseExpiresAt: number;
  /** This delivery used the consumer's last credit and the queue has more ready: its next settle frees one [PROTO §5.5]. */
  readonly backlog: boolean;
}

/** What the engine tells a front end about one session. */
export interface SessionSink {
  deliver(delivery: Delivery): void;
  /**
   * Every publish of this session with seq ≤ `upTo` that was not refused is
   * durable; those in `duplicates` were already stored under their messageId.
   */
  confirm(upTo: number, duplicates: number[]): void;
  /** One publish was refused after it was accepted (the store failed). */
  publishFailed(seq: number, error: BrokerError): void;
  /** The broker cancelled a consumer (its queue was deleted). */
  consumerCancelled(consumerTag: string, reason: string): void;
  /** A delivery this session holds runs a task that was just revoked [PROTO §5.20]. */
  revoked(event: { consumerTag?: string; deliveryTag?: number; taskId: string; terminate: boolean }): void;
}

/** What a producer hands to `publish`. */
export interface PublishInput {
  seq: number;
  queue: string;
  body: Uint8Array;
  messageId?: string;
  headers?: MessageHeaders;
  priority?: number;
  delayMs?: number;
  notBefore?: number;
  ttlMs?: number;
  /** With a string `task-id` header: write a PENDING row for the task living this long. */
  resultTtlMs?: number;
}

/** A task state to record with `putResult`. */
export interface ResultInput {
  taskId: string;
  state: StoredTaskState;
  /** Null (or empty) for none. */
  payload: Uint8Array | null;
  ttlMs: number;
}

/** How a `putResult` or `revoke` ended: whether the row was written, or why nothing could be. */
export type ResultWriteOutcome = boolean | BrokerError;

/** How a `getResult` ended: the task's live row, null for none, or an error. */
export type ResultReadOutcome = ResultRecord | null | BrokerError;

export type SettleAction = 'ack' | 'nack' | 'reject';

/** Outcome of settling or extending a list of delivery tags. */
export interface TagOutcome {
  /** Tags never delivered on this session, or already settled. */
  unknown: number[];
  /** Tags whose lease ran out: the message went to another delivery. */
  expired: number[];
}

export interface EngineOptions {
  store: Store;
  logger: Logger;
  /** Milliseconds since epoch; injectable for tests. Default `Date.now`. */
  clock?: () => number;
  /** Ready messages kept in memory per queue and priority before the rest stays on disk. Default 1024. */
  laneBufferSize?: number;
  /** Lifetime of a revocation when `revoke` names none, in ms. Default 24 h. */
  resultTtlMs?: number;
  /** Interval of the sweep of expired results and revocations, in ms. Default 60,000. */
  resultSweepMs?: number;
  /** `getResult` calls with a wait that may be pending at once per session. Default 1,000. */
  maxResultWaiters?: number;
}

/** A `getResult` holding its reply until the task's row is terminal or the wait ends. */
interface ResultWaiter {
  readonly session: Session;
  readonly taskId: string;
  readonly reply: (outcome: ResultReadOutcome) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

/** A `putResult` or `revoke` whose row is in the current batch: told after the commit. */
interface PendingResult {
  session: Session;
  /** Index in the batch's `results`. */
  index: number;
  done: (outcome: ResultWriteOutcome) => void;
  /** Whether `done` sends a reply that someone waits for (not `noReply`). */
  replyWanted: boolean;
}

/** A `getResult` that arrived while result writes were pending: answered after their commit. */
interface PendingGet {
  session: Session;
  taskId: string;
  waitMs: number;
  reply: (outcome: ResultReadOutcome) => void;
}

interface Lane {
  buffer: Deque<MessageRecord>;
  /** Highest seq read from disk or appended; rows above it are only on disk. */
  cursor: number;
  /** Whether the store may hold ready rows with seq > cursor. */
  diskHasMore: boolean;
  /** Highest seq delivered for the first time (in memory; the store learns it through `mark`). */
  deliveredThrough: number;
  /** This lane's entry in `markBatch.deliveredThrough`, raised in place while that batch is open. */
  mark: DeliveredThrough | null;
  markBatch: WriteBatch | null;
  /** Whether the lane waits in `readAheadLanes` for a top-up after this turn's deliveries left. */
  readAheadQueued: boolean;
}

interface QueueState {
  readonly id: number;
  readonly name: string;
  readonly options: Readonly<ResolvedQueueOptions>;
  readonly lanes: Lane[];
  /** Ready messages: in lanes, on disk, or held back by a per-key rate limit. */
  ready: number;
  delayed: number;
  unacked: number;
  /** Body bytes of every stored message of the queue. */
  bytes: number;
  /** Publishes accepted into the current batch, not yet committed. */
  pendingCount: number;
  pendingBytes: number;
  consumers: Consumer[];
  /** Round-robin position in `consumers`, for ties in free credit. */
  nextConsumer: number;
  deleted: boolean;
  stats: QueueStats;
  /** Whole-queue rate limit, when `rateLimit` is set without a key. */
  limiter: RateLimiter | null;
  /** Per-key rate limits, when `rateLimitKey` is set. */
  keyLimiters: Map<string, RateLimiter> | null;
  /** Ready messages whose key is over its rate, FIFO per key. */
  throttled: Map<string, Deque<MessageRecord>>;
  throttledCount: number;
}

interface Consumer {
  readonly tag: string;
  readonly session: Session;
  readonly queue: QueueState;
  /** Window of unacked deliveries; 0 = pull mode, only `credit` grants deliveries. */
  prefetch: number;
  /** Deliveries granted by `pull` in pull mode. */
  credit: number;
  inflight: number;
}

interface UnackedDelivery extends HeapItem {
  readonly tag: number;
  readonly message: MessageRecord;
  readonly queue: QueueState;
  readonly consumer: Consumer;
  readonly session: Session;
  leaseExpiresAt: number;
}

/** A client of the engine: owns consumers and the deliveries made to them. */
export interface EngineSession {
  readonly id: string;
  /** Unacked deliveries held by this session. */
  readonly unackedCount: number;
}

class Session implements EngineSession {
  readonly consumers = new Map<string, Consumer>();
  readonly unacked = new Map<number, UnackedDelivery>();
  /** Tags whose lease expired, oldest first, bounded. */
  readonly expiredTags = new Set<number>();
  /** `getResult` calls of this session that wait for a terminal state. */
  readonly waiters = new Set<ResultWaiter>();
  /** `getResult` calls with a wait not answered yet (waiting, or deferred to a commit). */
  waitingGets = 0;
  nextDeliveryTag = 1;
  closed = false;
  readonly id: string;
  readonly sink: SessionSink;
  constructor(id: string, sink: SessionSink) {
    this.id = id;
    this.sink = sink;
  }
  get unackedCount(): number {
    return this.unacked.size;
  }
  rememberExpired(tag: number): void {
    this.expiredTags.add(tag);
    if (this.expiredTags.size > MAX_EXPIRED_TAGS) this.expiredTags.delete(this.expiredTags.values().next().value!);
  }
}

interface PendingPublish {
  session: Session;
  seq: number;
  queue: QueueState;
  /** Index in the batch's `enqueue`, or -1 for a duplicate that stores nothing. */
  enqueueIndex: number;
  dedupId: string | null;
}

interface PendingMove {
  message: MessageRecord;
  from: QueueState;
  to: QueueState;
  headers: MessageHeaders;
}

/**
 * The body itself when it fills most of its buffer, else a copy. A published body is a view into
 * the WebSocket message it came in, up to 256 KiB of other frames; kept in a lane, or held unacked,
 * it would keep all of them alive: 1,000 messages buffered on a queue without a consumer, published
 * among 800,000 that were consumed, left the broker at 424 MB of RSS, against 174 MB without them
 * (190 MB with this copy).
 */
function ownBytes(body: Uint8Array): Uint8Array {
  return body.buffer.byteLength > 2 * body.byteLength ? new Uint8Array(body) : body;
}

function newStats(): QueueStats {
  return {
    published: 0,
    duplicates: 0,
    delivered: 0,
    redelivered: 0,
    acked: 0,
    nacked: 0,
    rejected: 0,
    deadLettered: 0,
    expired: 0,
    leaseExpired: 0,
    dropped: 0,
    revoked: 0,
  };
}

export class Engine {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #laneBufferSize: number;
  readonly #queues = new Map<string, QueueState>();
  readonly #queuesById = new Map<number, QueueState>();
  readonly #sessions = new Set<Session>();
  readonly #leases = new IndexedHeap<UnackedDelivery>((d) => d.leaseExpiresAt);

  #batch: WriteBatch = emptyBatch();
  #pendingPublishes: PendingPublish[] = [];
  #pendingMoves: PendingMove[] = [];
  #dirty = new Set<QueueState>();
  #flushScheduled = false;
  /** Set while a deferrable batch waits for {@link ACK_COMMIT_DELAY_MS}. */
  #ackCommitTimer: NodeJS.Timeout | null = null;
  /** Front-end flushes waiting for the dispatch of the flush scheduled this turn. */
  #afterDispatch: Array<() => void> = [];
  /** Lanes below half full with more on disk, topped up once this turn's deliveries have left. */
  #readAheadLanes: Array<{ queue: QueueState; lane: Lane; priority: number }> = [];
  #closed = false;

  /** Earliest ready time of a delayed message (store and current batch), or null. */
  #nextDelayedAt: number | null = null;
  /** Queues waiting for a rate limit, with when to look again. */
  readonly #rateWaits = new Map<QueueState, number>();
  /** (queue, messageId) → when it is forgotten. One window for all queues, so the cap is global. */
  readonly #dedup = new DedupWindow(MAX_DEDUP_IDS);
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerAt = Infinity;

  readonly #resultTtlMs: number;
  readonly #maxResultWaiters: number;
  /** Revoked task id → until when (ms since epoch) its messages are dropped instead of delivered. */
  readonly #revoked = new Map<string, number>();
  /** Task id → the `getResult` calls waiting for it to turn terminal. */
  readonly #waiters = new Map<string, Set<ResultWaiter>>();
  #pendingResults: PendingResult[] = [];
  #pendingGets: PendingGet[] = [];
  #sweepTimer: ReturnType<typeof setInterval> | null = null;

  constructor(options: EngineOptions) {
    this.#store = options.store;
    this.#log = options.logger;
    this.#clock = options.clock ?? Date.now;
    this.#laneBufferSize = options.laneBufferSize ?? 1024;
    this.#resultTtlMs = options.resultTtlMs ?? DEFAULT_RESULT_TTL_MS;
    this.#maxResultWaiters = options.maxResultWaiters ?? DEFAULT_MAX_RESULT_WAITERS;
    this.#recover();
    // One interval for the whole broker; unref'd, so it never keeps a process alive.
    this.#sweepTimer = setInterval(() => this.#sweepResults(), options.resultSweepMs ?? DEFAULT_RESULT_SWEEP_MS);
    this.#sweepTimer.unref();
  }

  /** Rebuilds the in-memory view from the store: every stored message is ready (or delayed) again. */
  #recover(): void {
    const counts = new Map(this.#store.countMessages().map((c) => [c.queueId, c]));
    for (const record of this.#store.listQueues()) {
      const queue = this.#addQueue(record);
      const c = counts.get(record.id);
      queue.ready = c?.stored ?? 0;
      queue.delayed = c?.delayed ?? 0;
      queue.bytes = c?.bytes ?? 0;
      for (const lane of queue.lanes) lane.diskHasMore = queue.ready > 0;
      if (queue.ready + queue.delayed > 0) {
        this.#log.info({ queue: queue.name, ready: queue.ready, delayed: queue.delayed }, 'queue recovered');
      }
    }
    const now = this.#clock();
    // Ids of the messages still stored, so a producer that resends after a crash is not duplicated.
    let longestWindow = 0;
    for (const q of this.#queues.values()) longestWindow = Math.max(longestWindow, q.options.dedupWindowMs);
    if (longestWindow > 0) {
      const recent = this.#store.recentMessageIds({ since: now - longestWindow, limit: MAX_DEDUP_IDS });
      for (let i = recent.length - 1; i >= 0; i--) {
        const r = recent[i]!;
        const queue = this.#queuesById.get(r.queueId);
        const until = r.publishedAt + (queue?.options.dedupWindowMs ?? 0);
        if (queue !== undefined && until > now) this.#dedup.remember(queue.id, r.messageId, until, now);
      }
    }
    this.#nextDelayedAt = this.#store.nextDelayedAt();
    // Revocations outlive restarts: their REVOKED rows say which and until when [PROTO §5.20].
    for (const r of this.#store.revokedTasks({ now })) this.#revoked.set(r.taskId, r.expiresAt);
    if (this.#revoked.size > 0) this.#log.info({ revoked: this.#revoked.size }, 'revoked tasks recovered');
    this.#armTimer();
  }

  #addQueue(record: QueueRecord): QueueState {
    const lanes: Lane[] = [];
    for (let p = 0; p < PRIORITY_LEVELS; p++) lanes.push({ buffer: new Deque(), cursor: 0, diskHasMore: false, deliveredThrough: 0, mark: null, markBatch: null, readAheadQueued: false });
    const options = queueOptionsFromStore(record.options);
    const rate = rateOf(options);
    const queue: QueueState = {
      id: record.id,
      name: record.name,
      options,
      lanes,
      ready: 0,
      delayed: 0,
      unacked: 0,
      bytes: 0,
      pendingCount: 0,
      pendingBytes: 0,
      consumers: [],
      nextConsumer: 0,
      deleted: false,
      stats: newStats(),
      limiter: rate !== null && options.rateLimitKey === null ? new RateLimiter(rate) : null,
      keyLimiters: rate !== null && options.rateLimitKey !== null ? new Map() : null,
      throttled: new Map(),
      throttledCount: 0,
    };
    this.#queues.set(queue.name, queue);
    this.#queuesById.set(queue.id, queue);
    return queue;
  }

  // ---- sessions -------------------------------------------------------------

  openSession(id: string, sink: SessionSink): EngineSession {
    const session = new Session(id, sink);
    this.#sessions.add(session);
    return session;
  }

  /** Ends a session: its consumers go away and its unacked deliveries become ready again. */
  closeSession(handle: EngineSession): void {
    const session = handle as Session;
    if (session.closed) return;
    session.closed = true;
    this.#sessions.delete(session);
    for (const waiter of session.waiters) this.#dropWaiter(waiter);
    for (const consumer of session.consumers.values()) this.#removeConsumer(consumer);
    session.consumers.clear();
    // Newest first with pushFront, so the queue gets them back in their original order.
    const held = [...session.unacked.values()].reverse();
    for (const d of held) {
      this.#release(d);
      this.#requeue(d.queue, d.message);
    }
    this.#scheduleFlush();
  }

  /** Forgets an unacked delivery's ownership: its session's tag, window, counts, lease. */
  #release(d: UnackedDelivery): void {
    d.session.unacked.delete(d.tag);
    d.consumer.inflight--;
    d.queue.unacked--;
    this.#leases.remove(d);
  }

  // ---- queues ---------------------------------------------------------------

  /**
   * Declares a queue; idempotent. With `options`, an existing queue must have the
   * same ones (`E_QUEUE_OPTIONS_MISMATCH` names the first that differs).
   * A named dead-letter queue is declared too, with default options.
   */
  declareQueue(name: string, options?: QueueOptions): { messages: number; consumers: number } {
    const resolved = resolveQueueOptions(options);
    let queue = this.#queues.get(name);
    if (queue === undefined) {
      if (resolved.deadLetterQueue !== null && resolved.deadLetterQueue !== name) {
        this.declareQueue(resolved.deadLetterQueue);
      }
      const { queue: record } = this.#store.declareQueue(name, { ...resolved });
      queue = this.#addQueue(record);
      this.#log.info({ queue: name }, 'queue declared');
    } else if (options !== undefined) {
      const diff = firstDifference(queue.options, resolved);
      if (diff !== undefined) {
        throw new BrokerError('E_QUEUE_OPTIONS_MISMATCH', `queue "${name}" exists with different options (${diff})`);
      }
    }
    return { messages: queue.ready + queue.delayed + queue.unacked, consumers: queue.consumers.length };
  }

  /** Deletes a queue with its messages; its consumers are cancelled. Returns how many messages went. */
  deleteQueue(name: string, opts: { ifEmpty?: boolean; ifUnused?: boolean } = {}): number {
    const queue = this.#requireQueue(name);
    const total = queue.ready + queue.delayed + queue.unacked;
    if (opts.ifEmpty === true && total > 0) {
      throw new BrokerError('E_QUEUE_NOT_EMPTY', `queue "${name}" holds ${total} messages`);
    }
    if (opts.ifUnused === true && queue.consumers.length > 0) {
      throw new BrokerError('E_QUEUE_IN_USE', `queue "${name}" has ${queue.consumers.length} consumers`);
    }
    this.#commitNow();
    const removed = this.#store.deleteQueue(queue.id);
    queue.deleted = true;
    this.#queues.delete(name);
    this.#queuesById.delete(queue.id);
    this.#rateWaits.delete(queue);
    // SQLite may hand the same id to a queue declared later: forget this one's message ids.
    this.#dedup.forgetQueue(queue.id);
    for (const consumer of [...queue.consumers]) {
      consumer.session.consumers.delete(consumer.tag);
      this.#removeConsumer(consumer);
      consumer.session.sink.consumerCancelled(consumer.tag, `queue "${name}" was deleted`);
    }
    // Deliveries of a deleted queue can no longer be settled.
    for (const session of this.#sessions) {
      for (const d of session.unacked.values()) if (d.queue === queue) this.#release(d);
    }
    this.#log.info({ queue: name, messages: removed }, 'queue deleted');
    return removed;
  }

  /** Drops a queue's ready and delayed messages; deliveries still held are kept. Returns how many went. */
  purgeQueue(name: string): number {
    const queue = this.#requireQueue(name);
    this.#commitNow();
    const held: number[] = [];
    let heldBytes = 0;
    for (const session of this.#sessions) {
      for (const d of session.unacked.values()) {
        if (d.queue !== queue) continue;
        held.push(d.message.id);
        heldBytes += d.message.body.length;
      }
    }
    const removed = this.#store.purgeQueue(queue.id, held);
    for (const lane of queue.lanes) {
      lane.buffer = new Deque();
      lane.diskHasMore = false;
    }
    queue.throttled.clear();
    queue.throttledCount = 0;
    queue.ready = 0;
    queue.delayed = 0;
    queue.bytes = heldBytes;
    this.#log.info({ queue: name, messages: removed }, 'queue purged');
    return removed;
  }

  /**
   * Moves up to `limit` ready messages of a (dead-letter) queue to `to`, or back to
   * the queue named in each one's `x-death-queue`. Messages whose target does not
   * exist stay. Returns how many moved.
   */
  redrive(name: string, opts: { to?: string; limit?: number } = {}): number {
    const source = this.#requireQueue(name);
    const fixedTarget = opts.to === undefined ? undefined : this.#requireQueue(opts.to);
    const limit = opts.limit ?? DEFAULT_REDRIVE_LIMIT;
    const stay: MessageRecord[] = [];
    let moved = 0;
    while (moved < limit) {
      const message = this.#takeReady(source);
      if (message === undefined) break;
      const origin = message.headers?.['x-death-queue'];
      const target = fixedTarget ?? (typeof origin === 'string' ? this.#queues.get(origin) : undefined);
      if (target === undefined || target === source) {
        stay.push(message);
        continue;
      }
      source.ready--;
      const headers: MessageHeaders = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) if (!k.startsWith('x-death-')) headers[k] = v;
      headers['x-redrive-count'] = Number(message.headers?.['x-redrive-count'] ?? 0) + 1;
      this.#move(source, target, message, headers);
      moved++;
    }
    for (let i = stay.length - 1; i >= 0; i--) source.lanes[stay[i]!.priority]!.buffer.pushFront(stay[i]!);
    this.#commitNow();
    this.#dispatchDirty();
    this.#log.info({ queue: name, messages: moved }, 'queue redriven');
    return moved;
  }

  #requireQueue(name: string): QueueState {
    const queue = this.#queues.get(name);
    if (queue === undefined) throw new BrokerError('E_QUEUE_NOT_FOUND', `queue "${name}" does not exist`);
    return queue;
  }

  // ---- publish --------------------------------------------------------------

  /**
   * Accepts a publish into the current batch. Returns an error at once when the
   * publish is refused; otherwise the session's sink hears `confirm` once the
   * batch has committed (or `publishFailed` if it could not).
   */
  publish(handle: EngineSession, input: PublishInput): BrokerError | null {
    const session = handle as Session;
    if (this.#closed) return new BrokerError('E_SHUTTING_DOWN', 'broker is shutting down', { retryAfterMs: 1000 });
    const queue = this.#queues.get(input.queue);
    if (queue === undefined) return new BrokerError('E_QUEUE_NOT_FOUND', `queue "${input.queue}" does not exist`);
    const now = this.#clock();
    const messageId = input.messageId ?? null;

    let dedupId: string | null = null;
    if (messageId !== null && queue.options.dedupWindowMs > 0) {
      const until = this.#dedup.get(queue.id, messageId);
      if (until !== undefined && until > now) {
        queue.stats.duplicates++;
        this.#pendingPublishes.push({ session, seq: input.seq, queue, enqueueIndex: -1, dedupId: null });
        this.#scheduleFlush();
        return null;
      }
      dedupId = messageId;
    }

    const size = input.body.length;
    const full = this.#overLimit(queue, 1, size);
    if (full !== null && queue.options.overflow === 'reject-publish') {
      return new BrokerError('E_QUEUE_FULL', `queue "${queue.name}" is full (${full})`, {
        retryAfterMs: queue.consumers.length > 0 ? 100 : 1000,
      });
    }

    // PENDING at publish [PROTO §5.19]: only for a task id the protocol could also name in result.get.
    let pendingTaskId: string | null = null;
    if (input.resultTtlMs !== undefined) {
      const taskId = input.headers?.[TASK_ID_HEADER];
      if (typeof taskId === 'string') {
        if (taskId.length === 0 || taskId.length > MAX_TASK_ID_LENGTH) {
          return new BrokerError('E_FRAME_INVALID', `publish: the "${TASK_ID_HEADER}" header must be 1–${MAX_TASK_ID_LENGTH} characters with resultTtlMs, got ${taskId.length}`);
        }
        pendingTaskId = taskId;
      }
    }

    const readyAt = Math.max(input.delayMs === undefined ? 0 : now + input.delayMs, input.notBefore ?? 0);
    const delayed = readyAt > now;
    const ttlMs = input.ttlMs ?? queue.options.messageTtlMs;
    if (dedupId !== null) {
      const expiresAt = now + queue.options.dedupWindowMs;
      this.#dedup.remember(queue.id, dedupId, expiresAt, now);
    }
    this.#batch.enqueue.push({
      queueId: queue.id,
      priority: input.priority ?? 0,
      messageId,
      headers: input.headers ?? null,
      body: input.body,
      publishedAt: now,
      expiresAt: ttlMs > 0 ? (delayed ? readyAt : now) + ttlMs : null,
      readyAt: delayed ? readyAt : 0,
    });
    if (pendingTaskId !== null) {
      this.#batch.results.push({
        taskId: pendingTaskId,
        state: 'PENDING',
        payload: null,
        updatedAt: now,
        expiresAt: now + input.resultTtlMs!,
        ifAbsent: true,
      });
    }
    queue.pendingCount++;
    queue.pendingBytes += size;
    this.#pendingPublishes.push({ session, seq: input.seq, queue, enqueueIndex: this.#batch.enqueue.length - 1, dedupId });
    this.#scheduleFlush();
    return null;
  }

  /** Why the queue would be over a limit with `count` more messages of `bytes` in all, or null. */
  #overLimit(queue: QueueState, count: number, bytes: number): string | null {
    const { maxLength, maxBytes } = queue.options;
    if (maxLength > 0 && queue.ready + queue.delayed + queue.unacked + queue.pendingCount + count > maxLength) {
      return `maxLength ${maxLength} reached`;
    }
    if (maxBytes > 0 && queue.bytes + queue.pendingBytes + bytes > maxBytes) return `maxBytes ${maxBytes} would be exceeded`;
    return null;
  }

  // ---- task results [PROTO §5.18] and revocation [PROTO §5.20] -------------------------

  /**
   * Records a task state in the current batch; `done` hears after the commit whether the row
   * was written (false: it was terminal already), or the store's error. With `replyWanted` false
   * (`noReply`) and no `result.get` waiting for the task, the write may wait up to
   * {@link ACK_COMMIT_DELAY_MS} for company, like an ack: a worker's states travel with its acks.
   */
  putResult(handle: EngineSession, input: ResultInput, done: (outcome: ResultWriteOutcome) => void, replyWanted = true): void {
    const session = handle as Session;
    if (this.#closed) throw new BrokerError('E_SHUTTING_DOWN', 'broker is shutting down');
    const now = this.#clock();
    const payload = input.payload === null || input.payload.length === 0 ? null : input.payload;
    this.#batch.results.push({ taskId: input.taskId, state: input.state, payload, updatedAt: now, expiresAt: now + input.ttlMs });
    this.#pendingResults.push({ session, index: this.#batch.results.length - 1, done, replyWanted });
    this.#scheduleFlush();
  }

  /**
   * Reads a task's live row (null: none, or expired). With `waitMs > 0` and a state that is not
   * terminal, the reply waits until the row turns terminal or `waitMs` passes, whichever is first.
   * A read that follows result writes not committed yet is answered after their commit, so it
   * sees them. Throws `E_RESULT_WAIT_LIMIT` when the session already has `maxResultWaiters` waiting.
   */
  getResult(handle: EngineSession, taskId: string, waitMs: number, reply: (outcome: ResultReadOutcome) => void): void {
    const session = handle as Session;
    if (waitMs > 0) {
      if (session.waitingGets >= this.#maxResultWaiters) {
        throw new BrokerError(
          'E_RESULT_WAIT_LIMIT',
          `${session.waitingGets} result.get requests with waitMs are already waiting on this connection (limit ${this.#maxResultWaiters})`,
        );
      }
      session.waitingGets++;
      const answer = reply;
      reply = (outcome) => {
        session.waitingGets--;
        answer(outcome);
      };
    }
    if (this.#batch.results.length > 0) {
      this.#pendingGets.push({ session, taskId, waitMs, reply });
      this.#scheduleFlush();
      return;
    }
    this.#answerGet(session, taskId, waitMs, reply);
  }

  /**
   * Revokes a task for `ttlMs` (default the broker's `resultTtlMs`): its ready and delayed
   * messages are dropped when they come up for delivery, sessions holding one hear `revoked`,
   * and a REVOKED row is written unless the row is terminal already. `done` hears after the commit.
   */
  revoke(
    handle: EngineSession,
    params: { taskId: string; ttlMs?: number; terminate?: boolean },
    done: (outcome: ResultWriteOutcome) => void,
  ): void {
    const session = handle as Session;
    if (this.#closed) throw new BrokerError('E_SHUTTING_DOWN', 'broker is shutting down');
    const { taskId } = params;
    const terminate = params.terminate ?? false;
    const now = this.#clock();
    const expiresAt = now + (params.ttlMs ?? this.#resultTtlMs);
    // In force at once, before the commit: a message dispatched meanwhile is already dropped.
    const until = this.#revoked.get(taskId);
    if (until === undefined || until < expiresAt) this.#revoked.set(taskId, expiresAt);
    this.#batch.results.push({ taskId, state: 'REVOKED', payload: null, updatedAt: now, expiresAt });
    this.#pendingResults.push({ session, index: this.#batch.results.length - 1, done, replyWanted: true });
    // Revoking is rare: a scan of what is held is cheaper than an index kept on every delivery.
    let held = 0;
    for (const s of this.#sessions) {
      let told = false;
      for (const d of s.unacked.values()) {
        if (d.message.headers?.[TASK_ID_HEADER] !== taskId) continue;
        held++;
        told = true;
        s.sink.revoked({ consumerTag: d.consumer.tag, deliveryTag: d.tag, taskId, terminate });
      }
      // A worker may run the task after acking it early: the broker no longer knows who, so every
      // consuming connection hears the news once [PROTO §5.20].
      if (!told && s.consumers.size > 0) s.sink.revoked({ taskId, terminate });
    }
    this.#log.info({ taskId, terminate, held }, 'task revoked');
    this.#scheduleFlush();
  }

  /** Revocations in force (some may have expired since the last sweep). */
  get revokedCount(): number {
    return this.#revoked.size;
  }

  /** `getResult` calls waiting for a terminal state, across sessions. */
  get resultWaiterCount(): number {
    let n = 0;
    for (const waiting of this.#waiters.values()) n += waiting.size;
    return n;
  }

  /**
   * The task's row unless it expired (a row past its expiry counts as gone even before the sweep),
   * or the store's failure to read it.
   */
  #liveResult(taskId: string, now: number): ResultReadOutcome {
    try {
      const record = this.#store.getResult(taskId);
      return record === null || record.expiresAt <= now ? null : record;
    } catch (cause) {
      return new BrokerError('E_STORE_FAILED', `the store could not read the result: ${(cause as Error).message}`, { cause });
    }
  }

  #answerGet(session: Session, taskId: string, waitMs: number, reply: (outcome: ResultReadOutcome) => void): void {
    if (session.closed) return;
    const record = this.#liveResult(taskId, this.#clock());
    if (record instanceof BrokerError) {
      reply(record);
      return;
    }
    if (waitMs <= 0 || (record !== null && isTerminalTaskState(record.state)) || this.#closed) {
      reply(record);
      return;
    }
    const waiter: ResultWaiter = { session, taskId, reply, timer: null };
    let waiting = this.#waiters.get(taskId);
    if (waiting === undefined) this.#waiters.set(taskId, (waiting = new Set()));
    waiting.add(waiter);
    session.waiters.add(waiter);
    // One timer per waiting get, never per message; unref'd like every engine timer.
    waiter.timer = setTimeout(() => {
      waiter.timer = null;
      this.#dropWaiter(waiter);
      this.#answerGet(session, taskId, 0, reply);
    }, waitMs);
    waiter.timer.unref();
  }

  #dropWaiter(waiter: ResultWaiter): void {
    if (waiter.timer !== null) clearTimeout(waiter.timer);
    waiter.timer = null;
    waiter.session.waiters.delete(waiter);
    const waiting = this.#waiters.get(waiter.taskId);
    if (waiting === undefined) return;
    waiting.delete(waiter);
    if (waiting.size === 0) this.#waiters.delete(waiter.taskId);
  }

  /** After a commit: answers the gets waiting for tasks whose row the batch made terminal. */
  #wakeWaiters(batch: WriteBatch, result: WriteResult): void {
    if (this.#waiters.size === 0) return;
    const now = this.#clock();
    for (let i = 0; i < batch.results.length; i++) {
      const write = batch.results[i]!;
      if (result.results[i] !== true || !isTerminalTaskState(write.state)) continue;
      const waiting = this.#waiters.get(write.taskId);
      if (waiting === undefined) continue;
      const record = this.#liveResult(write.taskId, now);
      for (const waiter of [...waiting]) {
        this.#dropWaiter(waiter);
        waiter.reply(record);
      }
    }
  }

  /** True when the message runs a task revoked now; forgets a revocation found expired. */
  #isRevoked(message: MessageRecord, now: number): boolean {
    const taskId = message.headers?.[TASK_ID_HEADER];
    if (typeof taskId !== 'string') return false;
    const until = this.#revoked.get(taskId);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#revoked.delete(taskId);
    return false;
  }

  /** A ready message of a revoked task goes for good, as if acked [PROTO §5.20]. */
  #dropRevoked(queue: QueueState, message: MessageRecord): void {
    queue.ready--;
    queue.stats.revoked++;
    queue.bytes -= message.body.length;
    this.#batch.remove.push(message.id);
    this.#log.debug({ queue: queue.name, taskId: message.headers?.[TASK_ID_HEADER] }, 'revoked message dropped');
  }

  /** Deletes expired result rows (a bounded batch per turn) and forgets expired revocations. */
  #sweepResults(): void {
    if (this.#closed) return;
    const now = this.#clock();
    for (const [taskId, until] of this.#revoked) if (until <= now) this.#revoked.delete(taskId);
    let deleted: number;
    try {
      deleted = this.#store.expireResults({ now, limit: RESULT_SWEEP_BATCH });
    } catch (err) {
      this.#log.error({ err }, 'result sweep failed');
      return;
    }
    if (deleted > 0) this.#log.debug({ deleted }, 'expired results deleted');
    // More may be due: go on after other work had its turn.
    if (deleted === RESULT_SWEEP_BATCH) setImmediate(() => this.#sweepResults());
  }

  // ---- consume --------------------------------------------------------------

  consume(handle: EngineSession, params: { queue: string; consumerTag: string; prefetch: number }): void {
    const session = handle as Session;
    const queue = this.#requireQueue(params.queue);
    if (session.consumers.has(params.consumerTag)) {
      throw new BrokerError('E_CONSUMER_TAG_IN_USE', `consumer tag "${params.consumerTag}" is already in use on this connection`);
    }
    const consumer: Consumer = { tag: params.consumerTag, session, queue, prefetch: params.prefetch, credit: 0, inflight: 0 };
    session.consumers.set(consumer.tag, consumer);
    queue.consumers.push(consumer);
    this.#markDirty(queue);
  }

  /** Changes a consumer's window while it runs; 0 switches it to pull mode. */
  updateConsumer(handle: EngineSession, consumerTag: string, prefetch: number): void {
    const consumer = this.#requireConsumer(handle as Session, consumerTag);
    consumer.prefetch = prefetch;
    this.#markDirty(consumer.queue);
  }

  /** Grants a pull-mode consumer `count` more deliveries. */
  pull(handle: EngineSession, consumerTag: string, count: number): void {
    const consumer = this.#requireConsumer(handle as Session, consumerTag);
    consumer.credit = Math.min(65_535, consumer.credit + count);
    this.#markDirty(consumer.queue);
  }

  /** Stops a consumer. Its unacked deliveries stay with the session and may still be settled. */
  cancel(handle: EngineSession, consumerTag: string): void {
    const session = handle as Session;
    const consumer = this.#requireConsumer(session, consumerTag);
    session.consumers.delete(consumerTag);
    this.#removeConsumer(consumer);
  }

  #requireConsumer(session: Session, consumerTag: string): Consumer {
    const consumer = session.consumers.get(consumerTag);
    if (consumer === undefined) throw new BrokerError('E_CONSUMER_NOT_FOUND', `no consumer "${consumerTag}" on this connection`);
    return consumer;
  }

  #removeConsumer(consumer: Consumer): void {
    const list = consumer.queue.consumers;
    const i = list.indexOf(consumer);
    if (i >= 0) list.splice(i, 1);
    if (consumer.queue.nextConsumer >= list.length) consumer.queue.nextConsumer = 0;
  }

  /**
   * Settles deliveries of this session. Tags that are unknown (never delivered
   * here, already settled) or whose lease expired are refused, none counted twice.
   */
  settle(
    handle: EngineSession,
    tags: readonly number[],
    action: SettleAction,
    opts: { requeue?: boolean; reason?: string; delayMs?: number } = {},
  ): TagOutcome {
    const session = handle as Session;
    const outcome: TagOutcome = { unknown: [], expired: [] };
    const now = this.#clock();
    for (const tag of tags) {
      const d = this.#held(session, tag, outcome);
      if (d === undefined) continue;
      this.#release(d);
      this.#markDirty(d.queue);
      const queue = d.queue;
      if (action === 'ack') {
        queue.stats.acked++;
        queue.bytes -= d.message.body.length;
        this.#batch.remove.push(d.message.id);
      } else if (action === 'nack' && opts.requeue !== false) {
        queue.stats.nacked++;
        this.#requeue(queue, d.message, opts.reason, opts.delayMs === undefined || opts.delayMs === 0 ? 0 : now + opts.delayMs);
      } else {
        queue.stats.rejected++;
        this.#deadLetter(queue, d.message, action === 'reject' ? 'rejected' : 'nacked', opts.reason);
      }
    }
    this.#scheduleFlush();
    return outcome;
  }

  /** The delivery `tag` names on this session, or undefined after filing the tag as expired or unknown. */
  #held(session: Session, tag: number, outcome: TagOutcome): UnackedDelivery | undefined {
    const d = session.unacked.get(tag);
    if (d === undefined) (session.expiredTags.has(tag) ? outcome.expired : outcome.unknown).push(tag);
    return d;
  }

  /** Renews the leases of deliveries still held: they now run out `ms` from now (default: the queue's visibility timeout). */
  extend(handle: EngineSession, tags: readonly number[], ms?: number): TagOutcome & { leaseExpiresAt: number } {
    const session = handle as Session;
    const outcome: TagOutcome = { unknown: [], expired: [] };
    const now = this.#clock();
    let leaseExpiresAt = 0;
    for (const tag of tags) {
      const d = this.#held(session, tag, outcome);
      if (d === undefined) continue;
      d.leaseExpiresAt = now + (ms ?? d.queue.options.visibilityTimeoutMs);
      leaseExpiresAt = d.leaseExpiresAt;
      this.#leases.update(d);
    }
    this.#armTimer();
    return { ...outcome, leaseExpiresAt };
  }

  /**
   * Puts a delivered message back: at the head of its lane, or delayed until
   * `readyAt`; past `maxDeliveries` it is dead-lettered instead.
   */
  #requeue(queue: QueueState, message: MessageRecord, reason?: string, readyAt = 0): void {
    if (queue.deleted) return;
    const { maxDeliveries } = queue.options;
    if (maxDeliveries > 0 && message.deliveryCount >= maxDeliveries) {
      this.#deadLetter(queue, message, 'delivery-limit', reason);
      return;
    }
    if (readyAt > 0) {
      queue.delayed++;
      this.#batch.delay.push({ id: message.id, readyAt, deliveryCount: message.deliveryCount });
      this.#noteDelayed(readyAt);
      return;
    }
    queue.lanes[message.priority]!.buffer.pushFront(message);
    queue.ready++;
    this.#markDirty(queue);
  }

  /** Moves a message (no longer counted as ready or unacked) to the dead-letter queue with `x-death-*` headers, or drops it. */
  #deadLetter(queue: QueueState, message: MessageRecord, reason: string, detail?: string): void {
    const target = queue.options.deadLetterQueue === null ? undefined : this.#queues.get(queue.options.deadLetterQueue);
    if (target === undefined || target === queue) {
      queue.stats.dropped++;
      queue.bytes -= message.body.length;
      this.#batch.remove.push(message.id);
      return;
    }
    queue.stats.deadLettered++;
    const headers: MessageHeaders = {
      ...message.headers,
      'x-death-reason': reason,
      'x-death-queue': queue.name,
      'x-death-count': message.deliveryCount,
      'x-death-time': this.#clock(),
    };
    if (detail !== undefined) headers['x-death-error'] = detail;
    this.#move(queue, target, message, headers);
  }

  #move(from: QueueState, to: QueueState, message: MessageRecord, headers: MessageHeaders): void {
    from.bytes -= message.body.length;
    this.#batch.move.push({ id: message.id, toQueueId: to.id, headers });
    this.#pendingMoves.push({ message, from, to, headers });
    this.#scheduleFlush();
  }

  // ---- commit and dispatch ---------------------------------------------------

  #markDirty(queue: QueueState): void {
    this.#dirty.add(queue);
    this.#scheduleFlush();
  }

  /**
   * Runs `fn` right after the dispatch of the flush scheduled for this turn, and returns true;
   * returns false, doing nothing, when no flush is scheduled. A front end defers its write so
   * that replies of this turn (an ack's `ok`) leave with the deliveries the turn frees: at
   * prefetch 1 that is one write and one wake-up of the consumer per message instead of two.
   */
  afterDispatch(fn: () => void): boolean {
    if (!this.#flushScheduled) return false;
    this.#afterDispatch.push(fn);
    return true;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /**
   * Runs once per turn: dispatches into the credit that settles freed (that needs
   * no commit), commits the batch, confirms its publishes, then dispatches what
   * the commit made ready.
   */
  flush(): void {
    this.#flushScheduled = false;
    this.#dispatchDirty();
    const waiting = this.#afterDispatch;
    if (waiting.length > 0) {
      this.#afterDispatch = [];
      for (const fn of waiting) fn();
    }
    // Front ends send what the first dispatch produced in microtasks queued during it; the
    // commit is queued after them, so those deliveries leave before the commit blocks.
    queueMicrotask(() => {
      if (this.#deferrableBatch()) this.#deferAckCommit();
      else this.#commitNow();
      this.#dispatchDirty();
      this.#readAhead();
    });
  }

  /**
   * True when nothing in the pending batch is waited for: acks, delivery marks and task states
   * sent with `noReply` for tasks no `result.get` waits on, and not too many of them.
   */
  #deferrableBatch(): boolean {
    const b = this.#batch;
    if (
      this.#pendingPublishes.length > 0 ||
      this.#pendingGets.length > 0 ||
      this.#pendingMoves.length > 0 ||
      b.enqueue.length > 0 ||
      b.move.length > 0 ||
      b.delay.length > 0 ||
      b.remove.length + b.delivered.length + b.results.length >= ACK_COMMIT_MAX_ROWS
    ) {
      return false;
    }
    for (const pending of this.#pendingResults) {
      if (pending.replyWanted) return false;
      const write = b.results[pending.index]!;
      // Revocations must reach the disk, and a waiting get wants its answer now.
      if (write.state === 'REVOKED' || write.ifAbsent === true || this.#waiters.has(write.taskId)) return false;
    }
    // Every result write comes with a pending entry (putResult, revoke, or a publish's PENDING row).
    return b.results.length === this.#pendingResults.length;
  }

  #deferAckCommit(): void {
    if (this.#ackCommitTimer !== null || isBatchEmpty(this.#batch) || this.#closed) return;
    this.#ackCommitTimer = setTimeout(() => {
      this.#ackCommitTimer = null;
      this.#commitNow();
      this.#dispatchDirty();
    }, ACK_COMMIT_DELAY_MS);
    // Unref'd like every engine timer: close() commits what it was waiting for.
    this.#ackCommitTimer.unref();
  }

  /** Commits everything pending now, deferred acks included. */
  #commitNow(): void {
    if (this.#ackCommitTimer !== null) {
      clearTimeout(this.#ackCommitTimer);
      this.#ackCommitTimer = null;
    }
    const batch = this.#batch;
    if (isBatchEmpty(batch) && this.#pendingPublishes.length === 0 && this.#pendingGets.length === 0) return;
    const publishes = this.#pendingPublishes;
    const moves = this.#pendingMoves;
    const resultWrites = this.#pendingResults;
    const gets = this.#pendingGets;
    this.#batch = emptyBatch();
    this.#pendingPublishes = [];
    this.#pendingMoves = [];
    this.#pendingResults = [];
    this.#pendingGets = [];
    for (const p of publishes) {
      if (p.enqueueIndex < 0) continue;
      p.queue.pendingCount--;
      p.queue.pendingBytes -= batch.enqueue[p.enqueueIndex]!.body.length;
    }
    let result: WriteResult;
    try {
      result = isBatchEmpty(batch) ? { enqueued: [], moved: [], results: [] } : this.#store.write(batch);
    } catch (cause) {
      this.#log.error({ err: cause, publishes: publishes.length }, 'store write failed');
      // Forget ids that were never stored, or a retry would be taken for a duplicate.
      for (const p of publishes) if (p.dedupId !== null) this.#dedup.forget(p.queue.id, p.dedupId);
      const error = new BrokerError('E_STORE_FAILED', `the store could not commit: ${(cause as Error).message}`, { cause, retryAfterMs: 1000 });
      this.#refuseBatch(publishes, resultWrites, gets, error);
      // Acks and delivery counts that did not commit are not lost: the rows stay and are redelivered after a restart.
      return;
    }
    // Readable now: new messages are dispatched at once, before their batch is on disk. A
    // consumer may so see a message whose publish is then refused (the sync failed); at-least-once
    // allows that, as it allows a publisher's retry after no confirm. The replies that promise
    // durability (confirms, task states, revocations) wait for the sync.
    for (const p of publishes) {
      if (p.enqueueIndex < 0) continue;
      const input = batch.enqueue[p.enqueueIndex]!;
      const assigned = result.enqueued[p.enqueueIndex]!;
      p.queue.stats.published++;
      if (p.queue.deleted) continue;
      p.queue.bytes += input.body.length;
      if (input.readyAt > 0) {
        p.queue.delayed++;
        this.#noteDelayed(input.readyAt);
        if (p.queue.options.overflow === 'drop-oldest') this.#dropOverflow(p.queue);
        continue;
      }
      this.#appendReady(p.queue, {
        id: assigned.id,
        queueId: input.queueId,
        seq: assigned.seq,
        priority: input.priority,
        messageId: input.messageId,
        headers: input.headers,
        body: input.body,
        deliveryCount: 0,
        publishedAt: input.publishedAt,
        expiresAt: input.expiresAt,
      });
      if (p.queue.options.overflow === 'drop-oldest') this.#dropOverflow(p.queue);
    }
    for (let i = 0; i < moves.length; i++) {
      const m = moves[i]!;
      if (m.to.deleted) continue;
      m.to.bytes += m.message.body.length;
      this.#appendReady(m.to, {
        ...m.message,
        queueId: m.to.id,
        seq: result.moved[i]!.seq,
        headers: m.headers,
        deliveryCount: 0,
        expiresAt: null,
      });
    }
    if (publishes.length === 0 && resultWrites.length === 0 && gets.length === 0) return;
    this.#store.whenDurable((error) => {
      if (error === null) this.#answerCommitted(publishes, resultWrites, gets, batch, result);
      else this.#refuseUnsynced(publishes, resultWrites, gets, error);
    });
  }

  /** Once a batch is on disk: confirms its publishes, tells its task-state writes, answers the gets that waited for it. */
  #answerCommitted(publishes: PendingPublish[], resultWrites: PendingResult[], gets: PendingGet[], batch: WriteBatch, result: WriteResult): void {
    const confirms = new Map<Session, { upTo: number; duplicates: number[] }>();
    for (const p of publishes) {
      let c = confirms.get(p.session);
      if (c === undefined) confirms.set(p.session, (c = { upTo: 0, duplicates: [] }));
      c.upTo = p.seq;
      if (p.enqueueIndex < 0) c.duplicates.push(p.seq);
    }
    for (const [session, c] of confirms) if (!session.closed) session.sink.confirm(c.upTo, c.duplicates);
    if (batch.results.length > 0) {
      for (const r of resultWrites) if (!r.session.closed) r.done(result.results[r.index] === true);
      this.#wakeWaiters(batch, result);
    }
    for (const g of gets) this.#answerGet(g.session, g.taskId, g.waitMs, g.reply);
  }

  /**
   * A batch committed but could not be synced: its publishes are refused although their messages
   * stay queued. The store refuses every later write; after a restart, a retry with the same
   * message id is confirmed as a duplicate if the message reached the disk, and stored if not.
   */
  #refuseUnsynced(publishes: PendingPublish[], resultWrites: PendingResult[], gets: PendingGet[], cause: Error): void {
    this.#log.error({ err: cause, publishes: publishes.length }, 'store sync failed');
    const error = new BrokerError('E_STORE_FAILED', `the store could not sync to disk: ${cause.message}`, { cause, retryAfterMs: 1000 });
    this.#refuseBatch(publishes, resultWrites, gets, error);
  }

  /** A batch that did not reach the disk (commit or sync failed): its publishes and task-state writes hear `error`; its gets are answered from what is stored. */
  #refuseBatch(publishes: PendingPublish[], resultWrites: PendingResult[], gets: PendingGet[], error: BrokerError): void {
    for (const p of publishes) if (!p.session.closed) p.session.sink.publishFailed(p.seq, error);
    for (const r of resultWrites) if (!r.session.closed) r.done(error);
    for (const g of gets) this.#answerGet(g.session, g.taskId, g.waitMs, g.reply);
  }

  /** A message that just entered a queue: buffered if its lane is caught up with the disk, else left there. */
  #appendReady(queue: QueueState, message: MessageRecord): void {
    const lane = queue.lanes[message.priority]!;
    queue.ready++;
    if (!lane.diskHasMore && lane.buffer.length < this.#laneBufferSize) {
      message.body = ownBytes(message.body);
      lane.buffer.pushBack(message);
      lane.cursor = message.seq;
    } else {
      lane.diskHasMore = true;
    }
    this.#markDirty(queue);
  }

  /** `drop-oldest`: while over a limit, the oldest ready message (lowest priority first) goes to the dead-letter queue or away. */
  #dropOverflow(queue: QueueState): void {
    while (queue.ready > 0 && this.#overLimit(queue, 0, 0) !== null) {
      let oldest: MessageRecord | undefined;
      for (let p = 0; p < PRIORITY_LEVELS && oldest === undefined; p++) {
        const lane = queue.lanes[p]!;
        if (lane.buffer.length === 0 && lane.diskHasMore) this.#refill(queue, lane, p);
        oldest = lane.buffer.popFront();
      }
      if (oldest === undefined) return;
      queue.ready--;
      this.#deadLetter(queue, oldest, 'maxlen');
    }
  }

  #dispatchDirty(): void {
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const queue of dirty) if (!queue.deleted) this.#dispatch(queue);
    // What dispatch wrote (delivery marks) commits next turn, or with the deferred acks.
    if (!isBatchEmpty(this.#batch)) {
      if (this.#deferrableBatch()) this.#deferAckCommit();
      else this.#scheduleFlush();
    }
    this.#armTimer();
  }

  /** Hands ready messages to the consumers with the most free credit (round-robin among equals). */
  #dispatch(queue: QueueState): void {
    const consumers = queue.consumers;
    if (consumers.length === 0 || queue.ready === 0) return;
    const now = this.#clock();
    while (queue.ready > 0) {
      const consumer = this.#pickConsumer(queue);
      if (consumer === undefined) return;
      const message = this.#takeDeliverable(queue, now);
      if (message === undefined) return;
      queue.ready--;
      const session = consumer.session;
      const tag = session.nextDeliveryTag++;
      const deliveryCount = ++message.deliveryCount;
      const d: UnackedDelivery = {
        heapIndex: -1,
        tag,
        message,
        queue,
        consumer,
        session,
        leaseExpiresAt: now + queue.options.visibilityTimeoutMs,
      };
      session.unacked.set(tag, d);
      this.#leases.push(d);
      consumer.inflight++;
      if (consumer.prefetch === 0) consumer.credit--;
      queue.unacked++;
      queue.stats.delivered++;
      if (deliveryCount > 1) queue.stats.redelivered++;
      this.#recordDelivery(queue, message, deliveryCount);
      session.sink.deliver({
        deliveryTag: tag,
        consumerTag: consumer.tag,
        queue: queue.name,
        message,
        deliveryCount,
        redelivered: deliveryCount > 1,
        leaseExpiresAt: d.leaseExpiresAt,
        backlog: queue.ready > 0 && (consumer.prefetch > 0 ? consumer.inflight >= consumer.prefetch : consumer.credit === 0),
      });
    }
  }

  /**
   * First deliveries leave a lane in seq order (it is FIFO; requeued messages at its head were
   * delivered already), so raising the lane's mark records them all with one write per commit.
   * Redeliveries, and keyed rate limits, which hold messages back out of order, write the row.
   */
  #recordDelivery(queue: QueueState, message: MessageRecord, deliveryCount: number): void {
    const lane = queue.lanes[message.priority]!;
    if (deliveryCount > 1 || queue.keyLimiters !== null || message.seq <= lane.deliveredThrough) {
      this.#batch.delivered.push({ id: message.id, deliveryCount });
      return;
    }
    lane.deliveredThrough = message.seq;
    if (lane.mark !== null && lane.markBatch === this.#batch) {
      lane.mark.seq = message.seq;
      return;
    }
    lane.mark = { queueId: queue.id, priority: message.priority, seq: message.seq };
    lane.markBatch = this.#batch;
    this.#batch.deliveredThrough.push(lane.mark);
  }

  #pickConsumer(queue: QueueState): Consumer | undefined {
    const consumers = queue.consumers;
    const n = consumers.length;
    let best: Consumer | undefined;
    let bestFree = 0;
    let bestIndex = 0;
    for (let i = 0; i < n; i++) {
      const index = (queue.nextConsumer + i) % n;
      const c = consumers[index]!;
      const free = c.prefetch > 0 ? c.prefetch - c.inflight : c.credit;
      if (free > bestFree) {
        best = c;
        bestFree = free;
        bestIndex = index;
      }
    }
    if (best !== undefined) queue.nextConsumer = (bestIndex + 1) % n;
    return best;
  }

  /**
   * The next message that may be delivered now: expired ones are dead-lettered
   * on the way, and rate limits hold back what is over its rate (the timer
   * looks again when a slot frees).
   */
  #takeDeliverable(queue: QueueState, now: number): MessageRecord | undefined {
    if (queue.limiter !== null) {
      if (queue.limiter.nextAt() > now) {
        this.#waitForRate(queue, queue.limiter.nextAt());
        return undefined;
      }
      const message = this.#takeUnexpired(queue, now);
      if (message !== undefined) queue.limiter.tryTake(now);
      return message;
    }
    if (queue.keyLimiters !== null) return this.#takeKeyed(queue, queue.keyLimiters, now);
    return this.#takeUnexpired(queue, now);
  }

  #takeKeyed(queue: QueueState, limiters: Map<string, RateLimiter>, now: number): MessageRecord | undefined {
    const header = queue.options.rateLimitKey!;
    const limiterFor = (key: string): RateLimiter => {
      let l = limiters.get(key);
      if (l === undefined) limiters.set(key, (l = new RateLimiter(rateOf(queue.options)!)));
      return l;
    };
    // Held-back keys first, so each key stays FIFO.
    for (const [key, held] of queue.throttled) {
      while (held.length > 0 && limiterFor(key).nextAt() <= now) {
        const message = held.popFront()!;
        queue.throttledCount--;
        if (held.length === 0) queue.throttled.delete(key);
        if (!this.#deliverable(queue, message, now)) continue;
        limiterFor(key).tryTake(now);
        return message;
      }
    }
    while (queue.throttledCount < this.#laneBufferSize) {
      const message = this.#takeUnexpired(queue, now);
      if (message === undefined) break;
      const key = String(message.headers?.[header] ?? '');
      if (!queue.throttled.has(key) && limiterFor(key).tryTake(now)) return message;
      let held = queue.throttled.get(key);
      if (held === undefined) queue.throttled.set(key, (held = new Deque()));
      held.pushBack(message);
      queue.throttledCount++;
    }
    let wakeAt = Infinity;
    for (const key of queue.throttled.keys()) wakeAt = Math.min(wakeAt, limiterFor(key).nextAt());
    if (wakeAt < Infinity) this.#waitForRate(queue, wakeAt);
    for (const [key, l] of limiters) if (l.idle(now) && !queue.throttled.has(key)) limiters.delete(key);
    return undefined;
  }

  /**
   * The next ready message that has not expired and whose task is not revoked: expired ones go
   * to the dead-letter queue or away, revoked ones away [PROTO §5.14], [PROTO §5.20].
   */
  #takeUnexpired(queue: QueueState, now: number): MessageRecord | undefined {
    for (;;) {
      const message = this.#takeReady(queue);
      if (message === undefined) return undefined;
      if (this.#deliverable(queue, message, now)) return message;
    }
  }

  /** False for a message taken from ready that has expired or whose task is revoked: it is disposed of. */
  #deliverable(queue: QueueState, message: MessageRecord, now: number): boolean {
    if (message.expiresAt !== null && message.expiresAt <= now) {
      this.#expire(queue, message);
      return false;
    }
    // The hot path pays this size check only, while nothing is revoked.
    if (this.#revoked.size === 0 || !this.#isRevoked(message, now)) return true;
    this.#dropRevoked(queue, message);
    return false;
  }

  #expire(queue: QueueState, message: MessageRecord): void {
    queue.ready--;
    queue.stats.expired++;
    this.#deadLetter(queue, message, 'expired');
  }

  /** The next ready message: highest priority first, FIFO within one; refills lanes from disk. */
  #takeReady(queue: QueueState): MessageRecord | undefined {
    for (let p = PRIORITY_LEVELS - 1; p >= 0; p--) {
      const lane = queue.lanes[p]!;
      if (lane.buffer.length === 0 && lane.diskHasMore) this.#refill(queue, lane, p);
      const message = lane.buffer.popFront();
      if (message === undefined) continue;
      if (lane.diskHasMore && !lane.readAheadQueued && lane.buffer.length < this.#laneBufferSize >> 1) {
        lane.readAheadQueued = true;
        this.#readAheadLanes.push({ queue, lane, priority: p });
      }
      return message;
    }
    return undefined;
  }

  /** Reads the lane's next rows from disk until its buffer is full again (or the disk has no more). */
  #refill(queue: QueueState, lane: Lane, priority: number): void {
    const limit = this.#laneBufferSize - lane.buffer.length;
    if (limit <= 0) return;
    const rows = this.#store.loadReady({ queueId: queue.id, priority, afterSeq: lane.cursor, limit });
    for (const row of rows) lane.buffer.pushBack(row);
    if (rows.length > 0) lane.cursor = rows[rows.length - 1]!.seq;
    lane.diskHasMore = rows.length === limit;
  }

  /**
   * Tops up the lanes that fell below half full during this turn's dispatch. It runs after the
   * turn's deliveries were written, so the read (about 1 µs a row) overlaps with consumers
   * working on them. Without it a lane read back from disk ran empty first, and a whole buffer's
   * read sat between the acks arriving and the next deliveries leaving.
   */
  #readAhead(): void {
    if (this.#readAheadLanes.length === 0) return;
    const lanes = this.#readAheadLanes;
    this.#readAheadLanes = [];
    for (const { queue, lane, priority } of lanes) {
      lane.readAheadQueued = false;
      if (this.#closed || queue.deleted || !lane.diskHasMore) continue;
      try {
        this.#refill(queue, lane, priority);
      } catch (err) {
        // The lane refills when it runs empty, as without read-ahead; that read reports its own failure.
        this.#log.error({ err, queue: queue.name }, 'read-ahead failed');
      }
    }
  }

  // ---- the timer: leases, delays, rate limits --------------------------------

  #noteDelayed(readyAt: number): void {
    if (this.#nextDelayedAt === null || readyAt < this.#nextDelayedAt) this.#nextDelayedAt = readyAt;
    this.#armTimer();
  }

  #waitForRate(queue: QueueState, at: number): void {
    const current = this.#rateWaits.get(queue);
    if (current === undefined || at < current) this.#rateWaits.set(queue, at);
  }

  /** Sets the one engine timer to the earliest moment anything is due. */
  #armTimer(): void {
    if (this.#closed) return;
    let at = Infinity;
    const lease = this.#leases.peek();
    if (lease !== undefined) at = Math.min(at, lease.leaseExpiresAt);
    if (this.#nextDelayedAt !== null) at = Math.min(at, this.#nextDelayedAt);
    for (const wake of this.#rateWaits.values()) at = Math.min(at, wake);
    if (at === Infinity) return; // nothing is waiting for time
    if (this.#timer !== null && at >= this.#timerAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, at - this.#clock()));
    this.#timer.unref();
  }

  #onTimer(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    if (this.#closed) return;
    const now = this.#clock();
    this.#expireLeases(now);
    if (this.#nextDelayedAt !== null && this.#nextDelayedAt <= now) this.#promoteDelayed(now);
    for (const [queue, at] of this.#rateWaits) {
      if (at > now) continue;
      this.#rateWaits.delete(queue);
      this.#markDirty(queue);
    }
    this.#dispatchDirty();
  }

  /** Deliveries whose lease ran out go back to ready, redelivered; a late ack for them is refused. */
  #expireLeases(now: number): void {
    for (let d = this.#leases.peek(); d !== undefined && d.leaseExpiresAt <= now; d = this.#leases.peek()) {
      this.#release(d);
      d.session.rememberExpired(d.tag);
      d.queue.stats.leaseExpired++;
      this.#log.debug({ queue: d.queue.name, lateMs: now - d.leaseExpiresAt }, 'lease expired');
      this.#requeue(d.queue, d.message, 'lease expired');
    }
  }

  /** Makes due delayed messages ready; commits pending writes first so none is missed. */
  #promoteDelayed(now: number): void {
    this.#commitNow();
    for (;;) {
      const rows = this.#store.promoteDelayed({ now, limit: PROMOTE_BATCH });
      for (const row of rows) {
        const queue = this.#queuesById.get(row.queueId);
        if (queue === undefined) continue;
        queue.delayed--;
        this.#appendReady(queue, row);
      }
      if (rows.length < PROMOTE_BATCH) break;
    }
    this.#nextDelayedAt = this.#store.nextDelayedAt();
  }

  // ---- introspection and shutdown -------------------------------------------

  /** Per-queue depth and counters, for metrics and the management API. */
  queueStats(): Array<{
    name: string;
    ready: number;
    delayed: number;
    unacked: number;
    bytes: number;
    consumers: number;
    stats: Readonly<QueueStats>;
  }> {
    return [...this.#queues.values()].map((q) => ({
      name: q.name,
      ready: q.ready,
      delayed: q.delayed,
      unacked: q.unacked,
      bytes: q.bytes,
      consumers: q.consumers.length,
      stats: q.stats,
    }));
  }

  /** When the engine timer fires next (ms since epoch), or null when nothing waits for time. */
  get nextWakeAt(): number | null {
    return this.#timer === null ? null : this.#timerAt;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Commits what is pending and stops accepting work. Sessions should be closed first. */
  close(): void {
    if (this.#closed) return;
    this.#commitNow();
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    for (const waiting of [...this.#waiters.values()]) for (const waiter of [...waiting]) this.#dropWaiter(waiter);
  }
}

