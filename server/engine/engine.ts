/**
 * The queue engine: queues, sessions, consumers, deliveries and dispatch.
 *
 * It knows nothing of WebSocket or frames. A front end (the WebSocket session
 * today, an AMQP listener later) opens an {@link EngineSession} per client,
 * calls the verbs below, and turns {@link SessionSink} callbacks into frames.
 *
 * Message states (in memory; the store holds what survives a crash):
 *   ready     in a queue lane (buffered in memory, or only on disk past the lane cursor)
 *   unacked   delivered to a consumer and held by its session until ack/nack/reject,
 *             or until the session closes: then it is ready again, redelivered
 *   gone      acked, dropped, or moved to the dead-letter queue (ready there)
 *
 * Group commit: writes of one event-loop turn (publishes, acks, delivery counts,
 * moves) go into one batch, committed in one transaction by `flush()` on
 * `setImmediate`; publishes are confirmed and become deliverable only after it.
 */
import { BrokerError, type MessageHeaders, type QueueOptions } from '../../protocol/index.js';
import { emptyBatch, isBatchEmpty, type MessageRecord, type QueueRecord, type Store, type WriteBatch } from '../../storage/index.js';
import type { Logger } from 'pino';
import { Deque } from './deque.js';
import {
  firstDifference,
  queueOptionsFromStore,
  resolveQueueOptions,
  type ResolvedQueueOptions,
} from './queue-options.js';

export const PRIORITY_LEVELS = 10;

/** Counters per queue, read by the metrics module at scrape time. */
export interface QueueStats {
  published: number;
  delivered: number;
  redelivered: number;
  acked: number;
  nacked: number;
  rejected: number;
  deadLettered: number;
}

/** One delivery as handed to a session's sink. */
export interface Delivery {
  readonly deliveryTag: number;
  readonly consumerTag: string;
  readonly queue: string;
  readonly message: MessageRecord;
  readonly deliveryCount: number;
  readonly redelivered: boolean;
}

/** What the engine tells a front end about one session. */
export interface SessionSink {
  deliver(delivery: Delivery): void;
  /** Every publish of this session with seq ≤ `upTo` that was not refused is durable. */
  confirm(upTo: number): void;
  /** One publish was refused after it was accepted (the store failed). */
  publishFailed(seq: number, error: BrokerError): void;
  /** The broker cancelled a consumer (its queue was deleted). */
  consumerCancelled(consumerTag: string, reason: string): void;
}

/** What a producer hands to `publish`. */
export interface PublishInput {
  seq: number;
  queue: string;
  body: Uint8Array;
  messageId?: string;
  headers?: MessageHeaders;
  priority?: number;
}

export type SettleAction = 'ack' | 'nack' | 'reject';

export interface EngineOptions {
  store: Store;
  logger: Logger;
  /** Milliseconds since epoch; injectable for tests. Default `Date.now`. */
  clock?: () => number;
  /** Ready messages kept in memory per queue and priority before the rest stays on disk. Default 1024. */
  laneBufferSize?: number;
}

interface Lane {
  buffer: Deque<MessageRecord>;
  /** Highest seq read from disk or appended; rows above it are only on disk. */
  cursor: number;
  /** Whether the store may hold ready rows with seq > cursor. */
  diskHasMore: boolean;
}

interface QueueState {
  readonly id: number;
  readonly name: string;
  readonly options: Readonly<ResolvedQueueOptions>;
  readonly lanes: Lane[];
  /** Ready messages, in memory or on disk. */
  ready: number;
  unacked: number;
  consumers: Consumer[];
  /** Round-robin position in `consumers`. */
  nextConsumer: number;
  deleted: boolean;
  stats: QueueStats;
}

interface Consumer {
  readonly tag: string;
  readonly session: Session;
  readonly queue: QueueState;
  readonly prefetch: number;
  inflight: number;
}

interface UnackedDelivery {
  readonly message: MessageRecord;
  readonly queue: QueueState;
  readonly consumer: Consumer;
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
}

interface PendingPublish {
  session: Session;
  seq: number;
  queue: QueueState;
}

interface PendingMove {
  message: MessageRecord;
  to: QueueState;
  headers: MessageHeaders;
}

function newStats(): QueueStats {
  return { published: 0, delivered: 0, redelivered: 0, acked: 0, nacked: 0, rejected: 0, deadLettered: 0 };
}

export class Engine {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #laneBufferSize: number;
  readonly #queues = new Map<string, QueueState>();
  readonly #queuesById = new Map<number, QueueState>();
  readonly #sessions = new Set<Session>();

  #batch: WriteBatch = emptyBatch();
  #pendingPublishes: PendingPublish[] = [];
  #pendingMoves: PendingMove[] = [];
  #dirty = new Set<QueueState>();
  #flushScheduled = false;
  #closed = false;

  constructor(options: EngineOptions) {
    this.#store = options.store;
    this.#log = options.logger;
    this.#clock = options.clock ?? Date.now;
    this.#laneBufferSize = options.laneBufferSize ?? 1024;
    this.#recover();
  }

  /** Rebuilds the in-memory view from the store: every stored message is ready again. */
  #recover(): void {
    const counts = new Map(this.#store.countMessages().map((c) => [c.queueId, c.stored]));
    for (const record of this.#store.listQueues()) {
      const queue = this.#addQueue(record);
      queue.ready = counts.get(record.id) ?? 0;
      for (const lane of queue.lanes) lane.diskHasMore = queue.ready > 0;
      if (queue.ready > 0) this.#log.info({ queue: queue.name, messages: queue.ready }, 'queue recovered');
    }
  }

  #addQueue(record: QueueRecord): QueueState {
    const lanes: Lane[] = [];
    for (let p = 0; p < PRIORITY_LEVELS; p++) lanes.push({ buffer: new Deque(), cursor: 0, diskHasMore: false });
    const queue: QueueState = {
      id: record.id,
      name: record.name,
      options: queueOptionsFromStore(record.options),
      lanes,
      ready: 0,
      unacked: 0,
      consumers: [],
      nextConsumer: 0,
      deleted: false,
      stats: newStats(),
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
    for (const consumer of session.consumers.values()) this.#removeConsumer(consumer);
    session.consumers.clear();
    // Newest first with pushFront, so the queue gets them back in their original order.
    const held = [...session.unacked.values()].reverse();
    session.unacked.clear();
    for (const d of held) {
      d.consumer.inflight--;
      d.queue.unacked--;
      this.#requeue(d.queue, d.message);
    }
    this.#scheduleFlush();
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
    return { messages: queue.ready + queue.unacked, consumers: queue.consumers.length };
  }

  /** Deletes a queue with its messages; its consumers are cancelled. Returns how many messages went. */
  deleteQueue(name: string, opts: { ifEmpty?: boolean; ifUnused?: boolean } = {}): number {
    const queue = this.#requireQueue(name);
    if (opts.ifEmpty === true && queue.ready + queue.unacked > 0) {
      throw new BrokerError('E_QUEUE_NOT_EMPTY', `queue "${name}" holds ${queue.ready + queue.unacked} messages`);
    }
    if (opts.ifUnused === true && queue.consumers.length > 0) {
      throw new BrokerError('E_QUEUE_IN_USE', `queue "${name}" has ${queue.consumers.length} consumers`);
    }
    this.#commitNow();
    const removed = this.#store.deleteQueue(queue.id);
    queue.deleted = true;
    this.#queues.delete(name);
    this.#queuesById.delete(queue.id);
    for (const consumer of [...queue.consumers]) {
      consumer.session.consumers.delete(consumer.tag);
      this.#removeConsumer(consumer);
      consumer.session.sink.consumerCancelled(consumer.tag, `queue "${name}" was deleted`);
    }
    // Deliveries of a deleted queue can no longer be settled.
    for (const session of this.#sessions) {
      for (const [tag, d] of session.unacked) if (d.queue === queue) session.unacked.delete(tag);
    }
    this.#log.info({ queue: name, messages: removed }, 'queue deleted');
    return removed;
  }

  /** Drops a queue's ready messages; deliveries still held are kept. Returns how many went. */
  purgeQueue(name: string): number {
    const queue = this.#requireQueue(name);
    this.#commitNow();
    const held: number[] = [];
    for (const session of this.#sessions) {
      for (const d of session.unacked.values()) if (d.queue === queue) held.push(d.message.id);
    }
    const removed = this.#store.purgeQueue(queue.id, held);
    for (const lane of queue.lanes) {
      lane.buffer = new Deque();
      lane.diskHasMore = false;
    }
    queue.ready = 0;
    this.#log.info({ queue: name, messages: removed }, 'queue purged');
    return removed;
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
    if (this.#closed) return new BrokerError('E_SHUTTING_DOWN');
    const queue = this.#queues.get(input.queue);
    if (queue === undefined) return new BrokerError('E_QUEUE_NOT_FOUND', `queue "${input.queue}" does not exist`);
    this.#batch.enqueue.push({
      queueId: queue.id,
      priority: input.priority ?? 0,
      messageId: input.messageId ?? null,
      headers: input.headers ?? null,
      body: input.body,
      publishedAt: this.#clock(),
    });
    this.#pendingPublishes.push({ session, seq: input.seq, queue });
    this.#scheduleFlush();
    return null;
  }

  // ---- consume --------------------------------------------------------------

  consume(handle: EngineSession, params: { queue: string; consumerTag: string; prefetch: number }): void {
    const session = handle as Session;
    const queue = this.#requireQueue(params.queue);
    if (session.consumers.has(params.consumerTag)) {
      throw new BrokerError('E_CONSUMER_TAG_IN_USE', `consumer tag "${params.consumerTag}" is already in use on this connection`);
    }
    const consumer: Consumer = { tag: params.consumerTag, session, queue, prefetch: params.prefetch, inflight: 0 };
    session.consumers.set(consumer.tag, consumer);
    queue.consumers.push(consumer);
    this.#markDirty(queue);
  }

  /** Stops a consumer. Its unacked deliveries stay with the session and may still be settled. */
  cancel(handle: EngineSession, consumerTag: string): void {
    const session = handle as Session;
    const consumer = session.consumers.get(consumerTag);
    if (consumer === undefined) throw new BrokerError('E_CONSUMER_NOT_FOUND', `no consumer "${consumerTag}" on this connection`);
    session.consumers.delete(consumerTag);
    this.#removeConsumer(consumer);
  }

  #removeConsumer(consumer: Consumer): void {
    const list = consumer.queue.consumers;
    const i = list.indexOf(consumer);
    if (i >= 0) list.splice(i, 1);
    if (consumer.queue.nextConsumer >= list.length) consumer.queue.nextConsumer = 0;
  }

  /**
   * Settles deliveries of this session. Returns the tags that were unknown
   * (never delivered here, or already settled): each is refused, none counted twice.
   */
  settle(handle: EngineSession, tags: readonly number[], action: SettleAction, opts: { requeue?: boolean; reason?: string } = {}): number[] {
    const session = handle as Session;
    const unknown: number[] = [];
    for (const tag of tags) {
      const d = session.unacked.get(tag);
      if (d === undefined) {
        unknown.push(tag);
        continue;
      }
      session.unacked.delete(tag);
      d.consumer.inflight--;
      d.queue.unacked--;
      this.#markDirty(d.queue);
      if (action === 'ack') {
        d.queue.stats.acked++;
        this.#batch.remove.push(d.message.id);
      } else if (action === 'nack' && opts.requeue !== false) {
        d.queue.stats.nacked++;
        this.#requeue(d.queue, d.message);
      } else {
        d.queue.stats.rejected++;
        this.#deadLetter(d.queue, d.message, action === 'reject' ? 'rejected' : 'nacked', opts.reason);
      }
    }
    this.#scheduleFlush();
    return unknown;
  }

  /** Puts a delivered message back at the head of its lane, or dead-letters it past `maxDeliveries`. */
  #requeue(queue: QueueState, message: MessageRecord): void {
    if (queue.deleted) return;
    const { maxDeliveries } = queue.options;
    if (maxDeliveries > 0 && message.deliveryCount >= maxDeliveries) {
      this.#deadLetter(queue, message, 'delivery-limit');
      return;
    }
    queue.lanes[message.priority]!.buffer.pushFront(message);
    queue.ready++;
    this.#markDirty(queue);
  }

  /** Moves a message to the queue's dead-letter queue with `x-death-*` headers, or drops it. */
  #deadLetter(queue: QueueState, message: MessageRecord, reason: string, detail?: string): void {
    const target = queue.options.deadLetterQueue === null ? undefined : this.#queues.get(queue.options.deadLetterQueue);
    if (target === undefined || target === queue) {
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
    this.#batch.move.push({ id: message.id, toQueueId: target.id, headers });
    this.#pendingMoves.push({ message, to: target, headers });
  }

  // ---- commit and dispatch ---------------------------------------------------

  #markDirty(queue: QueueState): void {
    this.#dirty.add(queue);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Commits the current batch, confirms its publishes, then dispatches. Runs once per turn. */
  flush(): void {
    this.#flushScheduled = false;
    this.#commitNow();
    this.#dispatchDirty();
  }

  #commitNow(): void {
    const batch = this.#batch;
    if (isBatchEmpty(batch)) return;
    const publishes = this.#pendingPublishes;
    const moves = this.#pendingMoves;
    this.#batch = emptyBatch();
    this.#pendingPublishes = [];
    this.#pendingMoves = [];
    let result;
    try {
      result = this.#store.write(batch);
    } catch (cause) {
      this.#log.error({ err: cause, publishes: publishes.length }, 'store write failed');
      const error = new BrokerError('E_STORE_FAILED', `the store could not commit: ${(cause as Error).message}`, { cause });
      for (const p of publishes) if (!p.session.closed) p.session.sink.publishFailed(p.seq, error);
      // Acks and delivery counts that did not commit are not lost: the rows stay and are redelivered after a restart.
      return;
    }
    const confirmUpTo = new Map<Session, number>();
    for (let i = 0; i < publishes.length; i++) {
      const p = publishes[i]!;
      const input = batch.enqueue[i]!;
      const assigned = result.enqueued[i]!;
      confirmUpTo.set(p.session, p.seq);
      p.queue.stats.published++;
      if (p.queue.deleted) continue;
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
      });
    }
    for (let i = 0; i < moves.length; i++) {
      const m = moves[i]!;
      if (m.to.deleted) continue;
      this.#appendReady(m.to, {
        ...m.message,
        queueId: m.to.id,
        seq: result.moved[i]!.seq,
        headers: m.headers,
        deliveryCount: 0,
      });
    }
    for (const [session, upTo] of confirmUpTo) if (!session.closed) session.sink.confirm(upTo);
  }

  /** A message that just entered a queue: buffered if its lane is caught up with the disk, else left there. */
  #appendReady(queue: QueueState, message: MessageRecord): void {
    const lane = queue.lanes[message.priority]!;
    queue.ready++;
    if (!lane.diskHasMore && lane.buffer.length < this.#laneBufferSize) {
      lane.buffer.pushBack(message);
      lane.cursor = message.seq;
    } else {
      lane.diskHasMore = true;
    }
    this.#markDirty(queue);
  }

  #dispatchDirty(): void {
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const queue of dirty) if (!queue.deleted) this.#dispatch(queue);
    if (!isBatchEmpty(this.#batch)) this.#scheduleFlush();
  }

  /** Hands ready messages to consumers with free credit, round-robin. */
  #dispatch(queue: QueueState): void {
    const consumers = queue.consumers;
    while (queue.ready > 0 && consumers.length > 0) {
      const consumer = this.#nextConsumerWithCredit(queue);
      if (consumer === undefined) return;
      const message = this.#takeReady(queue);
      if (message === undefined) return;
      queue.ready--;
      const session = consumer.session;
      const deliveryTag = session.nextDeliveryTag++;
      const deliveryCount = ++message.deliveryCount;
      session.unacked.set(deliveryTag, { message, queue, consumer });
      consumer.inflight++;
      queue.unacked++;
      queue.stats.delivered++;
      if (deliveryCount > 1) queue.stats.redelivered++;
      this.#batch.delivered.push({ id: message.id, deliveryCount });
      session.sink.deliver({
        deliveryTag,
        consumerTag: consumer.tag,
        queue: queue.name,
        message,
        deliveryCount,
        redelivered: deliveryCount > 1,
      });
    }
  }

  #nextConsumerWithCredit(queue: QueueState): Consumer | undefined {
    const consumers = queue.consumers;
    for (let i = 0; i < consumers.length; i++) {
      const index = (queue.nextConsumer + i) % consumers.length;
      const consumer = consumers[index]!;
      if (consumer.inflight < consumer.prefetch) {
        queue.nextConsumer = (index + 1) % consumers.length;
        return consumer;
      }
    }
    return undefined;
  }

  /** The next ready message: highest priority first, FIFO within one; refills lanes from disk. */
  #takeReady(queue: QueueState): MessageRecord | undefined {
    for (let p = PRIORITY_LEVELS - 1; p >= 0; p--) {
      const lane = queue.lanes[p]!;
      if (lane.buffer.length === 0 && lane.diskHasMore) this.#refill(queue, lane, p);
      const message = lane.buffer.popFront();
      if (message !== undefined) return message;
    }
    return undefined;
  }

  #refill(queue: QueueState, lane: Lane, priority: number): void {
    const rows = this.#store.loadReady({ queueId: queue.id, priority, afterSeq: lane.cursor, limit: this.#laneBufferSize });
    for (const row of rows) lane.buffer.pushBack(row);
    if (rows.length > 0) lane.cursor = rows[rows.length - 1]!.seq;
    lane.diskHasMore = rows.length === this.#laneBufferSize;
  }

  // ---- introspection and shutdown -------------------------------------------

  /** Per-queue depth and counters, for metrics and the management API. */
  queueStats(): Array<{ name: string; ready: number; unacked: number; consumers: number; stats: Readonly<QueueStats> }> {
    return [...this.#queues.values()].map((q) => ({
      name: q.name,
      ready: q.ready,
      unacked: q.unacked,
      consumers: q.consumers.length,
      stats: q.stats,
    }));
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Commits what is pending and stops accepting work. Sessions should be closed first. */
  close(): void {
    if (this.#closed) return;
    this.#commitNow();
    this.#closed = true;
  }
}
