import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { emptyBatch, openSqliteStore } from '../../storage/index.js';
import type { SqliteStoreOptions, Store } from '../../storage/index.js';
import { newMessage as message, resultWrite, storeConformance, T0 } from './conformance.js';


/** A fresh directory, and `track(store)`: after the test, tracked stores close, then the directory goes. */
function tempDir(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'berth-store-'));
  const opened: Store[] = [];
  t.after(() => {
    for (const store of opened) store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, track: (store: Store): Store => (opened.push(store), store) };
}

storeConformance('sqlite :memory:', (t) => {
  const store = openSqliteStore({ path: ':memory:' });
  t.after(() => store.close());
  return store;
});

storeConformance('sqlite file', (t) => {
  const { dir, track } = tempDir(t);
  return track(openSqliteStore({ path: join(dir, 'berth.db') }));
});


describe('sqlite store on disk', () => {
  function setup(t: TestContext, options: Partial<SqliteStoreOptions> = {}) {
    const { dir, track } = tempDir(t);
    const path = join(dir, 'berth.db');
    const open = (): Store => track(openSqliteStore({ path, ...options }));
    return { path, open };
  }

  it('keeps queues, messages, delivery counts, delayed messages and message ids across close and reopen', (t) => {
    const { open } = setup(t);
    const first = open();
    const q = first.declareQueue('jobs', { maxLength: 5 }).queue;
    const dlq = first.declareQueue('jobs.dead', {}).queue;
    const written = first.write({
      ...emptyBatch(),
      enqueue: [
        message(q.id, { messageId: 'a', headers: { tenant: 't1' }, priority: 2, expiresAt: T0 + 60_000 }),
        message(q.id, { messageId: 'b' }),
        message(q.id, { messageId: 'later', readyAt: T0 + 5000 }),
        message(q.id, { messageId: 'gone' }),
      ],
    });
    const [a, b, , gone] = written.enqueued.map((e) => e.id);
    first.write({ ...emptyBatch(), delivered: [{ id: a!, deliveryCount: 3 }], move: [{ id: b!, toQueueId: dlq.id, headers: { why: 'x' } }], remove: [gone!] });
    const readyA = first.loadReady({ queueId: q.id, priority: 2, afterSeq: 0, limit: 10 });
    const readyDlq = first.loadReady({ queueId: dlq.id, priority: 0, afterSeq: 0, limit: 10 });
    const counts = first.countMessages();
    first.close();

    const second = open();
    assert.equal(second.declareQueue('jobs', {}).created, false);
    assert.deepEqual(second.listQueues(), [q, dlq]);
    assert.deepEqual(second.loadReady({ queueId: q.id, priority: 2, afterSeq: 0, limit: 10 }), readyA);
    assert.equal(readyA[0]?.deliveryCount, 3);
    assert.deepEqual(second.loadReady({ queueId: dlq.id, priority: 0, afterSeq: 0, limit: 10 }), readyDlq);
    assert.deepEqual(second.countMessages(), counts);
    assert.equal(second.nextDelayedAt(), T0 + 5000);
    assert.deepEqual(second.recentMessageIds({ since: 0, limit: 10 }).map((d) => d.messageId), ['later', 'b', 'a']);
    assert.deepEqual(second.promoteDelayed({ now: T0 + 5000, limit: 10 }).map((m) => m.messageId), ['later']);
  });

  it('after reopen, hands out ids and seqs larger than any stored, including seqs renewed by promotion and move', (t) => {
    const { open } = setup(t);
    const first = open();
    const q = first.declareQueue('q', {}).queue;
    const { enqueued } = first.write({ ...emptyBatch(), enqueue: [message(q.id), message(q.id, { readyAt: T0 }), message(q.id)] });
    const promoted = first.promoteDelayed({ now: T0, limit: 10 });
    const { moved } = first.write({ ...emptyBatch(), move: [{ id: enqueued[0]!.id, toQueueId: q.id, headers: null }] });
    const maxId = Math.max(...enqueued.map((e) => e.id));
    const maxSeq = Math.max(...enqueued.map((e) => e.seq), ...promoted.map((m) => m.seq), ...moved.map((m) => m.seq));
    first.close();

    const second = open();
    const after = second.write({ ...emptyBatch(), enqueue: [message(q.id)] }).enqueued[0]!;
    assert.ok(after.id > maxId, `id ${after.id} must exceed ${maxId}`);
    assert.ok(after.seq > maxSeq, `seq ${after.seq} must exceed ${maxSeq}`);
    const order = second.loadReady({ queueId: q.id, priority: 0, afterSeq: 0, limit: 10 }).map((m) => m.id);
    assert.equal(order.at(-1), after.id, 'a message enqueued after reopen dispatches last');
  });

  it('keeps lane marks across reopen, and after every marked message is gone hands out seqs above the mark', (t) => {
    const { open } = setup(t);
    const first = open();
    const q = first.declareQueue('q', {}).queue;
    const { enqueued } = first.write({ ...emptyBatch(), enqueue: [message(q.id), message(q.id), message(q.id)] });
    const [x, y, z] = enqueued;
    first.write({ ...emptyBatch(), deliveredThrough: [{ queueId: q.id, priority: 0, seq: y!.seq }] });
    first.close();

    const second = open();
    assert.deepEqual(second.loadReady({ queueId: q.id, priority: 0, afterSeq: 0, limit: 10 }).map((m) => [m.id, m.deliveryCount]), [
      [x!.id, 1],
      [y!.id, 1],
      [z!.id, 0],
    ]);
    second.write({ ...emptyBatch(), deliveredThrough: [{ queueId: q.id, priority: 0, seq: z!.seq }], remove: [x!.id, y!.id, z!.id] });
    second.close();

    // The table is empty now; without the marks, the next seq would start over below them.
    const third = open();
    third.write({ ...emptyBatch(), enqueue: [message(q.id)] });
    const [fresh] = third.loadReady({ queueId: q.id, priority: 0, afterSeq: 0, limit: 10 });
    assert.ok(fresh!.seq > z!.seq, `seq ${fresh!.seq} must exceed the mark ${z!.seq}`);
    assert.equal(fresh!.deliveryCount, 0);
    // Deleting the queue deletes its marks on disk: the same id, declared again, starts unmarked.
    third.write({ ...emptyBatch(), deliveredThrough: [{ queueId: q.id, priority: 0, seq: 1_000_000 }] });
    third.deleteQueue(q.id);
    third.close();

    const fourth = open();
    const again = fourth.declareQueue('q', {}).queue;
    assert.equal(again.id, q.id, 'SQLite hands the id out again');
    fourth.write({ ...emptyBatch(), enqueue: [message(again.id)] });
    assert.deepEqual(fourth.loadReady({ queueId: again.id, priority: 0, afterSeq: 0, limit: 10 }).map((m) => m.deliveryCount), [0]);
  });

  it('opens with durability full (the default) and with normal, and both persist a committed batch', (t) => {
    for (const durability of [undefined, 'full', 'normal'] as const) {
      const { open } = setup(t, durability === undefined ? {} : { durability });
      const first = open();
      const q = first.declareQueue('q', {}).queue;
      first.write({ ...emptyBatch(), enqueue: [message(q.id)] });
      first.close();
      const second = open();
      assert.equal(second.loadReady({ queueId: q.id, priority: 0, afterSeq: 0, limit: 10 }).length, 1, `durability ${String(durability)}`);
    }
  });

  it('keeps task results and revocations across close and reopen', (t) => {
    const { open } = setup(t);
    const first = open();
    first.write({
      ...emptyBatch(),
      results: [
        resultWrite('done', { state: 'SUCCESS', payload: new TextEncoder().encode('5') }),
        resultWrite('gone', { state: 'REVOKED', expiresAt: T0 + 500 }),
      ],
    });
    first.close();
    const second = open();
    assert.equal(new TextDecoder().decode(second.getResult('done')?.payload ?? new Uint8Array()), '5');
    assert.deepEqual(second.revokedTasks({ now: T0 }), [{ taskId: 'gone', expiresAt: T0 + 500 }]);
    assert.deepEqual(second.write({ ...emptyBatch(), results: [resultWrite('done', { state: 'FAILURE' })] }).results, [false], 'still terminal after reopen');
  });

  it('runs in WAL mode: a write-ahead log sits next to the open database', (t) => {
    const { open, path } = setup(t);
    const store = open();
    const q = store.declareQueue('q', {}).queue;
    store.write({ ...emptyBatch(), enqueue: [message(q.id)] });
    assert.equal(existsSync(`${path}-wal`), true);
  });

  it('creates the parent directories of the database file', (t) => {
    const { dir, track } = tempDir(t);
    const path = join(dir, 'a', 'b', 'berth.db');
    track(openSqliteStore({ path }));
    assert.equal(existsSync(path), true);
  });

  it('refuses a second opener of the same file at once, with the path in the message, until the first closes', (t) => {
    const { open, path } = setup(t);
    const first = open();
    const q = first.declareQueue('held', {}).queue;
    first.write({ ...emptyBatch(), enqueue: [message(q.id, { messageId: 'kept' })] });
    const started = Date.now();
    assert.throws(() => open(), (err: Error) => {
      assert.equal(err.message, `${path} is in use by another process (another broker on the same data directory?)`);
      assert.equal((err.cause as { code?: string }).code, 'SQLITE_BUSY');
      return true;
    });
    assert.ok(Date.now() - started < 1000, 'the refusal does not wait for a busy timeout');
    // The refused opener changed nothing: the holder still reads and writes.
    first.write({ ...emptyBatch(), enqueue: [message(q.id, { messageId: 'after' })] });
    first.close();
    const second = open();
    const ids = second.loadReady({ queueId: q.id, priority: 0, afterSeq: 0, limit: 10 }).map((m) => m.messageId);
    assert.deepEqual(ids, ['kept', 'after']);
  });

  it('refuses a database with a newer schema than it knows, saying which, and leaves it unchanged', (t) => {
    const { open, path } = setup(t);
    open().close();
    const db = new Database(path);
    const known = db.pragma('user_version', { simple: true }) as number;
    db.pragma(`user_version = ${known + 1}`);
    db.close();
    assert.throws(open, new RegExp(`schema version ${known + 1}, newer than this Berth's ${known}`));
    const after = new Database(path, { readonly: true });
    t.after(() => after.close());
    assert.equal(after.pragma('user_version', { simple: true }), known + 1);
  });

  it('close is idempotent', (t) => {
    const { open } = setup(t);
    const store = open();
    store.close();
    assert.doesNotThrow(() => store.close());
  });

  it('reads back large and small bodies byte for byte, each in a buffer of its own', (t) => {
    const { open } = setup(t);
    const store = open();
    const q = store.declareQueue('big', {}).queue;
    const sizes = [300_000, 300_000, 300_000, 700_000, 1_500_000, 5, 0, 600_000];
    const bodies = sizes.map((size, i) => Uint8Array.from({ length: size }, (_, j) => (j * 31 + i) & 0xff));
    store.write({ ...emptyBatch(), enqueue: bodies.map((body) => message(q.id, { body })) });
    const read = store.loadReady({ queueId: q.id, priority: 0, afterSeq: 0, limit: 100 });
    assert.deepEqual(read.map((m) => m.body.length), sizes);
    for (let i = 0; i < sizes.length; i++) assert.ok(Buffer.from(read[i]!.body).equals(Buffer.from(bodies[i]!)), `body ${i}`);
    const small = read[5]!.body;
    // A body that shared its memory with its page would keep the whole page alive while unacked.
    assert.ok(small.byteLength < 1024 && small.buffer.byteLength < 64 * 1024, 'a small body does not keep its page alive');
  });

  describe('body runs', () => {
    /** The body runs left in the file at `path`, read after the store closed (it locks the file while open). */
    function storedRuns(path: string): Array<{ id: number; last_id: number }> {
      const db = new Database(path, { readonly: true });
      try {
        return db.prepare('SELECT id, last_id FROM body_runs ORDER BY id').all() as Array<{ id: number; last_id: number }>;
      } finally {
        db.close();
      }
    }
    const bodyOf = (seed: number, length: number): Uint8Array => Uint8Array.from({ length }, (_, j) => (j * 7 + seed * 13) & 0xff);
    /** Every message of the queues, read back in pages of 7 (runs and chunks then split across pages). */
    function readAll(store: Store, queueIds: number[]): Map<number, string> {
      const read = new Map<number, string>();
      for (const queueId of queueIds) {
        for (let afterSeq = 0, page = store.loadReady({ queueId, priority: 0, afterSeq, limit: 7 }); page.length > 0; ) {
          for (const m of page) read.set(m.id, Buffer.from(m.body).toString('hex'));
          afterSeq = page.at(-1)!.seq;
          page = store.loadReady({ queueId, priority: 0, afterSeq, limit: 7 });
        }
      }
      return read;
    }

    it('keeps the bodies of a bulk commit in runs, readable after moves, delays and a reopen, and drops each run once none of its messages is in it (property)', (t) => {
      const { dir, track } = tempDir(t);
      let attempt = 0;
      fc.assert(
        fc.property(
          // Bodies mostly small (many to a run), some of a few KiB, some empty.
          fc.array(fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 1000, max: 6000 }), fc.constant(0)), { minLength: 1, maxLength: 200 }),
          fc.array(fc.tuple(fc.nat(), fc.constantFrom('ack', 'move', 'delay')), { maxLength: 120 }),
          fc.boolean(),
          (sizes, actions, ackTheRest) => {
            const path = join(dir, `runs-${attempt++}.db`);
            let store = track(openSqliteStore({ path }));
            const q = store.declareQueue('q', {}).queue;
            const dlq = store.declareQueue('dlq', {}).queue;
            const bodies = sizes.map((size, i) => bodyOf(i, size));
            const ids = store.write({ ...emptyBatch(), enqueue: bodies.map((body) => message(q.id, { body })) }).enqueued.map((e) => e.id);
            const expected = new Map(ids.map((id, i) => [id, Buffer.from(bodies[i]!).toString('hex')]));
            const delayed = new Set<number>();
            // Moved and delayed messages take their bodies out of their runs.
            const outOfRun = new Set<number>();
            // Each action in a commit of its own, on a message still stored.
            for (const [pick, action] of actions) {
              const live = [...expected.keys()];
              if (live.length === 0) break;
              const id = live[pick % live.length]!;
              if (action === 'ack') {
                store.write({ ...emptyBatch(), remove: [id] });
                expected.delete(id);
                delayed.delete(id);
              } else if (action === 'move') {
                store.write({ ...emptyBatch(), move: [{ id, toQueueId: dlq.id, headers: null }] });
                delayed.delete(id);
                outOfRun.add(id);
              } else {
                store.write({ ...emptyBatch(), delay: [{ id, readyAt: T0 + 1000, deliveryCount: 1 }] });
                delayed.add(id);
                outOfRun.add(id);
              }
            }
            store.close();
            const live = [...expected.keys()];
            const inRuns = live.filter((id) => !outOfRun.has(id));
            const covering = (run: { id: number; last_id: number }): boolean => inRuns.some((id) => id >= run.id && id <= run.last_id);
            const runs = storedRuns(path);
            assert.ok(runs.every(covering), 'no run outlives the messages kept in it');
            if (sizes.reduce((a, b) => a + b, 0) >= 8 * 1024 && sizes.length >= 2 && actions.length === 0) {
              assert.ok(runs.length > 0, 'a bulk commit of 8 KiB or more keeps its bodies in runs');
            }

            store = track(openSqliteStore({ path }));
            const promoted = store.promoteDelayed({ now: T0 + 1000, limit: 1000 });
            assert.deepEqual(promoted.map((m) => m.id).sort((x, y) => x - y), [...delayed].sort((x, y) => x - y));
            const read = readAll(store, [q.id, dlq.id]);
            for (const m of promoted) assert.equal(Buffer.from(m.body).toString('hex'), expected.get(m.id), `promoted body of ${m.id}`);
            assert.deepEqual(new Map([...read].sort(([x], [y]) => x - y)), new Map([...expected].sort(([x], [y]) => x - y)));
            const counts = store.countMessages();
            const bytes = counts.reduce((sum, c) => sum + c.bytes, 0);
            assert.equal(bytes, [...expected.values()].reduce((sum, hex) => sum + hex.length / 2, 0), 'counted bytes');
            // New ids after the reopen lie above every run, so no run covers a message written later.
            const [next] = store.write({ ...emptyBatch(), enqueue: [message(q.id)] }).enqueued;
            assert.ok([...live, ...runs.map((run) => run.last_id)].every((id) => id < next!.id), 'new ids above every run');
            if (ackTheRest) store.write({ ...emptyBatch(), remove: [...live, next!.id].reverse() });
            else {
              store.purgeQueue(q.id, []);
              store.deleteQueue(dlq.id);
            }
            store.close();
            assert.deepEqual(storedRuns(path), [], 'the runs go with their last messages');
          },
        ),
        { numRuns: 40 },
      );
    });

    it('after reopen, hands out ids above a run whose last messages were acked while its first is stored', (t) => {
      const { open, path } = setup(t);
      let store = open();
      const q = store.declareQueue('q', {}).queue;
      const ids = store.write({ ...emptyBatch(), enqueue: [0, 1, 2, 3].map((i) => message(q.id, { body: bodyOf(i, 3000) })) }).enqueued.map((e) => e.id);
      store.write({ ...emptyBatch(), remove: ids.slice(1) });
      store.close();
      assert.deepEqual(storedRuns(path), [{ id: ids[0], last_id: ids[3] }]);
      store = open();
      const [next] = store.write({ ...emptyBatch(), enqueue: [message(q.id)] }).enqueued;
      assert.ok(next!.id > ids[3]!, `new id ${next!.id} above the run's ${ids[3]}`);
      store.write({ ...emptyBatch(), remove: [ids[0]!] });
      store.close();
      assert.deepEqual(storedRuns(path), []);
    });

    it('takes the body of a dead-lettered or delayed message out of its run, so the run goes with the others', (t) => {
      const { open, path } = setup(t);
      let store = open();
      const q = store.declareQueue('q', {}).queue;
      const dlq = store.declareQueue('dlq', {}).queue;
      const ids = store.write({ ...emptyBatch(), enqueue: [0, 1, 2, 3].map((i) => message(q.id, { body: bodyOf(i, 3000) })) }).enqueued.map((e) => e.id);
      store.write({ ...emptyBatch(), move: [{ id: ids[1]!, toQueueId: dlq.id, headers: null }], delay: [{ id: ids[2]!, readyAt: T0 + 1, deliveryCount: 1 }] });
      store.write({ ...emptyBatch(), remove: [ids[0]!, ids[3]!] });
      store.close();
      assert.deepEqual(storedRuns(path), [], 'the run went with the last message kept in it');
      store = open();
      const [dead] = store.loadReady({ queueId: dlq.id, priority: 0, afterSeq: 0, limit: 10 });
      const [promoted] = store.promoteDelayed({ now: T0 + 1, limit: 10 });
      assert.deepEqual([dead!.id, promoted!.id], [ids[1], ids[2]]);
      assert.ok(Buffer.from(dead!.body).equals(Buffer.from(bodyOf(1, 3000))), 'the dead letter keeps its body');
      assert.ok(Buffer.from(promoted!.body).equals(Buffer.from(bodyOf(2, 3000))), 'the delayed message keeps its body');
    });

    it('promotes delayed messages published together with their bodies read from their run', (t) => {
      const { open, path } = setup(t);
      let store = open();
      const q = store.declareQueue('q', {}).queue;
      const bodies = Array.from({ length: 20 }, (_, i) => bodyOf(i, 1024));
      const ids = store.write({ ...emptyBatch(), enqueue: bodies.map((body) => message(q.id, { body, readyAt: T0 + 5 })) }).enqueued.map((e) => e.id);
      store.close();
      assert.deepEqual(storedRuns(path), [{ id: ids[0], last_id: ids[19] }]);
      store = open();
      const promoted = store.promoteDelayed({ now: T0 + 5, limit: 100 });
      assert.deepEqual(promoted.map((m) => m.id), ids);
      promoted.forEach((m, i) => assert.ok(Buffer.from(m.body).equals(Buffer.from(bodies[i]!)), `body ${i}`));
      store.write({ ...emptyBatch(), remove: ids });
      store.close();
      assert.deepEqual(storedRuns(path), []);
    });

    it('never puts messages of two queues, priorities, or delayed and ready ones in one run', (t) => {
      const { open, path } = setup(t);
      const store = open();
      const q = store.declareQueue('q', {}).queue;
      const other = store.declareQueue('other', {}).queue;
      const kb = (i: number): Uint8Array => bodyOf(i, 1024);
      const enqueue = [
        ...Array.from({ length: 20 }, (_, i) => message(q.id, { body: kb(i) })),
        ...Array.from({ length: 20 }, (_, i) => message(other.id, { body: kb(i) })),
        ...Array.from({ length: 20 }, (_, i) => message(q.id, { body: kb(i), priority: 5 })),
        ...Array.from({ length: 20 }, (_, i) => message(q.id, { body: kb(i), readyAt: T0 + 60_000 })),
        // Alternating queues: no two neighbours share a lane, so no run at all.
        ...Array.from({ length: 20 }, (_, i) => message(i % 2 === 0 ? q.id : other.id, { body: kb(i) })),
      ];
      const ids = store.write({ ...emptyBatch(), enqueue }).enqueued.map((e) => e.id);
      store.close();
      const spans = [0, 20, 40, 60].map((first) => [ids[first]!, ids[first + 19]!]);
      assert.deepEqual(
        storedRuns(path).map((run) => [run.id, run.last_id]),
        spans,
        'one run per lane block (20 KiB each), none for the alternating tail',
      );
    });

    it('keeps one-at-a-time publishes, bodies as large as a run and small commits in their rows', (t) => {
      const { open, path } = setup(t);
      const store = open();
      const q = store.declareQueue('q', {}).queue;
      store.write({ ...emptyBatch(), enqueue: [message(q.id, { body: bodyOf(1, 20_000) })] });
      store.write({ ...emptyBatch(), enqueue: [message(q.id, { body: bodyOf(2, 40_000) }), message(q.id, { body: bodyOf(3, 40_000) })] });
      store.write({ ...emptyBatch(), enqueue: [message(q.id, { body: bodyOf(4, 100) }), message(q.id, { body: bodyOf(5, 100) })] });
      store.close();
      assert.deepEqual(storedRuns(path), []);
    });
  });

  it('binds no LIMIT as a bare parameter, which SQLite would prepare anew at every call', () => {
    // Checked on the sources: better-sqlite3 does not expose SQLite's count of re-prepares.
    const storage = fileURLToPath(new URL('../../../storage/', import.meta.url));
    const bare = readdirSync(storage)
      .filter((name) => name.endsWith('.ts'))
      .flatMap((name) => readFileSync(join(storage, name), 'utf8').split('\n').map((line, i) => ({ where: `${name}:${i + 1}`, line })))
      .filter(({ line }) => /\bLIMIT\s+\?/i.test(line));
    assert.deepEqual(bare.map(({ where, line }) => `${where} ${line.trim()}`), []);
  });
});
