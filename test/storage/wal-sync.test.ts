/**
 * The store's durability point: commits append to SQLite's log without an fsync, and a batch of
 * new messages is durable once the log has been synced after it (storage/wal-sync.ts). The
 * stores here are real SQLite files; the sync they are given records its calls and lets the
 * test finish them, or forwards to the real `fdatasync`.
 */
import assert from 'node:assert/strict';
import { fstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { emptyBatch, openSqliteStore, type SqliteStoreOptions, type Store, type WriteBatch } from '../../storage/index.js';
import { heldSync } from '../helpers/held-sync.js';
import { tempDir } from '../helpers/server.js';
import { newMessage } from './conformance.js';

function open(t: TestContext, options: Partial<SqliteStoreOptions> = {}): { store: Store; path: string } {
  const path = join(tempDir(t, 'berth-walsync-'), 'berth.db');
  const store = openSqliteStore({ path, ...options });
  t.after(() => store.close());
  return { store, path };
}

function publishBatch(queueId: number, body: string): WriteBatch {
  return { ...emptyBatch(), enqueue: [newMessage(queueId, { body: new TextEncoder().encode(body) })] };
}

/** One turn of the event loop: the store starts its sync in the next turn's check phase. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A store on a real file whose syncs the test finishes by hand, one queue `q`, and `when(name)`,
 * which asks the store to say when it is durable and records the answer in `told`.
 */
function heldStore(t: TestContext, options: Partial<SqliteStoreOptions> = {}) {
  const { syncFile, calls } = heldSync();
  const { store, path } = open(t, { syncFile, ...options });
  const { queue } = store.declareQueue('q', {});
  const told: Array<{ name: string; error: Error | null }> = [];
  return {
    store,
    path,
    queue,
    calls,
    told,
    when: (name: string) => store.whenDurable((error) => told.push({ name, error })),
    publish: (body: string) => store.write(publishBatch(queue.id, body)),
  };
}

describe('store durability: the log synced after the commit', () => {
  it('makes a batch of new messages readable at once and durable once the log file is synced', async (t) => {
    const { store, path, queue, calls, told, when, publish } = heldStore(t);
    publish('hello');
    assert.deepEqual(
      store.loadReady({ queueId: queue.id, priority: 0, afterSeq: 0, limit: 10 }).map((m) => new TextDecoder().decode(m.body)),
      ['hello'],
      'readable before any sync',
    );
    when('a');
    assert.equal(calls.length, 0, 'the sync waits for the next turn');
    await nextTurn();
    assert.equal(calls.length, 1, 'one sync started');
    assert.deepEqual(told, [], 'not durable before the sync finishes');
    // The descriptor synced is SQLite's log file, not the database file.
    assert.equal(fstatSync(calls[0]!.fd).ino, statSync(`${path}-wal`).ino);
    await new Promise<void>((resolve) => {
      store.whenDurable(() => resolve());
      calls[0]!.real();
    });
    assert.deepEqual(told, [{ name: 'a', error: null }]);
  });

  it('covers every commit made before a sync starts with it; commits during a sync wait for the next one', async (t) => {
    const { store, calls, told, when, publish } = heldStore(t);
    publish('1');
    when('a');
    publish('2');
    when('b');
    await nextTurn();
    assert.equal(calls.length, 1, 'two commits in one turn, one sync');
    publish('3');
    when('c');
    await nextTurn();
    assert.equal(calls.length, 1, 'no second sync while one runs');
    calls[0]!.finish();
    assert.deepEqual(told.map((x) => x.name), ['a', 'b'], 'the sync covered the commits before it, not the one during it');
    await nextTurn();
    assert.equal(calls.length, 2, 'the next sync starts for the commit that waits');
    calls[1]!.finish();
    assert.deepEqual(told.map((x) => x.name), ['a', 'b', 'c']);
    assert.ok(told.every((x) => x.error === null));
  });

  it('waits for no sync after acks and delivery counts, nor when nothing was written', async (t) => {
    const { store, calls, told, when, publish } = heldStore(t);
    when('nothing written');
    const [{ id }] = publish('x').enqueued as [{ id: number; seq: number }];
    when('publish');
    await nextTurn();
    calls[0]!.finish();
    store.write({ ...emptyBatch(), delivered: [{ id, deliveryCount: 1 }] });
    store.write({ ...emptyBatch(), remove: [id] });
    when('acks');
    assert.deepEqual(told.map((x) => x.name), ['nothing written', 'publish', 'acks'], 'told at once, in order');
    assert.equal(calls.length, 1, 'acks started no sync');
  });

  it('after a failed sync, tells every waiter the error and refuses every later write', async (t) => {
    const { store, path, calls, told, when, publish } = heldStore(t);
    publish('1');
    when('a');
    await nextTurn();
    publish('2');
    when('b');
    calls[0]!.finish(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    assert.deepEqual(told.map((x) => x.name), ['a', 'b'], 'the waiter of the commit during the sync is told too');
    for (const { error } of told) {
      assert.ok(error instanceof Error);
      assert.match(error.message, /could not sync .*berth\.db-wal to disk: EIO/);
      assert.match(error.message, new RegExp(path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    }
    assert.throws(() => publish('3'), /could not sync/);
    when('later');
    assert.match(told[2]!.error?.message ?? '', /could not sync/);
    await nextTurn();
    assert.equal(calls.length, 1, 'no sync after the failure');
  });

  it('tells the waiters at close (SQLite syncs at its last checkpoint), and a sync finishing after close is ignored', async (t) => {
    const { store, calls, told, when, publish } = heldStore(t);
    publish('1');
    when('a');
    await nextTurn();
    publish('2');
    when('b');
    store.close();
    assert.deepEqual(told, [{ name: 'a', error: null }, { name: 'b', error: null }]);
    calls[0]!.finish(new Error('EBADF: the descriptor was closed under the sync'));
    assert.equal(told.length, 2);
    await nextTurn();
    assert.equal(calls.length, 1, 'no sync starts after close');
  });

  it('never syncs with durability normal or in memory', async (t) => {
    for (const options of [{ durability: 'normal' as const }, { path: ':memory:' }]) {
      const { calls, told, when, publish } = heldStore(t, options);
      publish('x');
      when('a');
      assert.deepEqual(told, [{ name: 'a', error: null }], JSON.stringify(options));
      await nextTurn();
      assert.equal(calls.length, 0);
    }
  });

  it('syncs with the real fdatasync by default', async (t) => {
    const { store } = open(t);
    const { queue } = store.declareQueue('q', {});
    store.write(publishBatch(queue.id, 'x'));
    const error = await new Promise<Error | null>((resolve) => store.whenDurable(resolve));
    assert.equal(error, null);
  });
});
