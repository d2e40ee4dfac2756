/**
 * Body runs (0005_body_runs.sql): the bodies of a commit's new messages concatenated into one blob,
 * instead of each in its message's row. Rows of small bodies pack ~13 messages to a page, and
 * deleting them (an ack) dirties every page, which the WAL then writes twice (log and checkpoint)
 * though what it holds is garbage; a run's blob lives in overflow pages, which SQLite frees without
 * writing them when the run's row goes. Consuming 100,000 stored 256-byte messages in commits of
 * 1,000 wrote 8,341 WAL frames with the bodies in their rows and 2,207 with runs, and its deletes
 * and commits took 3.6 against 1.6 µs a message (storage microbenchmark, checkpoints included).
 *
 * Where a message's body is, is one integer column, `body_ref` (NULL: in the row's own `body`):
 * `(id - runId) * 2^32 + offset * 2^16 + length`. One column, not three: each column bound per row
 * cost about 0.1 µs of a 256-byte row's insert.
 */
import type { NewMessage } from './store.js';

/** Most body bytes a run holds: the store reads bodies back in chunks of this size too. */
export const BODY_RUN_MAX_BYTES = 32 * 1024;
/**
 * Runs below this stay in their rows. A run's row keeps up to a page's worth of its blob in its
 * b-tree leaf and only the rest in overflow pages, which are what SQLite frees without writing;
 * at 8 KiB half the blob or more is in overflow pages.
 */
export const BODY_RUN_MIN_BYTES = 8 * 1024;
/** Most messages in one run, so that `id - runId` fits its bits of `body_ref`. */
const BODY_RUN_MAX_MESSAGES = 4096;

const TWO_16 = 2 ** 16;
const TWO_32 = 2 ** 32;

/**
 * Where the new messages of one commit keep their bodies. `runOf[i]` is the index in `runs` of
 * the run holding message i's body, or -1 where the body stays in its row; `offsets[i]` is its
 * offset in that run. A run is a span of two or more consecutive messages (so of consecutive ids)
 * whose bodies add up to between {@link BODY_RUN_MIN_BYTES} and {@link BODY_RUN_MAX_BYTES}; a body
 * as large as a run already sits in overflow pages of its own row and stays there, and so do the
 * bodies of one-at-a-time publishes. A run's messages share their queue, priority and whether they
 * are delayed, so that they leave about together: a run stays on disk while any of them is stored
 * in it, and a slow queue's messages must not keep a fast one's bodies.
 */
export interface BodyRunPlan {
  runOf: Int32Array;
  offsets: Int32Array;
  runs: Array<{ first: number; last: number; bytes: number }>;
}

const NO_RUNS: BodyRunPlan = { runOf: new Int32Array(0), offsets: new Int32Array(0), runs: [] };

export function planBodyRuns(enqueue: readonly NewMessage[]): BodyRunPlan {
  if (enqueue.length < 2) return NO_RUNS;
  const runOf = new Int32Array(enqueue.length).fill(-1);
  const offsets = new Int32Array(enqueue.length);
  const runs: BodyRunPlan['runs'] = [];
  let first = 0;
  let bytes = 0;
  const close = (end: number): void => {
    if (end - first >= 2 && bytes >= BODY_RUN_MIN_BYTES) {
      runOf.fill(runs.length, first, end);
      runs.push({ first, last: end - 1, bytes });
    }
    first = end;
    bytes = 0;
  };
  for (let i = 0; i < enqueue.length; i++) {
    const m = enqueue[i]!;
    const length = m.body.byteLength;
    if (i > first) {
      const head = enqueue[first]!;
      const sameLane = m.queueId === head.queueId && m.priority === head.priority && m.readyAt > 0 === head.readyAt > 0;
      if (!sameLane || bytes + length > BODY_RUN_MAX_BYTES || i - first === BODY_RUN_MAX_MESSAGES) close(i);
    }
    offsets[i] = bytes;
    bytes += length;
  }
  close(enqueue.length);
  return runs.length === 0 ? NO_RUNS : { runOf, offsets, runs };
}

/** The bodies of messages `first..last` of `enqueue`, concatenated (`bytes` long). */
export function concatBodies(enqueue: readonly NewMessage[], first: number, last: number, bytes: number): Buffer {
  const parts: Uint8Array[] = [];
  for (let i = first; i <= last; i++) parts.push(enqueue[i]!.body);
  return Buffer.concat(parts, bytes);
}

/** `body_ref` of message `id` whose body is `length` bytes at `offset` of run `runId`. */
export function encodeBodyRef(id: number, runId: number, offset: number, length: number): number {
  return (id - runId) * TWO_32 + offset * TWO_16 + length;
}

/** Where a `body_ref` of message `id` points. */
export function decodeBodyRef(id: number, ref: number): { runId: number; offset: number; length: number } {
  return { runId: id - Math.floor(ref / TWO_32), offset: Math.floor(ref / TWO_16) % TWO_16, length: ref % TWO_16 };
}

/**
 * SQL for the body of a row of `messages` kept in a run, read from the run: the value its own
 * `body` takes when it leaves the run. It decodes `body_ref` as {@link decodeBodyRef} does, from the
 * same constants (SQLite's `/` on integers truncates, as `Math.floor` does for these positive values).
 */
export const RUN_BODY_SQL = `(SELECT substr(data, messages.body_ref / ${TWO_16} % ${TWO_16} + 1, messages.body_ref % ${TWO_16}) FROM body_runs
  WHERE body_runs.id = messages.id - messages.body_ref / ${TWO_32})`;

/** SQL for a body's length from `body_ref` and `body` (`length(body)` reads it from the row's header). */
export const BODY_LENGTH_SQL = `ifnull(body_ref % ${TWO_16}, length(body))`;
