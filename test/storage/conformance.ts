/**
 * Behaviour every {@link Store} must have, written against the interface only.
 * Run it against each implementation: `storeConformance('sqlite', (t) => openSqliteStore(...))`.
 * `open(t)` returns a fresh, empty store and registers its own cleanup on `t`.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import fc from 'fast-check';
import { emptyBatch, isBatchEmpty } from '../../storage/index.js';
import type { MessageRecord, NewMessage, QueueCounts, ResultRecord, ResultWrite, Store, WriteBatch } from '../../storage/index.js';
import type { MessageHeaders } from '../../protocol/index.js';

export const T0 = 1_700_000_000_000; // a fixed "now" (ms since epoch): the store takes time as an argument

/** A message to enqueue, with every field at a plain default unless overridden. */
export function newMessage(queueId: number, overrides: Partial<NewMessage> = {}): NewMessage {
  return {
    queueId,
    priority: 0,
    messageId: null,
    headers: null,
    body: new TextEncoder().encode('body'),
    publishedAt: T0,
    expiresAt: null,
    readyAt: 0,
    ...overrides,
  };
}

function batch(parts: Partial<WriteBatch>): WriteBatch {
  return { ...emptyBatch(), ...parts };
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** A task state to write, at T0 for an hour unless overridden. */
export function resultWrite(taskId: string, overrides: Partial<ResultWrite> = {}): ResultWrite {
  return { taskId, state: 'PENDING', payload: null, updatedAt: T0, expiresAt: T0 + 3_600_000, ...overrides };
}

/** A stored row with its payload as text, for comparisons. */
function resultOf(store: Store, taskId: string): (Omit<ResultRecord, 'payload'> & { payload: string | null }) | null {
  const r = store.getResult(taskId);
  return r === null ? null : { ...r, payload: r.payload === null ? null : text(r.payload) };
}

/** Counts of one queue; a queue without messages may be absent from `countMessages()`. */
function countsOf(store: Store, queueId: number): Omit<QueueCounts, 'queueId'> {
  const c = store.countMessages().find((q) => q.queueId === queueId);
  return { stored: c?.stored ?? 0, delayed: c?.delayed ?? 0, bytes: c?.bytes ?? 0 };
}

/** Every ready message of a queue at one priority, in dispatch order. */
function ready(store: Store, queueId: number, priority = 0): MessageRecord[] {
  return store.loadReady({ queueId, priority, afterSeq: 0, limit: 1_000_000 });
}

function readyIds(store: Store, queueId: number, priority = 0): number[] {
  return ready(store, queueId, priority).map((m) => m.id);
}

function maxSeq(store: Store, queueIds: number[]): number {
  let max = 0;
  for (const q of queueIds) for (let p = 0; p <= 9; p++) for (const m of ready(store, q, p)) max = Math.max(max, m.seq);
  return max;
}

/** Runs the conformance suite for one store implementation. */
export function storeConformance(name: string, open: (t: TestContext) => Store): void {
  function setup(t: TestContext) {
    const store = open(t);
    const a = store.declareQueue('a', { visibilityTimeoutMs: 30_000 }).queue;
    const b = store.declareQueue('b', {}).queue;
    /** Enqueues messages and returns their ids. */
    const enqueue = (...messages: NewMessage[]): number[] =>
      store.write(batch({ enqueue: messages })).enqueued.map((e) => e.id);
    return { store, a, b, enqueue };
  }

  describe(`${name} store conformance`, () => {
    describe('queues', () => {
      it('declareQueue creates a queue once, then returns it unchanged with created=false', (t) => {
        const store = open(t);
        const before = Date.now();
        const first = store.declareQueue('orders', { maxLength: 10 });
        const after = Date.now();
        assert.equal(first.created, true);
        assert.equal(first.queue.name, 'orders');
        assert.deepEqual(first.queue.options, { maxLength: 10 });
        assert.ok(first.queue.createdAt >= before && first.queue.createdAt <= after);

        const again = store.declareQueue('orders', { maxLength: 99 });
        assert.equal(again.created, false);
        assert.deepEqual(again.queue, first.queue);
      });

      it('listQueues returns every declared queue once, with its options', (t) => {
        const store = open(t);
        assert.deepEqual(store.listQueues(), []);
        const x = store.declareQueue('x', { dedupWindowMs: 1000 }).queue;
        const y = store.declareQueue('y', {}).queue;
        store.declareQueue('x', {});
        assert.notEqual(x.id, y.id);
        const listed = store.listQueues().sort((p, q) => p.id - q.id);
        assert.deepEqual(listed, [x, y].sort((p, q) => p.id - q.id));
      });

      it('deleteQueue removes the queue and its messages, and returns how many messages went', (t) => {
        const { store, a, b, enqueue } = setup(t);
        enqueue(newMessage(a.id, { messageId: 'm-a' }), newMessage(a.id, { readyAt: T0 + 1000 }), newMessage(b.id, { messageId: 'm-b' }));

        assert.equal(store.deleteQueue(a.id), 2);
        assert.deepEqual(store.listQueues().map((q) => q.name), ['b']);
        assert.deepEqual(ready(store, a.id), []);
        assert.deepEqual(countsOf(store, a.id), { stored: 0, delayed: 0, bytes: 0 });
        assert.equal(store.nextDelayedAt(), null);
        assert.deepEqual(store.recentMessageIds({ since: 0, limit: 10 }).map((d) => d.messageId), ['m-b']);
        assert.equal(readyIds(store, b.id).length, 1, 'the other queue keeps its message');
      });

      it('a queue declared again after deletion is new and empty', (t) => {
        const { store, a, enqueue } = setup(t);
        enqueue(newMessage(a.id));
        store.deleteQueue(a.id);
        const again = store.declareQueue('a', {});
        assert.equal(again.created, true);
        assert.deepEqual(ready(store, again.queue.id), []);
      });

      it('purgeQueue deletes the queue\'s ready and delayed messages except the kept ids, and returns how many', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [keep] = enqueue(newMessage(a.id), newMessage(a.id), newMessage(a.id, { readyAt: T0 + 500 }));
        const [otherQueue] = enqueue(newMessage(b.id));

        assert.equal(store.purgeQueue(a.id, [keep!, otherQueue!]), 2);
        assert.deepEqual(readyIds(store, a.id), [keep]);
        assert.deepEqual(readyIds(store, b.id), [otherQueue]);
        assert.deepEqual(countsOf(store, a.id), { stored: 1, delayed: 0, bytes: 4 });
        assert.equal(store.nextDelayedAt(), null);
        assert.equal(store.purgeQueue(a.id, []), 1);
        assert.deepEqual(ready(store, a.id), []);
      });
    });

    describe('write', () => {
      it('an empty batch commits and assigns nothing', (t) => {
        const { store } = setup(t);
        assert.deepEqual(store.write(emptyBatch()), { enqueued: [], moved: [], results: [] });
      });

      it('enqueue assigns increasing ids and seqs, in batch order and across batches', (t) => {
        const { store, a, b } = setup(t);
        const first = store.write(batch({ enqueue: [newMessage(a.id), newMessage(b.id), newMessage(a.id, { priority: 5 })] }));
        const second = store.write(batch({ enqueue: [newMessage(a.id)] }));
        const all = [...first.enqueued, ...second.enqueued];
        assert.equal(all.length, 4);
        for (let i = 1; i < all.length; i++) {
          assert.ok(all[i]!.id > all[i - 1]!.id, `id ${all[i]!.id} after ${all[i - 1]!.id}`);
          assert.ok(all[i]!.seq > all[i - 1]!.seq, `seq ${all[i]!.seq} after ${all[i - 1]!.seq}`);
        }
        assert.deepEqual(second.moved, []);
      });

      it('stores every field of an enqueued message and reads it back from loadReady', (t) => {
        const { store, a } = setup(t);
        const body = new Uint8Array([0, 1, 2, 255]);
        const headers = { tenant: 'acme', attempt: 3, urgent: true, note: null };
        const [e] = store.write(batch({
          enqueue: [newMessage(a.id, { priority: 7, messageId: 'order-1', headers, body, publishedAt: T0 + 1, expiresAt: T0 + 9000 })],
        })).enqueued;
        const [m, ...rest] = ready(store, a.id, 7);
        assert.deepEqual(rest, []);
        assert.ok(m);
        assert.deepEqual(
          { ...m, body: [...m.body] },
          {
            id: e!.id,
            queueId: a.id,
            seq: e!.seq,
            priority: 7,
            messageId: 'order-1',
            headers,
            body: [0, 1, 2, 255],
            deliveryCount: 0,
            publishedAt: T0 + 1,
            expiresAt: T0 + 9000,
          },
        );
      });

      it('stores an empty body', (t) => {
        const { store, a, enqueue } = setup(t);
        enqueue(newMessage(a.id, { body: new Uint8Array(0) }));
        const [m] = ready(store, a.id);
        assert.equal(m?.body.byteLength, 0);
        assert.deepEqual(countsOf(store, a.id), { stored: 1, delayed: 0, bytes: 0 });
      });

      it('stores the bytes of a Uint8Array view, not its whole backing buffer', (t) => {
        const { store, a, enqueue } = setup(t);
        const backing = new TextEncoder().encode('xxHELLOxx');
        enqueue(newMessage(a.id, { body: backing.subarray(2, 7) }));
        assert.equal(text(ready(store, a.id)[0]!.body), 'HELLO');
        assert.deepEqual(countsOf(store, a.id), { stored: 1, delayed: 0, bytes: 5 });
      });

      it('remove deletes messages for good', (t) => {
        const { store, a, enqueue } = setup(t);
        const [x, y, z] = enqueue(newMessage(a.id), newMessage(a.id), newMessage(a.id));
        store.write(batch({ remove: [x!, z!] }));
        assert.deepEqual(readyIds(store, a.id), [y]);
        assert.deepEqual(countsOf(store, a.id), { stored: 1, delayed: 0, bytes: 4 });
      });

      it('remove deletes exactly the listed ids, in any order, with duplicates, across queues (property)', (t) => {
        fc.assert(
          fc.property(fc.array(fc.integer({ min: 0, max: 29 }), { maxLength: 40 }), (picks) => {
            const { store, a, b, enqueue } = setup(t);
            // Alternating queues: a run of consecutive ids spans both.
            const ids = enqueue(...Array.from({ length: 30 }, (_, i) => newMessage(i % 2 === 0 ? a.id : b.id)));
            store.write(batch({ remove: picks.map((i) => ids[i]!) }));
            const removed = new Set(picks.map((i) => ids[i]!));
            const left = [...readyIds(store, a.id), ...readyIds(store, b.id)].sort((x, y) => x - y);
            assert.deepEqual(left, ids.filter((id) => !removed.has(id)));
            store.close();
          }),
          { numRuns: 60 },
        );
      });

      it('delivered records the delivery count, and the message stays in place', (t) => {
        const { store, a, enqueue } = setup(t);
        const [x, y] = enqueue(newMessage(a.id), newMessage(a.id));
        const seqs = ready(store, a.id).map((m) => m.seq);
        store.write(batch({ delivered: [{ id: x!, deliveryCount: 1 }] }));
        store.write(batch({ delivered: [{ id: x!, deliveryCount: 2 }, { id: y!, deliveryCount: 1 }] }));
        const after = ready(store, a.id);
        assert.deepEqual(after.map((m) => [m.id, m.deliveryCount]), [[x, 2], [y, 1]]);
        assert.deepEqual(after.map((m) => m.seq), seqs, 'recording a delivery does not change dispatch order');
      });

      it('deliveredThrough marks a lane: its messages up to the seq read as delivered once, and the mark never goes down', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [x, y, z] = enqueue(newMessage(a.id), newMessage(a.id), newMessage(a.id));
        const [high] = enqueue(newMessage(a.id, { priority: 5 }));
        const [other] = enqueue(newMessage(b.id));
        const [, ySeq] = ready(store, a.id).map((m) => m.seq);
        store.write(batch({ deliveredThrough: [{ queueId: a.id, priority: 0, seq: ySeq! }], delivered: [{ id: x!, deliveryCount: 3 }] }));
        const counts = (q: number, p = 0) => ready(store, q, p).map((m) => [m.id, m.deliveryCount]);
        assert.deepEqual(counts(a.id), [[x, 3], [y, 1], [z, 0]], 'a row\'s own count wins over the mark');
        assert.deepEqual(counts(a.id, 5), [[high, 0]], 'another priority is another lane');
        assert.deepEqual(counts(b.id), [[other, 0]], 'another queue is another lane');
        store.write(batch({ deliveredThrough: [{ queueId: a.id, priority: 0, seq: 1 }] }));
        assert.deepEqual(counts(a.id), [[x, 3], [y, 1], [z, 0]], 'a lower mark changes nothing');
        const [later] = enqueue(newMessage(a.id));
        assert.deepEqual(counts(a.id).at(-1), [later, 0], 'a message enqueued after the mark is not covered');
      });

      it('a lane mark does not cover a message moved or promoted into the lane: it gets a seq above the mark', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [moving] = enqueue(newMessage(b.id));
        const [delayed] = enqueue(newMessage(a.id, { readyAt: T0 + 10 }));
        enqueue(newMessage(a.id));
        const top = ready(store, a.id).at(-1)!.seq;
        store.write(batch({ deliveredThrough: [{ queueId: a.id, priority: 0, seq: top }], move: [{ id: moving!, toQueueId: a.id, headers: null }] }));
        const promoted = store.promoteDelayed({ now: T0 + 10, limit: 10 });
        assert.deepEqual(promoted.map((m) => [m.id, m.deliveryCount]), [[delayed, 0]]);
        assert.deepEqual(ready(store, a.id).filter((m) => m.id === moving || m.id === delayed).map((m) => m.deliveryCount), [0, 0]);
      });

      it('deleteQueue drops the queue\'s lane marks: a queue declared again reads its messages as never delivered', (t) => {
        // `b` is the newest queue: a store that reuses ids hands its id out again.
        const { store, b } = setup(t);
        store.write(batch({ enqueue: [newMessage(b.id)] }));
        store.write(batch({ deliveredThrough: [{ queueId: b.id, priority: 0, seq: 1_000_000 }] }));
        store.deleteQueue(b.id);
        const again = store.declareQueue('b', {}).queue;
        store.write(batch({ enqueue: [newMessage(again.id), newMessage(again.id)] }));
        assert.deepEqual(ready(store, again.id).map((m) => m.deliveryCount), [0, 0]);
      });

      it('move puts a message in another queue with a new, larger seq, no expiry, delivery count 0 and the given headers', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [dead] = enqueue(newMessage(a.id, { expiresAt: T0 + 1000, headers: { k: 'v' }, messageId: 'm1' }));
        const [waiting] = enqueue(newMessage(b.id));
        store.write(batch({ delivered: [{ id: dead!, deliveryCount: 5 }] }));
        const before = maxSeq(store, [a.id, b.id]);

        const result = store.write(batch({ move: [{ id: dead!, toQueueId: b.id, headers: { k: 'v', reason: 'max-deliveries' } }] }));
        assert.deepEqual(result.enqueued, []);
        assert.equal(result.moved.length, 1);
        assert.equal(result.moved[0]!.id, dead);
        assert.ok(result.moved[0]!.seq > before, 'the moved message gets a seq larger than any before');

        assert.deepEqual(ready(store, a.id), []);
        const inB = ready(store, b.id);
        assert.deepEqual(inB.map((m) => m.id), [waiting, dead], 'the moved message dispatches after what was already there');
        const moved = inB[1]!;
        assert.equal(moved.queueId, b.id);
        assert.equal(moved.seq, result.moved[0]!.seq);
        assert.equal(moved.deliveryCount, 0);
        assert.equal(moved.expiresAt, null);
        assert.equal(moved.messageId, 'm1');
        assert.deepEqual(moved.headers, { k: 'v', reason: 'max-deliveries' });
        assert.equal(text(moved.body), 'body');
        assert.deepEqual(countsOf(store, a.id), { stored: 0, delayed: 0, bytes: 0 });
        assert.deepEqual(countsOf(store, b.id), { stored: 2, delayed: 0, bytes: 8 });
      });

      it('move can clear the headers', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [id] = enqueue(newMessage(a.id, { headers: { k: 'v' } }));
        store.write(batch({ move: [{ id: id!, toQueueId: b.id, headers: null }] }));
        assert.equal(ready(store, b.id)[0]?.headers, null);
      });

      it('move makes a delayed message ready in the target queue', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [id] = enqueue(newMessage(a.id, { readyAt: T0 + 5000 }));
        store.write(batch({ move: [{ id: id!, toQueueId: b.id, headers: null }] }));
        assert.deepEqual(readyIds(store, b.id), [id]);
        assert.equal(store.nextDelayedAt(), null);
        assert.deepEqual(countsOf(store, b.id), { stored: 1, delayed: 0, bytes: 4 });
      });

      it('delay puts a delivered message back as delayed with its delivery count, until promoted', (t) => {
        const { store, a, enqueue } = setup(t);
        const [x, y] = enqueue(newMessage(a.id), newMessage(a.id));
        store.write(batch({ delivered: [{ id: x!, deliveryCount: 1 }] }));
        const before = maxSeq(store, [a.id]);

        store.write(batch({ delay: [{ id: x!, readyAt: T0 + 2000, deliveryCount: 1 }] }));
        assert.deepEqual(readyIds(store, a.id), [y]);
        assert.deepEqual(countsOf(store, a.id), { stored: 1, delayed: 1, bytes: 8 });
        assert.equal(store.nextDelayedAt(), T0 + 2000);
        assert.deepEqual(store.promoteDelayed({ now: T0 + 1999, limit: 10 }), []);

        const [promoted, ...rest] = store.promoteDelayed({ now: T0 + 2000, limit: 10 });
        assert.deepEqual(rest, []);
        assert.ok(promoted);
        assert.equal(promoted.id, x);
        assert.equal(promoted.deliveryCount, 1);
        assert.ok(promoted.seq > before, 'a promoted message gets a seq larger than any before');
        assert.deepEqual(readyIds(store, a.id), [y, x]);
        assert.deepEqual(countsOf(store, a.id), { stored: 2, delayed: 0, bytes: 8 });
        assert.equal(store.nextDelayedAt(), null);
      });

      it('applies enqueue, delivered, move, delay and remove of one batch together', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [toRemove, toDeliver, toMove, toDelay] = enqueue(newMessage(a.id), newMessage(a.id), newMessage(a.id), newMessage(a.id));
        const result = store.write(batch({
          enqueue: [newMessage(a.id, { body: new TextEncoder().encode('new') })],
          remove: [toRemove!],
          delivered: [{ id: toDeliver!, deliveryCount: 1 }],
          move: [{ id: toMove!, toQueueId: b.id, headers: null }],
          delay: [{ id: toDelay!, readyAt: T0 + 100, deliveryCount: 2 }],
        }));
        const added = result.enqueued[0]!.id;
        assert.deepEqual(ready(store, a.id).map((m) => [m.id, m.deliveryCount]), [[toDeliver, 1], [added, 0]]);
        assert.deepEqual(readyIds(store, b.id), [toMove]);
        assert.deepEqual(store.promoteDelayed({ now: T0 + 100, limit: 10 }).map((m) => [m.id, m.deliveryCount]), [[toDelay, 2]]);
      });
    });

    describe('delayed messages', () => {
      it('a delayed enqueue is not ready until promoteDelayed runs at or after its readyAt, and then gets a new, larger seq', (t) => {
        const { store, a, enqueue } = setup(t);
        const [delayed] = enqueue(newMessage(a.id, { readyAt: T0 + 1000, messageId: 'later' }));
        const [now1] = enqueue(newMessage(a.id));
        assert.deepEqual(readyIds(store, a.id), [now1]);
        assert.deepEqual(countsOf(store, a.id), { stored: 1, delayed: 1, bytes: 8 });
        assert.equal(store.nextDelayedAt(), T0 + 1000);
        assert.deepEqual(store.promoteDelayed({ now: T0 + 999, limit: 10 }), []);

        const [now2] = enqueue(newMessage(a.id));
        const before = maxSeq(store, [a.id]);
        const promoted = store.promoteDelayed({ now: T0 + 1000, limit: 10 });
        assert.equal(promoted.length, 1);
        assert.equal(promoted[0]!.id, delayed);
        assert.equal(promoted[0]!.messageId, 'later');
        assert.equal(promoted[0]!.deliveryCount, 0);
        assert.ok(promoted[0]!.seq > before, `promoted seq ${promoted[0]!.seq} must exceed ${before}`);
        assert.deepEqual(readyIds(store, a.id), [now1, now2, delayed]);
        assert.equal(ready(store, a.id)[2]!.seq, promoted[0]!.seq);
        assert.deepEqual(countsOf(store, a.id), { stored: 3, delayed: 0, bytes: 12 });
        assert.equal(store.nextDelayedAt(), null);
        assert.deepEqual(store.promoteDelayed({ now: T0 + 10_000, limit: 10 }), [], 'a message is promoted once');
      });

      it('promoteDelayed returns due messages across queues, earliest due first, at most limit at a time', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [third, first, , second] = enqueue(
          newMessage(a.id, { readyAt: T0 + 300 }),
          newMessage(b.id, { readyAt: T0 + 100 }),
          newMessage(a.id, { readyAt: T0 + 900 }),
          newMessage(a.id, { readyAt: T0 + 200 }),
        );
        const page1 = store.promoteDelayed({ now: T0 + 500, limit: 2 });
        assert.deepEqual(page1.map((m) => m.id), [first, second]);
        assert.deepEqual(page1.map((m) => m.queueId), [b.id, a.id]);
        assert.ok(page1[1]!.seq > page1[0]!.seq, 'promoted in order, so seqs follow due order');
        const page2 = store.promoteDelayed({ now: T0 + 500, limit: 2 });
        assert.deepEqual(page2.map((m) => m.id), [third]);
        assert.ok(page2[0]!.seq > page1[1]!.seq);
        assert.equal(store.nextDelayedAt(), T0 + 900);
        assert.deepEqual(readyIds(store, a.id), [second, third]);
      });

      it('nextDelayedAt is null with nothing delayed, and otherwise the earliest readyAt', (t) => {
        const { store, a, b, enqueue } = setup(t);
        assert.equal(store.nextDelayedAt(), null);
        enqueue(newMessage(a.id));
        assert.equal(store.nextDelayedAt(), null, 'ready messages do not count');
        const [late] = enqueue(newMessage(a.id, { readyAt: T0 + 700 }));
        assert.equal(store.nextDelayedAt(), T0 + 700);
        const [early] = enqueue(newMessage(b.id, { readyAt: T0 + 300 }));
        assert.equal(store.nextDelayedAt(), T0 + 300);
        store.write(batch({ remove: [early!] }));
        assert.equal(store.nextDelayedAt(), T0 + 700);
        store.write(batch({ remove: [late!] }));
        assert.equal(store.nextDelayedAt(), null);
      });
    });

    describe('loadReady', () => {
      it('pages through one queue and priority in seq order with afterSeq and limit', (t) => {
        const { store, a, enqueue } = setup(t);
        const ids = enqueue(...Array.from({ length: 7 }, (_, i) => newMessage(a.id, { messageId: `m${i}` })));
        const seen: number[] = [];
        let afterSeq = 0;
        for (;;) {
          const page = store.loadReady({ queueId: a.id, priority: 0, afterSeq, limit: 3 });
          assert.ok(page.length <= 3);
          if (page.length === 0) break;
          for (let i = 1; i < page.length; i++) assert.ok(page[i]!.seq > page[i - 1]!.seq);
          assert.ok(page[0]!.seq > afterSeq);
          seen.push(...page.map((m) => m.id));
          afterSeq = page.at(-1)!.seq;
        }
        assert.deepEqual(seen, ids);
      });

      it('gives back every body byte for byte, empty and binary ones included, in pages of any size (property)', (t) => {
        fc.assert(
          fc.property(
            fc.array(fc.uint8Array({ maxLength: 600 }), { minLength: 1, maxLength: 25 }),
            fc.integer({ min: 1, max: 30 }),
            (bodies, limit) => {
              const { store, a, b, enqueue } = setup(t);
              // Another queue's rows sit between this queue's: a page must not take their bodies.
              enqueue(...bodies.flatMap((body) => [newMessage(a.id, { body }), newMessage(b.id, { body: new Uint8Array([0xff, 0]) })]));
              const read: Uint8Array[] = [];
              for (let afterSeq = 0, page = store.loadReady({ queueId: a.id, priority: 0, afterSeq, limit }); page.length > 0; ) {
                read.push(...page.map((m) => m.body));
                afterSeq = page.at(-1)!.seq;
                page = store.loadReady({ queueId: a.id, priority: 0, afterSeq, limit });
              }
              assert.deepEqual(read.map((body) => Buffer.from(body).toString('hex')), bodies.map((body) => Buffer.from(body).toString('hex')));
              store.close();
            },
          ),
          { numRuns: 60 },
        );
      });

      it('gives back large bodies byte for byte, past rows of other lanes and delayed rows (property)', (t) => {
        // Bodies of tens of KiB: a page's bodies no longer fit one read (the SQLite store reads
        // them in chunks of 32 KiB), and the rows a page must skip sit inside its seq range.
        const body = fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ minLength: 20_000, maxLength: 70_000 }));
        fc.assert(
          fc.property(fc.array(fc.tuple(body, fc.constantFrom('none', 'delayed', 'other-priority')), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 8 }), (items, limit) => {
            const { store, a, enqueue } = setup(t);
            enqueue(
              ...items.flatMap(([body, between]) => {
                const skipped = new Uint8Array(1000).fill(0xee);
                if (between === 'delayed') return [newMessage(a.id, { body }), newMessage(a.id, { body: skipped, readyAt: T0 + 60_000 })];
                if (between === 'other-priority') return [newMessage(a.id, { body }), newMessage(a.id, { body: skipped, priority: 3 })];
                return [newMessage(a.id, { body })];
              }),
            );
            const read: string[] = [];
            for (let afterSeq = 0, page = store.loadReady({ queueId: a.id, priority: 0, afterSeq, limit }); page.length > 0; ) {
              read.push(...page.map((m) => Buffer.from(m.body).toString('hex')));
              afterSeq = page.at(-1)!.seq;
              page = store.loadReady({ queueId: a.id, priority: 0, afterSeq, limit });
            }
            assert.deepEqual(read, items.map(([body]) => Buffer.from(body).toString('hex')));
            store.close();
          }),
          // Shrinking arrays of 70,000 bytes takes minutes: report the first failing case as found.
          { numRuns: 25, endOnFailure: true },
        );
      });

      it('gives back every field of every row, whatever its message id and headers hold (property)', (t) => {
        // Ids and header texts with the characters a packed read could trip on: digits, `,` and
        // `:`, NUL (where a C string would end), non-ASCII and astral ones (whose UTF-8 and UTF-16
        // lengths differ), and none at all.
        // Up to 70 messages in one write: the SQLite store inserts 32 rows a statement, then one by one.
        const chars = fc.string({ unit: fc.constantFrom('1', ',', ':', '\0', 'é', '😀', 'a', '\n'), maxLength: 12 });
        const text = fc.oneof(chars, fc.string({ unit: 'binary', maxLength: 12 }));
        const message = fc.record({
          messageId: fc.option(text.filter((s) => s.length > 0)),
          headers: fc.option(fc.dictionary(text, fc.oneof(text, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null)), { maxKeys: 3 })),
          publishedAt: fc.integer({ min: 0, max: 2 ** 50 }),
          expiresAt: fc.option(fc.integer({ min: 0, max: 2 ** 50 })),
          deliveryCount: fc.nat({ max: 100_000 }),
          body: fc.uint8Array({ maxLength: 40 }),
        });
        fc.assert(
          fc.property(fc.array(message, { minLength: 1, maxLength: 70, size: 'max' }), fc.integer({ min: 1, max: 80 }), (messages, limit) => {
            const { store, a, enqueue } = setup(t);
            const ids = enqueue(...messages.map(({ deliveryCount: _, ...m }) => newMessage(a.id, m)));
            store.write(batch({ delivered: ids.map((id, i) => ({ id, deliveryCount: messages[i]!.deliveryCount })) }));
            const read: MessageRecord[] = [];
            for (let afterSeq = 0, page = store.loadReady({ queueId: a.id, priority: 0, afterSeq, limit }); page.length > 0; ) {
              read.push(...page);
              afterSeq = page.at(-1)!.seq;
              page = store.loadReady({ queueId: a.id, priority: 0, afterSeq, limit });
            }
            // A string is stored as UTF-8, so a lone surrogate comes back as U+FFFD: compare with that.
            const utf8 = (s: string): string => Buffer.from(s).toString();
            const stored = (headers: MessageHeaders | null): unknown =>
              headers === null ? null : JSON.parse(utf8(JSON.stringify(headers)));
            assert.deepEqual(
              read.map((m) => ({ ...m, body: Buffer.from(m.body).toString('hex') })),
              messages.map((m, i) => ({
                id: ids[i],
                queueId: a.id,
                seq: read[i]?.seq,
                priority: 0,
                messageId: m.messageId === null ? null : utf8(m.messageId),
                headers: stored(m.headers),
                body: Buffer.from(m.body).toString('hex'),
                deliveryCount: m.deliveryCount,
                publishedAt: m.publishedAt,
                expiresAt: m.expiresAt,
              })),
            );
            store.close();
          }),
          { numRuns: 100 },
        );
      });

      it('returns only the requested queue and priority', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const [a0, a9, b0, a0b, a9b] = enqueue(
          newMessage(a.id, { priority: 0 }),
          newMessage(a.id, { priority: 9 }),
          newMessage(b.id, { priority: 0 }),
          newMessage(a.id, { priority: 0 }),
          newMessage(a.id, { priority: 9 }),
        );
        assert.deepEqual(readyIds(store, a.id, 0), [a0, a0b]);
        assert.deepEqual(readyIds(store, a.id, 9), [a9, a9b]);
        assert.deepEqual(readyIds(store, b.id, 0), [b0]);
        assert.deepEqual(readyIds(store, b.id, 9), []);
        assert.deepEqual(readyIds(store, a.id, 4), []);
      });

      it('includes delivered-but-unacked messages, which only the broker\'s memory tells apart', (t) => {
        const { store, a, enqueue } = setup(t);
        const [x] = enqueue(newMessage(a.id));
        store.write(batch({ delivered: [{ id: x!, deliveryCount: 1 }] }));
        assert.deepEqual(readyIds(store, a.id), [x]);
      });
    });

    describe('countMessages', () => {
      it('counts stored and delayed messages and body bytes per queue', (t) => {
        const { store, a, b, enqueue } = setup(t);
        const enc = new TextEncoder();
        enqueue(
          newMessage(a.id, { body: enc.encode('12345') }),
          newMessage(a.id, { body: enc.encode('123'), priority: 3, headers: { big: 'x'.repeat(100) } }),
          newMessage(a.id, { body: enc.encode('1234567'), readyAt: T0 + 1 }),
          newMessage(b.id, { body: enc.encode('12') }),
        );
        const counts = store.countMessages().filter((c) => c.stored + c.delayed > 0).sort((p, q) => p.queueId - q.queueId);
        assert.deepEqual(counts, [
          { queueId: a.id, stored: 2, delayed: 1, bytes: 15 },
          { queueId: b.id, stored: 1, delayed: 0, bytes: 2 },
        ].sort((p, q) => p.queueId - q.queueId));
      });

      it('reports nothing stored for queues without messages', (t) => {
        const { store, a, b } = setup(t);
        assert.deepEqual(countsOf(store, a.id), { stored: 0, delayed: 0, bytes: 0 });
        assert.deepEqual(countsOf(store, b.id), { stored: 0, delayed: 0, bytes: 0 });
      });
    });

    describe('recent message ids', () => {
      it('lists ids of stored messages published after since, newest first, up to limit', (t) => {
        const { store, a, b } = setup(t);
        store.write(batch({
          enqueue: [
            newMessage(a.id, { messageId: 'old', publishedAt: T0 - 10 }),
            newMessage(a.id, { messageId: 'a1', publishedAt: T0 + 1 }),
            newMessage(a.id, { messageId: null, publishedAt: T0 + 2 }),
            newMessage(b.id, { messageId: 'b1', publishedAt: T0 + 3 }),
            newMessage(a.id, { messageId: 'a2', publishedAt: T0 + 4, readyAt: T0 + 1000 }),
          ],
        }));
        const key = (d: { queueId: number; messageId: string }) => `${d.queueId}/${d.messageId}`;
        assert.deepEqual(store.recentMessageIds({ since: T0, limit: 10 }).map(key), [`${a.id}/a2`, `${b.id}/b1`, `${a.id}/a1`]);
        assert.deepEqual(store.recentMessageIds({ since: T0, limit: 2 }).map(key), [`${a.id}/a2`, `${b.id}/b1`]);
        assert.deepEqual(store.recentMessageIds({ since: T0 + 3, limit: 10 }).map((d) => d.publishedAt), [T0 + 4]);
      });

      it('forgets the id of a removed message', (t) => {
        const { store, a, enqueue } = setup(t);
        const [id] = enqueue(newMessage(a.id, { messageId: 'gone', publishedAt: T0 + 1 }));
        store.write(batch({ remove: [id!] }));
        assert.deepEqual(store.recentMessageIds({ since: 0, limit: 10 }), []);
      });
    });

    describe('task results', () => {
      const enc = (value: string) => new TextEncoder().encode(value);
      const put = (store: Store, ...writes: ResultWrite[]) => store.write(batch({ results: writes })).results;

      it('getResult is null for an unknown task, and returns a written row with its payload', (t) => {
        const store = open(t);
        assert.equal(store.getResult('nope'), null);
        assert.deepEqual(put(store, resultWrite('t1', { state: 'SUCCESS', payload: enc('{"r":5}'), updatedAt: T0 + 1, expiresAt: T0 + 100 })), [true]);
        assert.deepEqual(resultOf(store, 't1'), { taskId: 't1', state: 'SUCCESS', payload: '{"r":5}', updatedAt: T0 + 1, expiresAt: T0 + 100 });
        put(store, resultWrite('t2'));
        assert.deepEqual(resultOf(store, 't2'), { taskId: 't2', state: 'PENDING', payload: null, updatedAt: T0, expiresAt: T0 + 3_600_000 });
      });

      it('overwrites a row that is not terminal, state, payload and times together', (t) => {
        const store = open(t);
        put(store, resultWrite('t', { state: 'STARTED', payload: enc('progress') }));
        assert.deepEqual(put(store, resultWrite('t', { state: 'RETRY', updatedAt: T0 + 5, expiresAt: T0 + 50 })), [true]);
        assert.deepEqual(resultOf(store, 't'), { taskId: 't', state: 'RETRY', payload: null, updatedAt: T0 + 5, expiresAt: T0 + 50 });
        assert.deepEqual(put(store, resultWrite('t', { state: 'PENDING', updatedAt: T0 + 6 })), [true], 'non-terminal states follow each other in any order');
        assert.deepEqual(put(store, resultWrite('t', { state: 'FAILURE', payload: enc('boom'), updatedAt: T0 + 7 })), [true]);
        assert.equal(resultOf(store, 't')?.state, 'FAILURE');
      });

      it('never overwrites a terminal row: SUCCESS, FAILURE and REVOKED stay as written', (t) => {
        const store = open(t);
        for (const terminal of ['SUCCESS', 'FAILURE', 'REVOKED'] as const) {
          const id = `t-${terminal}`;
          put(store, resultWrite(id, { state: terminal, payload: enc('first'), updatedAt: T0 + 1 }));
          const before = resultOf(store, id);
          for (const later of ['PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'] as const) {
            assert.deepEqual(put(store, resultWrite(id, { state: later, payload: enc('second'), updatedAt: T0 + 2, expiresAt: T0 + 9_999_999 })), [false], `${terminal} then ${later}`);
          }
          assert.deepEqual(resultOf(store, id), before);
        }
      });

      it('applies writes for one task in batch order and reports each', (t) => {
        const store = open(t);
        assert.deepEqual(
          put(store, resultWrite('t', { state: 'STARTED' }), resultWrite('t', { state: 'SUCCESS', payload: enc('5') }), resultWrite('t', { state: 'FAILURE' })),
          [true, true, false],
        );
        assert.deepEqual(resultOf(store, 't')?.payload, '5');
      });

      it('ifAbsent inserts only when the task has no row, even a non-terminal one', (t) => {
        const store = open(t);
        assert.deepEqual(put(store, resultWrite('t', { ifAbsent: true })), [true]);
        assert.deepEqual(put(store, resultWrite('t', { ifAbsent: true, updatedAt: T0 + 1, expiresAt: T0 + 7 })), [false]);
        put(store, resultWrite('t', { state: 'STARTED', updatedAt: T0 + 2 }));
        assert.deepEqual(put(store, resultWrite('t', { ifAbsent: true, updatedAt: T0 + 3 })), [false]);
        assert.equal(resultOf(store, 't')?.state, 'STARTED');
        assert.equal(resultOf(store, 't')?.updatedAt, T0 + 2);
      });

      it('treats a row at or past its expiry as absent: a terminal one is overwritten, ifAbsent inserts', (t) => {
        const store = open(t);
        put(store, resultWrite('done', { state: 'SUCCESS', expiresAt: T0 + 10 }), resultWrite('pending', { expiresAt: T0 + 10 }));
        assert.deepEqual(put(store, resultWrite('done', { state: 'STARTED', updatedAt: T0 + 9 })), [false], 'still live at T0 + 9');
        assert.deepEqual(
          put(store, resultWrite('done', { state: 'STARTED', updatedAt: T0 + 10, expiresAt: T0 + 20 }), resultWrite('pending', { ifAbsent: true, updatedAt: T0 + 10, expiresAt: T0 + 30 })),
          [true, true],
        );
        assert.deepEqual(resultOf(store, 'done'), { taskId: 'done', state: 'STARTED', payload: null, updatedAt: T0 + 10, expiresAt: T0 + 20 });
        assert.equal(resultOf(store, 'pending')?.expiresAt, T0 + 30);
      });

      it('expireResults deletes rows with expiresAt <= now, at most limit per call', (t) => {
        const store = open(t);
        put(
          store,
          resultWrite('a', { expiresAt: T0 + 10 }),
          resultWrite('b', { state: 'SUCCESS', expiresAt: T0 + 20 }),
          resultWrite('c', { state: 'REVOKED', expiresAt: T0 + 20 }),
          resultWrite('d', { expiresAt: T0 + 21 }),
        );
        assert.equal(store.expireResults({ now: T0 + 9, limit: 10 }), 0);
        assert.equal(store.expireResults({ now: T0 + 20, limit: 2 }), 2);
        assert.equal(store.expireResults({ now: T0 + 20, limit: 2 }), 1);
        assert.equal(store.expireResults({ now: T0 + 20, limit: 2 }), 0);
        assert.deepEqual(['a', 'b', 'c', 'd'].map((id) => store.getResult(id)?.taskId ?? null), [null, null, null, 'd']);
      });

      it('revokedTasks lists REVOKED rows that have not expired', (t) => {
        const store = open(t);
        put(
          store,
          resultWrite('r1', { state: 'REVOKED', expiresAt: T0 + 100 }),
          resultWrite('r2', { state: 'REVOKED', expiresAt: T0 + 50 }),
          resultWrite('s', { state: 'SUCCESS', expiresAt: T0 + 100 }),
          resultWrite('p', { state: 'PENDING', expiresAt: T0 + 100 }),
        );
        const byId = (list: Array<{ taskId: string; expiresAt: number }>) => list.slice().sort((x, y) => x.taskId.localeCompare(y.taskId));
        assert.deepEqual(byId(store.revokedTasks({ now: T0 })), [
          { taskId: 'r1', expiresAt: T0 + 100 },
          { taskId: 'r2', expiresAt: T0 + 50 },
        ]);
        assert.deepEqual(store.revokedTasks({ now: T0 + 50 }), [{ taskId: 'r1', expiresAt: T0 + 100 }]);
        assert.deepEqual(store.revokedTasks({ now: T0 + 100 }), []);
      });

      it('commits results with the batch\'s messages, and rolls them back with it', (t) => {
        const { store, a, enqueue } = setup(t);
        const written = store.write(batch({ enqueue: [newMessage(a.id, { headers: { 'task-id': 'x' } })], results: [resultWrite('x', { ifAbsent: true })] }));
        assert.equal(written.enqueued.length, 1);
        assert.deepEqual(written.results, [true]);
        // The last write fails (a non-finite time is refused): the ones before it must roll back.
        assert.throws(() =>
          store.write(batch({
            enqueue: [newMessage(a.id)],
            results: [resultWrite('y', { state: 'SUCCESS' }), resultWrite('x', { state: 'SUCCESS' }), resultWrite('z', { expiresAt: Number.NaN })],
          })),
        );
        assert.equal(store.getResult('y'), null);
        assert.equal(store.getResult('z'), null);
        assert.equal(resultOf(store, 'x')?.state, 'PENDING');
        assert.equal(ready(store, a.id).length, 1, 'the batch\'s message rolled back too');
        assert.deepEqual(enqueue(newMessage(a.id)).length, 1);
      });

      it('a batch of only results is not empty', () => {
        assert.equal(isBatchEmpty(batch({ results: [resultWrite('t')] })), false);
        assert.equal(isBatchEmpty(emptyBatch()), true);
      });
    });

    describe('failed write', () => {
      // A store must refuse to make a non-finite time durable (SQLite binds NaN as NULL, which NOT NULL refuses).
      function failingBatch(a: number, victim: number): WriteBatch {
        return batch({
          enqueue: [newMessage(a, { body: new TextEncoder().encode('lost') })],
          remove: [victim],
          delivered: [{ id: victim, deliveryCount: 9 }],
          // The last write of the batch fails: the ones before it must roll back.
          move: [{ id: victim, toQueueId: Number.NaN, headers: null }],
        });
      }

      it('a batch that throws leaves no partial state, and the next batch gets the ids and seqs it would have had', (t) => {
        // Two stores with the same history, one of which also sees the failing batch.
        const run = (withFailure: boolean) => {
          const { store, a, enqueue } = setup(t);
          const [victim, other] = enqueue(newMessage(a.id), newMessage(a.id, { readyAt: T0 + 50 }));
          const snapshot = () => ({
            ready: ready(store, a.id).map((m) => ({ ...m, body: text(m.body) })),
            counts: store.countMessages(),
            ids: store.recentMessageIds({ since: 0, limit: 100 }),
            nextDelayedAt: store.nextDelayedAt(),
          });
          const before = snapshot();
          if (withFailure) {
            assert.throws(() => store.write(failingBatch(a.id, victim!)));
            assert.deepEqual(snapshot(), before, 'nothing of the failed batch is visible');
          }
          const next = store.write(batch({ enqueue: [newMessage(a.id), newMessage(a.id, { readyAt: T0 + 10 })], move: [{ id: other!, toQueueId: a.id, headers: null }] }));
          const promoted = store.promoteDelayed({ now: T0 + 100, limit: 10 }).map((m) => ({ id: m.id, seq: m.seq }));
          return { next, promoted, after: snapshot() };
        };
        const control = run(false);
        const failed = run(true);
        assert.deepEqual(failed.next, control.next);
        assert.deepEqual(failed.promoted, control.promoted);
        assert.deepEqual(failed.after, control.after);
      });

      it('a failed enqueue of a message with a NaN publish time stores none of the batch\'s messages', (t) => {
        const { store, a, enqueue } = setup(t);
        const [existing] = enqueue(newMessage(a.id));
        assert.throws(() => store.write(batch({ enqueue: [newMessage(a.id), newMessage(a.id, { publishedAt: Number.NaN })] })));
        assert.deepEqual(readyIds(store, a.id), [existing]);
        assert.deepEqual(countsOf(store, a.id), { stored: 1, delayed: 0, bytes: 4 });
      });
    });
  });
}
