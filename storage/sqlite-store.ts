/**
 * The SQLite implementation of {@link Store}: better-sqlite3, WAL with `synchronous=NORMAL`, and
 * (durability `full`, the default) the log fdatasync'd one event-loop turn after the commit of a
 * batch of new messages, before it is called durable (wal-sync.ts).
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { MessageHeaders, StoredTaskState } from '../protocol/index.js';
import { BODY_LENGTH_SQL, RUN_BODY_SQL, concatBodies, decodeBodyRef, encodeBodyRef, planBodyRuns, type BodyRunPlan } from './body-runs.js';
import { PACKED_READY_ROW, parseReadyPage } from './ready-page.js';
import { WalSync, type SyncFile } from './wal-sync.js';
import type { MessageRecord, NewMessage, QueueCounts, QueueRecord, ResultRecord, Store, WriteBatch, WriteResult } from './store.js';

/**
 * How hard the store works to reach the disk.
 * - `full` (default): a batch of new messages is durable once the log has been fdatasync'd
 *   after its commit; a confirmed publish survives power loss.
 * - `normal`: the log is fsynced only at checkpoints; survives a broker crash (`kill -9`)
 *   but the last commits may be lost on power loss or an OS crash.
 */
export type Durability = 'full' | 'normal';

export interface SqliteStoreOptions {
  /** Database file, or `:memory:` for tests that need no persistence. */
  path: string;
  /** Default `full`. */
  durability?: Durability;
  /**
   * Flushes the log file to disk (`fdatasync` on the broker's thread unless given). Tests pass
   * one they can hold or fail, to see what waits for the disk.
   */
  syncFile?: SyncFile;
}

const MIGRATIONS_DIR = fileURLToPath(new URL('../../storage/migrations/', import.meta.url));
/** `PRAGMA synchronous` reads NORMAL back as 1. */
const SYNCHRONOUS_NORMAL = 1;

/**
 * A message row as read for dispatch, in `MESSAGE_COLUMNS` order. Read as an array
 * (better-sqlite3's raw mode): building a keyed row object per message, only to copy it into a
 * MessageRecord, cost about 1.5 µs of the ~5 µs a row takes to read (measured, 100k rows).
 * `loadReady`, the read under every consumed message, reads packed rows instead (ready-page.ts).
 */
type MessageRow = [
  id: number,
  queueId: number,
  seq: number,
  priority: number,
  messageId: string | null,
  headers: string | null,
  body: Buffer,
  deliveryCount: number,
  publishedAt: number,
  expiresAt: number | null,
  bodyRef: number | null,
];
const MESSAGE_COLUMNS = 'id, queue_id, seq, priority, message_id, headers, body, delivery_count, published_at, expires_at, body_ref';
const INSERT_MESSAGES =
  'INSERT INTO messages (id, queue_id, seq, state, priority, ready_at, delivery_count, message_id, headers, published_at, body, expires_at, body_ref) VALUES';
const INSERT_MESSAGE_ROW = '(?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)';
const INSERT_MESSAGE_PARAMS = 12;
/**
 * Rows one INSERT statement writes, where a batch has that many left. better-sqlite3's call and
 * SQLite's step and reset, once per statement, were a fifth of a row's insert: rows committed in
 * batches of 1,024 took 0.78 of the time per row 32 at a time (4.7 against 6.1 µs, fsync included;
 * 0.77 at 64, 0.83 at 16), 0.91 in batches of 100.
 */
const INSERT_ROWS_PER_STATEMENT = 32;
/**
 * Most body bytes one `readyBodies` read concatenates. Each body read back is a view of its
 * chunk's blob, so this also bounds what one message held unacked for long keeps alive.
 */
const BODY_CHUNK_BYTES = 32 * 1024;
/** The body of a message kept in a body run: its row's `body` is empty. */
const EMPTY_BODY = Buffer.alloc(0);

interface ResultRow {
  task_id: string;
  state: StoredTaskState;
  payload: Buffer | null;
  updated_at: number;
  expires_at: number;
}

/** better-sqlite3 binds only Buffers as BLOBs; wrap other byte arrays without copying. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function parseHeaders(json: string | null): MessageHeaders | null {
  return json === null ? null : (JSON.parse(json) as MessageHeaders);
}

/** `deliveredThrough`: the lane mark of the row's queue and priority (0 for none). */
function toRecord(row: MessageRow, deliveredThrough: number, body: Uint8Array): MessageRecord {
  const [id, queueId, seq, priority, messageId, headers, , deliveryCount, publishedAt, expiresAt] = row;
  return {
    id,
    queueId,
    seq,
    priority,
    messageId,
    headers: parseHeaders(headers),
    body,
    deliveryCount: deliveryCount === 0 && seq <= deliveredThrough ? 1 : deliveryCount,
    publishedAt,
    expiresAt,
  };
}

/**
 * Calls `run` once per run of consecutive ids in `ids` (any order, duplicates allowed), with the
 * run's first and last id. Acks of one consumer come in such runs, and one range DELETE costs
 * about 1.0 µs per row against 1.65 µs for a DELETE per row (measured, 50k rows).
 */
function forEachIdRun(ids: readonly number[], run: (first: number, last: number) => void): void {
  if (ids.length === 0) return;
  let sorted = ids;
  for (let i = 1; i < ids.length; i++) {
    if (ids[i]! < ids[i - 1]!) {
      sorted = [...ids].sort((x, y) => x - y);
      break;
    }
  }
  let first = sorted[0]!;
  let last = first;
  for (let i = 1; i < sorted.length; i++) {
    const id = sorted[i]!;
    if (id === last || id === last + 1) {
      last = id;
      continue;
    }
    run(first, last);
    first = last = id;
  }
  run(first, last);
}

/**
 * Applies the numbered `.sql` files above the database's `user_version`, each in a transaction.
 * Refuses a database written by a newer Berth: its rows may keep what this one cannot read (bodies
 * in body runs, before 0005), which it would hand out as empty instead of failing.
 */
function migrate(db: Database.Database, path: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const files = readdirSync(MIGRATIONS_DIR)
    .filter((name) => /^\d{4}_.+\.sql$/.test(name))
    .sort();
  const known = Math.max(0, ...files.map((file) => Number(file.slice(0, 4))));
  if (current > known) {
    throw new Error(`${path} has schema version ${current}, newer than this Berth's ${known}: open it with the Berth that wrote it, or a newer one`);
  }
  for (const file of files) {
    const version = Number(file.slice(0, 4));
    if (version <= current) continue;
    const sql = readFileSync(MIGRATIONS_DIR + file, 'utf8');
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version}`);
    })();
  }
}

/**
 * Whether a batch must reach the disk before its replies. New messages must (their confirms
 * promise it), and so must revocations (a revoke must outlast a power cut). A task's own states
 * (STARTED, RETRY, SUCCESS, FAILURE) travel with the ack of its message: lost in a power cut,
 * both go together and the task runs again, which at-least-once allows, as for acks. They
 * survive a broker crash either way: WAL with NORMAL loses nothing to `kill -9`.
 */
function needsFsync(batch: WriteBatch): boolean {
  if (batch.enqueue.length > 0) return true;
  for (const r of batch.results) if (r.state === 'REVOKED' || r.ifAbsent === true) return true;
  return false;
}

/** Opens (creating if needed) a SQLite store and brings its schema up to date. */
export function openSqliteStore(options: SqliteStoreOptions): Store {
  const durability = options.durability ?? 'full';
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  // timeout 0: a database another process holds is refused at once, not after a wait (see below).
  const db = new Database(options.path, { timeout: 0 });
  // One process owns the file. In EXCLUSIVE mode SQLite takes its lock at the first access and
  // keeps it, and WAL needs no shared-memory index: a small commit skips its six fcntl lock calls
  // (an ack-only commit here: 38-48 µs -> 31-39 µs; broker CPU per message at prefetch 1 and 10
  // about 8% lower). A second broker on the same data is refused instead of sharing the file.
  db.pragma('locking_mode = EXCLUSIVE');
  try {
    db.pragma('journal_mode = WAL');
  } catch (err) {
    db.close();
    if ((err as { code?: unknown }).code !== 'SQLITE_BUSY') throw err;
    throw new Error(`${options.path} is in use by another process (another broker on the same data directory?)`, { cause: err });
  }
  // Commits append to the log without an fsync; `walSync` below makes them durable. NORMAL still
  // syncs at checkpoints, so the log never restarts over frames the database file lacks on disk.
  db.pragma('synchronous = NORMAL');
  const level = db.pragma('synchronous', { simple: true });
  if (level !== SYNCHRONOUS_NORMAL) {
    db.close();
    throw new Error(`SQLite refused synchronous=NORMAL (reads back ${String(level)})`);
  }
  try {
    migrate(db, options.path);
  } catch (err) {
    db.close();
    throw err;
  }

  // Every LIMIT is written `LIMIT +?`, never with a bare parameter: SQLite 3.53's planner reads a
  // bare LIMIT parameter, so binding it again (better-sqlite3 binds every parameter on every call)
  // expires the statement, and its next step prepares it anew. That cost 9-11 µs a call on a
  // one-row read (1.8 µs with `+?`), and 51 µs (6 µs) on loadReady's packed read. The planner does
  // not look into the expression `+?`.
  const stmt = {
    insertQueue: db.prepare('INSERT INTO queues (name, options, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING'),
    queueByName: db.prepare('SELECT id, name, options, created_at FROM queues WHERE name = ?'),
    listQueues: db.prepare('SELECT id, name, options, created_at FROM queues ORDER BY id'),
    deleteQueue: db.prepare('DELETE FROM queues WHERE id = ?'),
    deleteQueueMessages: db.prepare('DELETE FROM messages WHERE queue_id = ?'),
    deleteQueueMarks: db.prepare('DELETE FROM delivery_marks WHERE queue_id = ?'),
    marks: db.prepare('SELECT queue_id, priority, delivered_seq FROM delivery_marks'),
    raiseMark: db.prepare(
      `INSERT INTO delivery_marks (queue_id, priority, delivered_seq) VALUES (?, ?, ?)
       ON CONFLICT (queue_id, priority) DO UPDATE SET delivered_seq = max(delivered_seq, excluded.delivered_seq)`,
    ),
    purge: db.prepare('DELETE FROM messages WHERE queue_id = ? AND id NOT IN (SELECT value FROM json_each(?))'),
    counts: db.prepare(
      `SELECT queue_id, SUM(state = 0) AS stored, SUM(state = 2) AS delayed, SUM(${BODY_LENGTH_SQL}) AS bytes
       FROM messages GROUP BY queue_id`,
    ),
    // A run can reach above every stored id (its last messages acked, an earlier one still
    // stored): new ids start above it too, so that no run covers a message written later.
    maxId: db.prepare('SELECT MAX(id) AS id, MAX(seq) AS seq, (SELECT MAX(last_id) FROM body_runs) AS run_id FROM messages'),
    insertRun: db.prepare('INSERT INTO body_runs (id, last_id, data) VALUES (?, ?, ?)'),
    runBytes: db.prepare('SELECT substr(data, ? + 1, ?) FROM body_runs WHERE id = ?').pluck(true),
    // The runs that may cover ids first..last (from the last run starting at or before first),
    // dropped where no message in their range keeps its body there. Runs do not overlap (ids are
    // never reused while a run covers them), so the run covering `first` is the one starting
    // nearest below it. A message of the range with a body of its own (taken out by a move or a
    // delay) does not keep the run.
    dropDeadRuns: db.prepare(
      `DELETE FROM body_runs WHERE id BETWEEN ifnull((SELECT MAX(id) FROM body_runs WHERE id <= ?), ?) AND ?
         AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.id BETWEEN body_runs.id AND body_runs.last_id AND body_ref IS NOT NULL)`,
    ),
    dropAllDeadRuns: db.prepare(
      `DELETE FROM body_runs WHERE NOT EXISTS
         (SELECT 1 FROM messages WHERE messages.id BETWEEN body_runs.id AND body_runs.last_id AND body_ref IS NOT NULL)`,
    ),
    // A message that leaves its lane for long (dead-lettered, moved, delayed by a nack) takes its
    // body out of its run, so as not to keep the run's other bodies on disk for as long.
    takeBodyOutOfRun: db.prepare(`UPDATE messages SET body = ${RUN_BODY_SQL}, body_ref = NULL WHERE id = ? AND body_ref IS NOT NULL`),
    insert: db.prepare(`${INSERT_MESSAGES} ${INSERT_MESSAGE_ROW}`),
    insertMany: db.prepare(`${INSERT_MESSAGES} ${Array<string>(INSERT_ROWS_PER_STATEMENT).fill(INSERT_MESSAGE_ROW).join(', ')}`),
    delay: db.prepare('UPDATE messages SET state = 2, ready_at = ?, delivery_count = ? WHERE id = ?'),
    dueDelayed: db
      .prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE state = 2 AND ready_at <= ? ORDER BY ready_at LIMIT +?`)
      .raw(true),
    promote: db.prepare('UPDATE messages SET state = 0, seq = ? WHERE id = ?'),
    nextDelayed: db.prepare('SELECT MIN(ready_at) AS at FROM messages WHERE state = 2'),
    recentIds: db.prepare(
      `SELECT queue_id, message_id, published_at FROM messages
       WHERE message_id IS NOT NULL AND published_at > ? ORDER BY id DESC LIMIT +?`,
    ),
    // One statement for a single id too: `BETWEEN x AND x` is a rowid seek, as fast as `id = x` (measured).
    removeRange: db.prepare('DELETE FROM messages WHERE id BETWEEN ? AND ?'),
    delivered: db.prepare('UPDATE messages SET delivery_count = ? WHERE id = ?'),
    move: db.prepare('UPDATE messages SET queue_id = ?, seq = ?, state = 0, delivery_count = 0, expires_at = NULL, headers = ? WHERE id = ?'),
    // group_concat follows the subquery's order, as in readyBodies below; `length(body)` there
    // reads the length from the row's header, not the body.
    loadReady: db
      .prepare(
        `SELECT CAST(group_concat(${PACKED_READY_ROW}, '') AS BLOB) FROM
           (SELECT id, seq, delivery_count, published_at, expires_at, ${BODY_LENGTH_SQL} AS body_length, body_ref, message_id, headers
            FROM messages WHERE queue_id = ? AND state = 0 AND priority = ? AND seq > ? ORDER BY seq LIMIT +?)`,
      )
      .pluck(true),
    // The bodies of a run of ready rows, concatenated in seq order into one blob: group_concat is
    // binary-safe (it appends each value's bytes by their length) and the CAST keeps the bytes. The
    // LIMIT keeps the subquery a co-routine that yields in its ORDER BY order, which the aggregate
    // follows; `loadReady` checks that the lengths add up.
    readyBodies: db
      .prepare(
        `SELECT CAST(group_concat(body, x'') AS BLOB) FROM
           (SELECT body FROM messages WHERE queue_id = ? AND state = 0 AND priority = ? AND seq BETWEEN ? AND ? ORDER BY seq LIMIT +?)`,
      )
      .pluck(true),
    // An expired row counts as absent: ifAbsent and the terminal rule only look at live rows.
    insertResult: db.prepare(
      `INSERT INTO task_results (task_id, state, payload, updated_at, expires_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (task_id) DO UPDATE SET
         state = excluded.state, payload = excluded.payload, updated_at = excluded.updated_at, expires_at = excluded.expires_at
       WHERE task_results.expires_at <= excluded.updated_at`,
    ),
    upsertResult: db.prepare(
      `INSERT INTO task_results (task_id, state, payload, updated_at, expires_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (task_id) DO UPDATE SET
         state = excluded.state, payload = excluded.payload, updated_at = excluded.updated_at, expires_at = excluded.expires_at
       WHERE task_results.state NOT IN ('SUCCESS', 'FAILURE', 'REVOKED') OR task_results.expires_at <= excluded.updated_at`,
    ),
    getResult: db.prepare('SELECT task_id, state, payload, updated_at, expires_at FROM task_results WHERE task_id = ?'),
    expireResults: db.prepare(
      'DELETE FROM task_results WHERE task_id IN (SELECT task_id FROM task_results WHERE expires_at <= ? LIMIT +?)',
    ),
    revokedTasks: db.prepare("SELECT task_id, expires_at FROM task_results WHERE state = 'REVOKED' AND expires_at > ?"),
  };

  // Lane marks by `${queueId}/${priority}`, read once and kept in step with each commit.
  const marks = new Map<string, number>();
  const markKey = (queueId: number, priority: number): string => `${queueId}/${priority}`;
  let maxMark = 0;
  for (const m of stmt.marks.all() as Array<{ queue_id: number; priority: number; delivered_seq: number }>) {
    marks.set(markKey(m.queue_id, m.priority), m.delivered_seq);
    maxMark = Math.max(maxMark, m.delivered_seq);
  }

  const max = stmt.maxId.get() as { id: number | null; seq: number | null; run_id: number | null };
  let nextId = Math.max(max.id ?? 0, max.run_id ?? 0) + 1;
  // Above every mark too: once a lane's messages are all acked, a reused seq would read as delivered.
  let nextSeq = Math.max(max.seq ?? 0, max.id ?? 0, maxMark) + 1;

  const toQueue = (row: { id: number; name: string; options: string; created_at: number }): QueueRecord => ({
    id: row.id,
    name: row.name,
    options: JSON.parse(row.options) as Record<string, unknown>,
    createdAt: row.created_at,
  });

  // Only new messages (and revocations) need their commit on disk before the reply: a batch
  // of acks, delivery counts and moves waits for no sync, since losing it in a power cut means
  // redelivery, which at-least-once allows, and WAL with NORMAL never corrupts. The next sync
  // covers it with every frame before. An in-memory database has nothing to sync.
  const walSync = durability === 'full' && options.path !== ':memory:' ? new WalSync(`${options.path}-wal`, options.syncFile) : null;

  /** The parameters of one `insertMany`, reused. */
  const insertManyArgs = new Array<unknown>(INSERT_ROWS_PER_STATEMENT * INSERT_MESSAGE_PARAMS).fill(null);
  /**
   * `body_ref` of new message `index` of `enqueue`, given id `id`, or null when its body stays in
   * its row; `runIds` are the ids of the plan's runs.
   */
  const bodyRefOf = (enqueue: readonly NewMessage[], index: number, id: number, plan: BodyRunPlan, runIds: number[]): number | null => {
    const run = plan.runs.length === 0 ? -1 : plan.runOf[index]!;
    return run < 0 ? null : encodeBodyRef(id, runIds[run]!, plan.offsets[index]!, enqueue[index]!.body.byteLength);
  };
  /**
   * Gives new message `index` of `enqueue` its id and seq and writes its parameters as row `row`
   * of `insertManyArgs`.
   */
  const bindNewMessage = (row: number, enqueue: readonly NewMessage[], index: number, plan: BodyRunPlan, runIds: number[]): { id: number; seq: number } => {
    const m = enqueue[index]!;
    const args = insertManyArgs;
    const id = nextId++;
    const seq = nextSeq++;
    const at = row * INSERT_MESSAGE_PARAMS;
    args[at] = id;
    args[at + 1] = m.queueId;
    args[at + 2] = seq;
    args[at + 3] = m.readyAt > 0 ? 2 : 0;
    args[at + 4] = m.priority;
    args[at + 5] = m.readyAt;
    args[at + 6] = m.messageId;
    args[at + 7] = m.headers === null ? null : JSON.stringify(m.headers);
    args[at + 8] = m.publishedAt;
    const ref = bodyRefOf(enqueue, index, id, plan, runIds);
    args[at + 9] = ref === null ? asBuffer(m.body) : EMPTY_BODY;
    args[at + 10] = m.expiresAt;
    args[at + 11] = ref;
    return { id, seq };
  };

  /** `length` bytes at `offset` of body run `run`; throws when the run does not hold them. */
  const runBytes = (run: number, offset: number, length: number): Buffer => {
    const bytes = stmt.runBytes.get(offset, length, run) as Buffer | null | undefined;
    if (bytes === undefined || bytes === null || bytes.length !== length) {
      throw new Error(`body run ${run} read back ${bytes?.length ?? 'no'} bytes at offset ${offset}, not ${length}`);
    }
    return bytes;
  };
  /**
   * Sets the bodies of `records` kept in body runs (those with a run in `bodyRuns`): one read per
   * run of the span its records' bodies cover, each body a view of it. Rows read in seq order
   * mostly come in the order of their run, so consecutive records of one run share a read.
   */
  const readRunBodies = (
    records: MessageRecord[],
    bodyLengths: readonly number[],
    bodyRuns: ReadonlyArray<number | null>,
    bodyOffsets: ReadonlyArray<number | null>,
  ): void => {
    for (let first = 0; first < records.length; ) {
      const run = bodyRuns[first];
      if (run === null || run === undefined) {
        first++;
        continue;
      }
      let end = first;
      let from = Infinity;
      let to = 0;
      while (end < records.length && bodyRuns[end] === run) {
        from = Math.min(from, bodyOffsets[end]!);
        to = Math.max(to, bodyOffsets[end]! + bodyLengths[end]!);
        end++;
      }
      const span = runBytes(run, from, to - from);
      for (let i = first; i < end; i++) records[i]!.body = span.subarray(bodyOffsets[i]! - from, bodyOffsets[i]! - from + bodyLengths[i]!);
      first = end;
    }
  };

  /** Gives message `id` its body back in its own row if a run holds it, and drops the run if that was its last. */
  const takeBodyOutOfRun = (id: number): void => {
    if (stmt.takeBodyOutOfRun.run(id).changes === 1) stmt.dropDeadRuns.run(id, id, id);
  };

  const writeTx = db.transaction((batch: WriteBatch): WriteResult => {
    const enqueued: WriteResult['enqueued'] = [];
    const moved: WriteResult['moved'] = [];
    const { enqueue } = batch;
    // Messages get ids nextId, nextId + 1, ... in order, so a run's ids are known before its rows.
    const plan = planBodyRuns(enqueue);
    const runIds = plan.runs.map((run) => {
      const id = nextId + run.first;
      stmt.insertRun.run(id, nextId + run.last, concatBodies(enqueue, run.first, run.last, run.bytes));
      return id;
    });
    let i = 0;
    for (; i + INSERT_ROWS_PER_STATEMENT <= enqueue.length; i += INSERT_ROWS_PER_STATEMENT) {
      for (let row = 0; row < INSERT_ROWS_PER_STATEMENT; row++) enqueued.push(bindNewMessage(row, enqueue, i + row, plan, runIds));
      // Spread, not the array itself: better-sqlite3 reads an array's elements one V8 API call
      // at a time (Object::Get, ~425 instructions each), and with 12 parameters a row that was
      // 13% of the broker's instructions per published message (callgrind, steady state of 20,000
      // publishes, 1000 in flight: 39.4k → 34.8k instructions a message with the spread).
      stmt.insertMany.run(...insertManyArgs);
    }
    // The rest one by one, with the parameters of bindNewMessage in its order, as arguments too.
    for (; i < enqueue.length; i++) {
      const m = enqueue[i]!;
      const id = nextId++;
      const seq = nextSeq++;
      const headers = m.headers === null ? null : JSON.stringify(m.headers);
      const ref = bodyRefOf(enqueue, i, id, plan, runIds);
      const body = ref === null ? asBuffer(m.body) : EMPTY_BODY;
      stmt.insert.run(id, m.queueId, seq, m.readyAt > 0 ? 2 : 0, m.priority, m.readyAt, m.messageId, headers, m.publishedAt, body, m.expiresAt, ref);
      enqueued.push({ id, seq });
    }
    // The arguments hold bodies of up to 1 MiB each: let them go with the batch.
    if (enqueue.length >= INSERT_ROWS_PER_STATEMENT) insertManyArgs.fill(null);
    for (const d of batch.delivered) stmt.delivered.run(d.deliveryCount, d.id);
    for (const m of batch.deliveredThrough) stmt.raiseMark.run(m.queueId, m.priority, m.seq);
    for (const m of batch.move) {
      const seq = nextSeq++;
      takeBodyOutOfRun(m.id);
      stmt.move.run(m.toQueueId, seq, m.headers === null ? null : JSON.stringify(m.headers), m.id);
      moved.push({ id: m.id, seq });
    }
    for (const d of batch.delay) {
      takeBodyOutOfRun(d.id);
      stmt.delay.run(d.readyAt, d.deliveryCount, d.id);
    }
    forEachIdRun(batch.remove, (first, last) => {
      stmt.removeRange.run(first, last);
      stmt.dropDeadRuns.run(first, first, last);
    });
    const results: boolean[] = [];
    for (const r of batch.results) {
      const statement = r.ifAbsent === true ? stmt.insertResult : stmt.upsertResult;
      const payload = r.payload === null ? null : asBuffer(r.payload);
      results.push(statement.run(r.taskId, r.state, payload, r.updatedAt, r.expiresAt).changes === 1);
    }
    return { enqueued, moved, results };
  });

  return {
    declareQueue(name, options) {
      const info = stmt.insertQueue.run(name, JSON.stringify(options), Date.now());
      const row = stmt.queueByName.get(name) as Parameters<typeof toQueue>[0];
      return { queue: toQueue(row), created: info.changes === 1 };
    },
    deleteQueue(queueId) {
      const changes = db.transaction(() => {
        const { changes } = stmt.deleteQueueMessages.run(queueId);
        stmt.dropAllDeadRuns.run();
        stmt.deleteQueueMarks.run(queueId);
        stmt.deleteQueue.run(queueId);
        return changes;
      })();
      // A queue declared later may get the same id; it starts with no marks.
      for (const key of marks.keys()) if (key.startsWith(`${queueId}/`)) marks.delete(key);
      return changes;
    },
    purgeQueue(queueId, keepIds) {
      return db.transaction(() => {
        const { changes } = stmt.purge.run(queueId, JSON.stringify(keepIds));
        stmt.dropAllDeadRuns.run();
        return changes;
      })();
    },
    listQueues() {
      return (stmt.listQueues.all() as Array<Parameters<typeof toQueue>[0]>).map(toQueue);
    },
    countMessages(): QueueCounts[] {
      return (stmt.counts.all() as Array<{ queue_id: number; stored: number; delayed: number; bytes: number }>).map((r) => ({
        queueId: r.queue_id,
        stored: r.stored,
        delayed: r.delayed,
        bytes: r.bytes,
      }));
    },
    write(batch) {
      // After a failed sync nothing written can be promised durable: refuse, as a failed commit does.
      if (walSync?.failed) throw walSync.failed;
      const saved = { nextId, nextSeq };
      try {
        const result = writeTx(batch);
        if (walSync !== null && needsFsync(batch)) walSync.committed();
        for (const m of batch.deliveredThrough) {
          const key = markKey(m.queueId, m.priority);
          marks.set(key, Math.max(marks.get(key) ?? 0, m.seq));
        }
        return result;
      } catch (err) {
        // The transaction rolled back: hand out the same ids again next time.
        ({ nextId, nextSeq } = saved);
        throw err;
      }
    },
    // Reads the rows without their bodies, then the bodies kept in rows a chunk of rows at a time,
    // each chunk one blob with every body in it a view of it, then those kept in body runs, one
    // read per run. better-sqlite3 copies each BLOB it returns into a Buffer of its own, an
    // allocation that was about half of the 1.7–1.9 µs a 256-byte row took to read; read in chunks
    // a row takes 1.3–1.5 µs (store microbenchmark, pages of 512, two runs).
    loadReady({ queueId, priority, afterSeq, limit }) {
      const packed = stmt.loadReady.get(queueId, priority, afterSeq, limit) as Buffer | null;
      if (packed === null) return [];
      const { records, bodyLengths, bodyRuns, bodyOffsets } = parseReadyPage(packed, queueId, priority, marks.get(markKey(queueId, priority)) ?? 0);
      for (let first = 0; first < records.length; ) {
        // Rows whose body is in a run read back an empty `body` here: they count for the LIMIT only.
        let end = first;
        let bytes = 0;
        while (end < records.length && (bodyRuns[end] !== null || bytes + bodyLengths[end]! <= BODY_CHUNK_BYTES || end === first)) {
          if (bodyRuns[end] === null) bytes += bodyLengths[end]!;
          end++;
        }
        // No body kept in these rows has a byte (or none is kept in them): nothing to read.
        if (bytes === 0) {
          first = end;
          continue;
        }
        const firstSeq = records[first]!.seq;
        const lastSeq = records[end - 1]!.seq;
        const blob = stmt.readyBodies.get(queueId, priority, firstSeq, lastSeq, end - first) as Buffer | null;
        if (blob === null || blob.length !== bytes) {
          throw new Error(`the bodies of queue ${queueId} seq ${firstSeq}..${lastSeq} read back ${blob?.length ?? 'no'} bytes, not ${bytes}`);
        }
        for (let i = first, offset = 0; i < end; i++) {
          if (bodyRuns[i] !== null) continue;
          const length = bodyLengths[i]!;
          records[i]!.body = blob.subarray(offset, offset + length);
          offset += length;
        }
        first = end;
      }
      readRunBodies(records, bodyLengths, bodyRuns, bodyOffsets);
      return records;
    },
    promoteDelayed({ now, limit }) {
      return db.transaction(() => {
        const rows = stmt.dueDelayed.all(now, limit) as MessageRow[];
        return rows.map((row) => {
          // A new seq is above every mark: the row's own count is the whole truth.
          const ref = row[10] === null ? null : decodeBodyRef(row[0], row[10]);
          const record = toRecord(row, 0, ref === null ? row[6] : runBytes(ref.runId, ref.offset, ref.length));
          record.seq = nextSeq++;
          stmt.promote.run(record.seq, record.id);
          return record;
        });
      })();
    },
    nextDelayedAt() {
      return (stmt.nextDelayed.get() as { at: number | null }).at;
    },
    recentMessageIds({ since, limit }) {
      return (stmt.recentIds.all(since, limit) as Array<{ queue_id: number; message_id: string; published_at: number }>).map((r) => ({
        queueId: r.queue_id,
        messageId: r.message_id,
        publishedAt: r.published_at,
      }));
    },
    getResult(taskId) {
      const row = stmt.getResult.get(taskId) as ResultRow | undefined;
      if (row === undefined) return null;
      const record: ResultRecord = {
        taskId: row.task_id,
        state: row.state,
        payload: row.payload,
        updatedAt: row.updated_at,
        expiresAt: row.expires_at,
      };
      return record;
    },
    expireResults({ now, limit }) {
      return stmt.expireResults.run(now, limit).changes;
    },
    revokedTasks({ now }) {
      return (stmt.revokedTasks.all(now) as Array<{ task_id: string; expires_at: number }>).map((r) => ({
        taskId: r.task_id,
        expiresAt: r.expires_at,
      }));
    },
    whenDurable(done) {
      if (walSync === null) done(null);
      else walSync.whenDurable(done);
    },
    close() {
      if (!db.open) return;
      // SQLite's last checkpoint syncs the log and the database: what waited for a sync is durable.
      db.close();
      walSync?.closed();
    },
  };
}
