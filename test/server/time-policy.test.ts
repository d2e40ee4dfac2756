import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { connect, type Message } from '../../clients/index.js';
import { startTestServer, waitFor } from '../helpers/server.js';

async function setup(t: TestContext, serverOptions: Parameters<typeof startTestServer>[1] = {}) {
  const server = await startTestServer(t, serverOptions);
  const conn = await connect(server.url);
  t.after(() => conn.close());
  const stats = (queue: string) => server.broker.engine.queueStats().find((q) => q.name === queue)!;
  return { ...server, conn, stats };
}

describe('leases', () => {
  it('redelivers a message whose lease expired while its consumer is still connected, and refuses the late ack', async (t) => {
    const { url, conn, stats } = await setup(t);
    await conn.assertQueue('vt', { visibilityTimeoutMs: 300 });
    const slow: Message[] = [];
    const slowSub = await conn.consume('vt', (m) => {
      slow.push(m);
      return new Promise(() => {}); // holds it, never acks
    }, { prefetch: 1 });
    await conn.publish('vt', 'job');
    await waitFor(() => slow.length === 1, { what: 'first delivery' });
    const first = slow[0]!;
    await slowSub.cancel(); // still connected and still holding the delivery, but takes no more
    assert.ok(first.leaseExpiresAt > first.publishedAt);

    const other = await connect(url);
    t.after(() => other.close());
    const second = await new Promise<Message>((resolve) => void other.consume('vt', (m) => {
      resolve(m);
      return new Promise(() => {}); // settled by hand below
    }, { prefetch: 1 }));
    const lateMs = Date.now() - first.leaseExpiresAt;
    assert.ok(lateMs >= -5, `redelivered ${-lateMs} ms before the lease ran out`);
    assert.equal(second.text(), 'job');
    assert.equal(second.redelivered, true);
    assert.equal(second.deliveryCount, 2);
    await assert.rejects(first.ack(), { code: 'E_LEASE_EXPIRED' });
    await second.ack();
    await waitFor(() => stats('vt').unacked === 0 && stats('vt').ready === 0, { what: 'the queue to empty' });
    assert.equal(stats('vt').stats.acked, 1);
    assert.equal(stats('vt').stats.leaseExpired >= 1, true);
  });

  it('keeps a message with its consumer while the lease is extended', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('long', { visibilityTimeoutMs: 200 });
    await conn.publish('long', 'long task');
    const deliveries: Message[] = [];
    await conn.consume('long', async (m) => {
      deliveries.push(m);
      const until = Date.now() + 1000; // five lease lengths
      while (Date.now() < until) {
        await m.extend(200);
        await new Promise((r) => setTimeout(r, 60));
      }
      await m.ack();
    }, { prefetch: 5 });
    await waitFor(() => stats('long').stats.acked === 1, { what: 'the ack' });
    assert.equal(deliveries.length, 1);
    assert.equal(stats('long').stats.leaseExpired, 0);
  });
});

describe('the engine timer', () => {
  it('is armed only while something waits for time', async (t) => {
    const { broker, conn, stats } = await setup(t);
    assert.equal(broker.engine.nextWakeAt, null);
    // The timer is lazy: it may still fire once for a lease settled since, then it stands down.
    await conn.assertQueue('idle', { visibilityTimeoutMs: 200 });
    await conn.publish('idle', 'x', { delayMs: 50 });
    assert.ok(broker.engine.nextWakeAt !== null, 'a delayed message arms the timer');
    await conn.consume('idle', () => {});
    await waitFor(() => stats('idle').stats.acked === 1, { what: 'the delayed message to be acked' });
    await waitFor(() => broker.engine.nextWakeAt === null, { what: 'the timer to stand down' });
  });
});

describe('delayed delivery', () => {
  it('holds a delayed message in the broker past many visibility timeouts and delivers it once, on time', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('later', { visibilityTimeoutMs: 100 });
    const got: Array<{ at: number; m: Message }> = [];
    await conn.consume('later', (m) => {
      got.push({ at: Date.now(), m });
    });
    const publishedAt = Date.now();
    await conn.publish('later', 'eta', { delayMs: 1200 });
    assert.equal(stats('later').delayed, 1);
    await waitFor(() => got.length === 1, { timeoutMs: 5000, what: 'the delayed delivery' });
    const early = publishedAt + 1200 - got[0]!.at;
    assert.ok(early <= 0, `delivered ${early} ms early`);
    assert.equal(got[0]!.m.deliveryCount, 1);
    t.diagnostic(`ETA lateness ${got[0]!.at - (publishedAt + 1200)} ms`);
    // Acked and nothing left anywhere: it cannot be delivered again.
    await waitFor(() => stats('later').ready + stats('later').delayed + stats('later').unacked === 0, { what: 'the queue to empty' });
    assert.equal(stats('later').stats.delivered, 1);
  });

  it('honours an absolute notBefore time', async (t) => {
    const { conn } = await setup(t);
    await conn.assertQueue('at');
    const notBefore = new Date(Date.now() + 400);
    await conn.publish('at', 'x', { notBefore });
    const m = await new Promise<number>((resolve) => void conn.consume('at', () => resolve(Date.now())));
    assert.ok(m >= notBefore.getTime(), `delivered ${notBefore.getTime() - m} ms early`);
  });

  it('requeues a nacked message after its delay (retry with backoff)', async (t) => {
    const { conn } = await setup(t);
    await conn.assertQueue('retry');
    await conn.publish('retry', 'flaky');
    const attempts: number[] = [];
    await new Promise<void>((resolve) => {
      void conn.consume('retry', async (m) => {
        attempts.push(Date.now());
        if (attempts.length === 1) await m.nack({ delayMs: 300 });
        else resolve();
      });
    });
    assert.equal(attempts.length, 2);
    assert.ok(attempts[1]! - attempts[0]! >= 295, `retried after ${attempts[1]! - attempts[0]!} ms`);
  });
});

describe('expiry', () => {
  it('never delivers an expired message and dead-letters it with reason expired', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('ttl', { deadLetterQueue: 'ttl.dlq', messageTtlMs: 60_000 });
    const start = Date.now();
    await conn.publish('ttl', 'stale', { ttlMs: 50 });
    await conn.publish('ttl', 'fresh');
    await waitFor(() => Date.now() > start + 80, { what: 'the TTL to pass' });
    const got: string[] = [];
    await conn.consume('ttl', (m) => {
      got.push(m.text());
    });
    const dead = await new Promise<Message>((resolve) => void conn.consume('ttl.dlq', (m) => resolve(m)));
    await waitFor(() => got.length === 1, { what: 'the fresh message' });
    assert.deepEqual(got, ['fresh']);
    assert.equal(dead.text(), 'stale');
    assert.equal(dead.headers['x-death-reason'], 'expired');
    assert.equal(stats('ttl').stats.expired, 1);
  });
});

describe('length limits', () => {
  it('nacks a publish to a full queue with E_QUEUE_FULL and a retryAfterMs (reject-publish)', async (t) => {
    const { conn } = await setup(t);
    await conn.assertQueue('bounded', { maxLength: 3 });
    await Promise.all([conn.publish('bounded', 1), conn.publish('bounded', 2), conn.publish('bounded', 3)]);
    await assert.rejects(conn.publish('bounded', 4), (err: { code: string; retryAfterMs?: number }) => {
      assert.equal(err.code, 'E_QUEUE_FULL');
      assert.ok((err.retryAfterMs ?? 0) > 0);
      return true;
    });
  });

  it('drops the oldest messages to the dead-letter queue (drop-oldest)', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('ring', { maxLength: 3, overflow: 'drop-oldest', deadLetterQueue: 'ring.dlq' });
    for (let i = 1; i <= 5; i++) await conn.publish('ring', `m${i}`);
    assert.equal(stats('ring').ready, 3);
    const kept: string[] = [];
    await conn.consume('ring', (m) => {
      kept.push(m.text());
    });
    const dropped: Message[] = [];
    await conn.consume('ring.dlq', (m) => {
      dropped.push(m);
    });
    await waitFor(() => kept.length === 3 && dropped.length === 2, { what: 'kept and dropped messages' });
    assert.deepEqual(kept, ['m3', 'm4', 'm5']);
    assert.deepEqual(dropped.map((m) => m.text()), ['m1', 'm2']);
    assert.equal(dropped[0]!.headers['x-death-reason'], 'maxlen');
  });

  it('limits the body bytes a queue holds', async (t) => {
    const { conn } = await setup(t);
    await conn.assertQueue('bytes', { maxBytes: 1000 });
    await conn.publish('bytes', new Uint8Array(600));
    await assert.rejects(conn.publish('bytes', new Uint8Array(600)), { code: 'E_QUEUE_FULL' });
    await conn.publish('bytes', new Uint8Array(400));
  });
});

describe('deduplication', () => {
  it('confirms a repeated messageId as a duplicate without storing it again', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('once');
    assert.deepEqual(await conn.publish('once', 'a', { messageId: 'order-1' }), { duplicate: false });
    assert.deepEqual(await conn.publish('once', 'a again', { messageId: 'order-1' }), { duplicate: true });
    // Both in one batch: the second is still a duplicate.
    const [x, y] = await Promise.all([conn.publish('once', 'b', { messageId: 'order-2' }), conn.publish('once', 'b', { messageId: 'order-2' })]);
    assert.deepEqual([x.duplicate, y.duplicate], [false, true]);
    assert.equal(stats('once').ready, 2);
    assert.equal(stats('once').stats.duplicates, 2);
  });

  it('deduplicates ids of every length the protocol allows, told apart by their last character', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('long-ids');
    // 36 characters is a UUID; past 48 the broker keeps the id as a string rather than inline.
    const ids = [36, 48, 49, 200].flatMap((length) => ['a', 'b'].map((last) => 'x'.repeat(length - 1) + last));
    for (const messageId of ids) assert.deepEqual(await conn.publish('long-ids', messageId, { messageId }), { duplicate: false }, messageId);
    for (const messageId of ids) assert.deepEqual(await conn.publish('long-ids', messageId, { messageId }), { duplicate: true }, messageId);
    assert.equal(stats('long-ids').ready, ids.length);
  });

  it('forgets the ids of a deleted queue, so a queue declared again under its name starts fresh', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('again');
    await conn.publish('again', 'a', { messageId: 'x-1' });
    await conn.deleteQueue('again');
    await conn.assertQueue('again');
    assert.deepEqual(await conn.publish('again', 'a', { messageId: 'x-1' }), { duplicate: false });
    assert.equal(stats('again').ready, 1);
  });

  it('does not deduplicate when the window is 0', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('many', { dedupWindowMs: 0 });
    await conn.publish('many', 'a', { messageId: 'same' });
    await conn.publish('many', 'a', { messageId: 'same' });
    assert.equal(stats('many').ready, 2);
  });
});

describe('credit', () => {
  it('changes prefetch while consuming, and pulls one message at a time with prefetch 0', async (t) => {
    const { conn, stats } = await setup(t);
    await conn.assertQueue('pull');
    await Promise.all(Array.from({ length: 10 }, (_, i) => conn.publish('pull', `p${i}`)));
    const got: Message[] = [];
    const sub = await conn.consume('pull', (m) => {
      got.push(m);
      return new Promise(() => {});
    }, { prefetch: 0 });
    assert.equal(stats('pull').unacked, 0);
    await sub.pull();
    await waitFor(() => got.length === 1, { what: 'one pulled message' });
    await sub.pull(2);
    await waitFor(() => got.length === 3, { what: 'two more' });
    assert.equal(stats('pull').unacked, 3);
    await sub.setPrefetch(5);
    await waitFor(() => got.length === 5, { what: 'the window of 5 to fill' });
    assert.equal(stats('pull').unacked, 5);
  });

  it('prefers the consumer with the most free credit, so a deep slow window does not starve a fast consumer', async (t) => {
    const { url, conn } = await setup(t);
    await conn.assertQueue('credit');
    const slow: string[] = [];
    await conn.consume('credit', (m) => {
      slow.push(m.text());
      return new Promise(() => {});
    }, { prefetch: 10 });
    await Promise.all(Array.from({ length: 9 }, (_, i) => conn.publish('credit', `early${i}`)));
    await waitFor(() => slow.length === 9, { what: 'the slow consumer to hold 9' });
    const fastConn = await connect(url);
    t.after(() => fastConn.close());
    const fast: string[] = [];
    await fastConn.consume('credit', (m) => {
      fast.push(m.text());
    }, { prefetch: 2 });
    for (let i = 0; i < 10; i++) await conn.publish('credit', `late${i}`);
    await waitFor(() => fast.length === 10, { what: 'the fast consumer to take all ten' });
    assert.equal(slow.length, 9);
  });
});

describe('rate limits', () => {
  it('delivers no faster than the queue rate across all consumers', async (t) => {
    const { url, conn } = await setup(t);
    await conn.assertQueue('slowly', { rateLimit: '10/s' });
    await Promise.all(Array.from({ length: 12 }, (_, i) => conn.publish('slowly', i)));
    const times: number[] = [];
    const other = await connect(url);
    t.after(() => other.close());
    await conn.consume('slowly', () => {
      times.push(Date.now());
    });
    await other.consume('slowly', () => {
      times.push(Date.now());
    });
    await waitFor(() => times.length === 12, { timeoutMs: 5000, what: '12 deliveries' });
    const span = Math.max(...times) - Math.min(...times);
    // 12 deliveries at 10/s with a burst of one: at least 11 intervals of 100 ms.
    assert.ok(span >= 1050, `12 deliveries took ${span} ms`);
  });

  it('applies the rate per header value, so one busy tenant does not hold back another', async (t) => {
    const { conn } = await setup(t);
    await conn.assertQueue('tenants', { rateLimit: '5/s', rateLimitKey: 'tenant' });
    for (let i = 0; i < 5; i++) await conn.publish('tenants', `a${i}`, { headers: { tenant: 'a' } });
    await conn.publish('tenants', 'b0', { headers: { tenant: 'b' } });
    const order: Array<{ body: string; at: number }> = [];
    await conn.consume('tenants', (m) => {
      order.push({ body: m.text(), at: Date.now() });
    });
    await waitFor(() => order.length === 6, { timeoutMs: 5000, what: 'six deliveries' });
    const b = order.findIndex((o) => o.body === 'b0');
    assert.ok(b < 3, `tenant b waited behind tenant a: ${order.map((o) => o.body).join(',')}`);
    const aTimes = order.filter((o) => o.body.startsWith('a')).map((o) => o.at);
    assert.deepEqual(order.filter((o) => o.body.startsWith('a')).map((o) => o.body), ['a0', 'a1', 'a2', 'a3', 'a4']);
    assert.ok(aTimes[4]! - aTimes[0]! >= 750, `tenant a's five took ${aTimes[4]! - aTimes[0]!} ms at 5/s`);
  });
});

describe('redrive', () => {
  it('moves dead letters back to the queue they came from, without x-death headers', async (t) => {
    const { url, conn, stats } = await setup(t);
    await conn.assertQueue('jobs', { deadLetterQueue: 'jobs.dlq' });
    await Promise.all([conn.publish('jobs', 'j1'), conn.publish('jobs', 'j2')]);
    let rejected = 0;
    const sub = await conn.consume('jobs', async (m) => {
      await m.reject({ reason: 'bug' });
      rejected++;
    });
    await waitFor(() => rejected === 2 && stats('jobs.dlq').ready === 2, { what: 'two dead letters' });
    await sub.cancel();
    assert.equal(await conn.redrive('jobs.dlq'), 2);
    assert.equal(stats('jobs.dlq').ready, 0);
    assert.equal(stats('jobs').ready, 2);
    const back = await new Promise<Message>((resolve) => void conn.consume('jobs', (m) => resolve(m)));
    assert.equal(back.headers['x-death-reason'], undefined);
    assert.equal(back.headers['x-redrive-count'], 1);
    assert.equal(back.deliveryCount, 1);
    // The HTTP management call does the same.
    const res = await fetch(`${url.replace('ws://', 'http://')}/api/queues/jobs.dlq/redrive`, { method: 'POST' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { moved: 0 });
    assert.equal((await fetch(`${url.replace('ws://', 'http://')}/api/queues/nope/redrive`, { method: 'POST' })).status, 404);
  });
});
