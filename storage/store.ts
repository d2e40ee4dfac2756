/**
 * What the broker needs from durable state, in broker verbs.
 *
 * The broker keeps the live view (which messages are buffered, who holds which
 * delivery) in memory and rebuilds it from the store at start-up; the store
 * only holds what must survive a crash. Every method is synchronous and short:
 * the SQLite implementation runs on the broker's thread, and a batch of writes
 * is one transaction (group commit). Only the disk is waited for through a
 * callback (`whenDurable`), so that the broker can deliver what a commit made
 * ready before the sync that makes it durable.
 */
import type { MessageHeaders, StoredTaskState } from '../protocol/index.js';

/** A queue as stored. `options` is the resolved options object, opaque to the store. */
export interface QueueRecord {
  id: number;
  name: string;
  options: Record<string, unknown>;
  createdAt: number;
}

/** A message as read back for dispatch. */
export interface MessageRecord {
  id: number;
  queueId: number;
  /** Dispatch order within (queue, priority). */
  seq: number;
  priority: number;
  messageId: string | null;
  headers: MessageHeaders | null;
  body: Uint8Array;
  /**
   * Deliveries so far; > 0 means the next delivery is a redelivery. A message the store
   * knows only through a lane mark ({@link WriteBatch.deliveredThrough}) reads as 1.
   */
  deliveryCount: number;
  publishedAt: number;
  /** ms since epoch after which the message is not delivered; null = never. */
  expiresAt: number | null;
}

/** A message to store. The store assigns `id` and `seq`. */
export interface NewMessage {
  queueId: number;
  priority: number;
  messageId: string | null;
  headers: MessageHeaders | null;
  body: Uint8Array;
  publishedAt: number;
  expiresAt: number | null;
  /** 0: ready now; otherwise delayed until this time (ms since epoch). */
  readyAt: number;
}

/** The id of a stored message, read back to rebuild deduplication after a restart. */
export interface StoredMessageId {
  queueId: number;
  messageId: string;
  publishedAt: number;
}

/** A message moved to another queue (dead-lettering, redrive): it gets a new `seq` there, and no expiry. */
export interface MoveMessage {
  id: number;
  toQueueId: number;
  headers: MessageHeaders | null;
}

/**
 * A task state to record. Rows in a terminal state (SUCCESS, FAILURE, REVOKED) are never
 * overwritten; a row whose `expiresAt` is at or before this write's `updatedAt` counts as absent.
 */
export interface ResultWrite {
  taskId: string;
  state: StoredTaskState;
  /** Opaque bytes; null for none. */
  payload: Uint8Array | null;
  /** ms since epoch: the time of this write. */
  updatedAt: number;
  /** ms since epoch after which the row is gone. */
  expiresAt: number;
  /** Insert only when the task has no row (PENDING at publish); never update one. */
  ifAbsent?: boolean;
}

/** A task's row as stored. */
export interface ResultRecord {
  taskId: string;
  state: StoredTaskState;
  payload: Uint8Array | null;
  updatedAt: number;
  expiresAt: number;
}

/**
 * A lane mark: every message of the queue at this priority with `seq <= seq` that is still
 * stored there has been delivered at least once. First deliveries leave a lane in seq order,
 * so one mark per lane and batch records them all, where a row write per delivery would cost
 * one UPDATE each. Marks only move forward.
 */
export interface DeliveredThrough {
  queueId: number;
  priority: number;
  seq: number;
}

/** Writes that commit together in one transaction. */
export interface WriteBatch {
  enqueue: NewMessage[];
  /** Ids of messages settled for good (acked, or dropped). */
  remove: number[];
  /** Delivery counts to record, one entry per delivery made that no lane mark covers. */
  delivered: Array<{ id: number; deliveryCount: number }>;
  /** Lane marks to raise, at most one per (queue, priority). */
  deliveredThrough: DeliveredThrough[];
  move: MoveMessage[];
  /** Delivered messages put back as delayed (nack with a delay). */
  delay: Array<{ id: number; readyAt: number; deliveryCount: number }>;
  /** Task states to record, applied in order after the message writes. */
  results: ResultWrite[];
}

/**
 * What a committed batch did: ids and seqs of `enqueue` and `move`, in order, and for each
 * entry of `results` whether it was written (false: a terminal row, or `ifAbsent` with a row).
 */
export interface WriteResult {
  enqueued: Array<{ id: number; seq: number }>;
  moved: Array<{ id: number; seq: number }>;
  results: boolean[];
}

export interface QueueCounts {
  queueId: number;
  /** Stored messages that are not delayed (ready, or unacked before a restart). */
  stored: number;
  delayed: number;
  /** Body bytes of all the queue's messages. */
  bytes: number;
}

export interface Store {
  /** Inserts the queue, or returns the existing one unchanged. */
  declareQueue(name: string, options: Record<string, unknown>): { queue: QueueRecord; created: boolean };
  /** Deletes the queue, all its messages and its lane marks; returns how many messages went with it. */
  deleteQueue(queueId: number): number;
  /** Deletes the queue's messages except `keepIds` (deliveries still held); returns how many. */
  purgeQueue(queueId: number, keepIds: readonly number[]): number;
  listQueues(): QueueRecord[];
  /** Per-queue message counts, read once at start-up. */
  countMessages(): QueueCounts[];
  /**
   * Commits a batch in one transaction, or throws. Once it returns, the batch is read back by
   * every call and survives a crash of the broker (the OS holds it), but it may not be on disk
   * yet: a batch of new messages or revocations is, once {@link Store.whenDurable} says so.
   */
  write(batch: WriteBatch): WriteResult;
  /**
   * Calls `done(null)` once every batch written so far that must survive power loss is on disk,
   * or `done(error)` if it cannot be; from then on `write` throws. Calls it before returning
   * when nothing waits for the disk. Calls come back in the order they were made.
   */
  whenDurable(done: (error: Error | null) => void): void;
  /** Stored (not delayed) messages of one queue and priority with `seq > afterSeq`, in seq order. */
  loadReady(params: { queueId: number; priority: number; afterSeq: number; limit: number }): MessageRecord[];
  /** Makes delayed messages due by `now` ready (each gets a new seq); returns them, oldest due first. */
  promoteDelayed(params: { now: number; limit: number }): MessageRecord[];
  /** Earliest time a delayed message becomes due, or null when none is delayed. */
  nextDelayedAt(): number | null;
  /** Ids of stored messages published after `since`, newest first, at most `limit`. */
  recentMessageIds(params: { since: number; limit: number }): StoredMessageId[];
  /** A task's row, or null when it has none. Expired rows not yet deleted are returned as they are. */
  getResult(taskId: string): ResultRecord | null;
  /** Deletes up to `limit` rows with `expiresAt <= now`; returns how many went. */
  expireResults(params: { now: number; limit: number }): number;
  /** Tasks whose row is REVOKED and not expired at `now`, to rebuild revocations at start-up. */
  revokedTasks(params: { now: number }): Array<{ taskId: string; expiresAt: number }>;
  close(): void;
}

/** An empty batch, for building up writes. */
export function emptyBatch(): WriteBatch {
  return { enqueue: [], remove: [], delivered: [], deliveredThrough: [], move: [], delay: [], results: [] };
}

export function isBatchEmpty(batch: WriteBatch): boolean {
  return (
    batch.enqueue.length === 0 &&
    batch.remove.length === 0 &&
    batch.delivered.length === 0 &&
    batch.deliveredThrough.length === 0 &&
    batch.move.length === 0 &&
    batch.delay.length === 0 &&
    batch.results.length === 0
  );
}
