import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect, type Message } from '../../clients/index.js';
import { startTestServer, waitFor } from '../helpers/server.js';

describe('publish and consume', () => {
  it('delivers a confirmed message with its headers, id and JSON body, then forgets it once acked', async (t) => {
    const { url, broker } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('emails');
    await conn.publish('emails', { to: 'a@b.c' }, { messageId: 'm-1', headers: { tenant: 'acme' } });
    const got = await new Promise<Message>((resolve) => void conn.consume('emails', (m) => resolve(m)));
    assert.deepEqual(got.json(), { to: 'a@b.c' });
    assert.equal(got.messageId, 'm-1');
    assert.equal(got.headers.tenant, 'acme');
    assert.equal(got.headers['content-type'], 'application/json');
    assert.equal(got.deliveryCount, 1);
    assert.equal(got.redelivered, false);
    await got.ack();
    await waitFor(() => broker.engine.queueStats().find((q) => q.name === 'emails')?.unacked === 0, { what: 'ack applied' });
    const stats = broker.engine.queueStats().find((q) => q.name === 'emails')!;
    assert.equal(stats.ready, 0);
    assert.equal(stats.stats.acked, 1);
  });

  it('carries every header field through, whatever characters the consumer tag, id and headers hold', { timeout: 10_000 }, async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('odd.names/1');
    await conn.assertQueue('other');
    const tag = 'tag "quoted" \\ back\nslash ünï 🚀';
    const headers = { 'x-quote': 'a "b" \\ c', 'x-num': 1.5, 'x-null': null, 'x-bool': false, 'x-uni': '\u2028🚀' };
    await conn.publish('odd.names/1', 'hi', { messageId: 'id "1" \\', headers, priority: 3 });
    let received!: (m: Message) => void;
    const arrived = new Promise<Message>((resolve) => (received = resolve));
    const sub = await conn.consume('odd.names/1', (m) => received(m), { consumerTag: tag });
    const got = await arrived;
    await sub.cancel();
    assert.equal(got.queue, 'odd.names/1');
    assert.equal(got.messageId, 'id "1" \\');
    assert.equal(got.priority, 3);
    assert.equal(got.deliveryCount, 1);
    assert.equal(got.redelivered, false);
    assert.ok(got.leaseExpiresAt > Date.now());
    assert.deepEqual({ ...got.headers, 'content-type': undefined }, { ...headers, 'content-type': undefined });

    // The same tag, after a cancel, on another queue: the delivery names the new queue.
    await conn.publish('other', 'first');
    let onOther!: (m: Message) => void;
    const fromOther = new Promise<Message>((resolve) => (onOther = resolve));
    const first = await conn.consume('other', (m) => onOther(m), { consumerTag: 'reused' });
    assert.equal((await fromOther).queue, 'other');
    await first.cancel();
    await conn.publish('odd.names/1', 'again');
    const second = await new Promise<Message>((resolve) => void conn.consume('odd.names/1', (m) => resolve(m), { consumerTag: 'reused' }));
    assert.equal(second.queue, 'odd.names/1');
    assert.equal(second.text(), 'again');
  });

  it('keeps FIFO order within one priority and delivers higher priority first', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('jobs');
    await Promise.all([
      conn.publish('jobs', 'low-1'),
      conn.publish('jobs', 'low-2'),
      conn.publish('jobs', 'high-1', { priority: 9 }),
      conn.publish('jobs', 'mid-1', { priority: 5 }),
      conn.publish('jobs', 'high-2', { priority: 9 }),
    ]);
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      void conn.consume('jobs', (m) => {
        order.push(m.text());
        if (order.length === 5) resolve();
      });
    });
    assert.deepEqual(order, ['high-1', 'high-2', 'mid-1', 'low-1', 'low-2']);
  });

  it('rejects a publish to an unknown queue with E_QUEUE_NOT_FOUND and keeps the connection usable', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await assert.rejects(conn.publish('nope', 'x'), { code: 'E_QUEUE_NOT_FOUND' });
    await conn.assertQueue('yes');
    await conn.publish('yes', 'x');
  });

  it('refuses to redeclare a queue with different options, naming the option', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('q', { maxDeliveries: 3 });
    assert.deepEqual(await conn.assertQueue('q', { maxDeliveries: 3 }), { messages: 0, consumers: 0 });
    await assert.rejects(conn.assertQueue('q', { maxDeliveries: 4 }), (err: Error & { code: string }) => {
      assert.equal(err.code, 'E_QUEUE_OPTIONS_MISMATCH');
      assert.match(err.message, /maxDeliveries/);
      return true;
    });
  });

  it('pipelines thousands of publishes and confirms every one', async (t) => {
    const { url, broker } = await startTestServer(t);
    const conn = await connect(url, { maxUnconfirmed: 500 });
    t.after(() => conn.close());
    await conn.assertQueue('bulk');
    let maxUnconfirmed = 0;
    const publishes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 5000; i++) {
      publishes.push(conn.publish('bulk', new Uint8Array(64)));
      maxUnconfirmed = Math.max(maxUnconfirmed, conn.unconfirmed);
    }
    await Promise.all(publishes);
    assert.ok(maxUnconfirmed <= 500, `unconfirmed reached ${maxUnconfirmed}, bound is 500`);
    assert.equal(broker.engine.queueStats().find((q) => q.name === 'bulk')?.ready, 5000);
  });

  it('purges ready messages and deletes a queue, cancelling its consumers', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('p');
    await Promise.all([conn.publish('p', 'a'), conn.publish('p', 'b')]);
    assert.equal(await conn.purgeQueue('p'), 2);
    await conn.publish('p', 'c');
    await assert.rejects(conn.deleteQueue('p', { ifEmpty: true }), { code: 'E_QUEUE_NOT_EMPTY' });
    assert.equal(await conn.deleteQueue('p'), 1);
    await assert.rejects(conn.publish('p', 'd'), { code: 'E_QUEUE_NOT_FOUND' });
  });
});

describe('acks', () => {
  it('refuses a second ack of the same delivery with E_DELIVERY_UNKNOWN', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('q');
    await conn.publish('q', 'x');
    const msg = await new Promise<Message>((resolve) => void conn.consume('q', (m) => new Promise(() => resolve(m))));
    await msg.ack();
    await assert.rejects(msg.ack(), { code: 'E_DELIVERY_UNKNOWN' });
  });

  it('moves a rejected message to the dead-letter queue with x-death headers', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('work', { deadLetterQueue: 'work.dlq' });
    await conn.publish('work', 'poison', { headers: { kind: 'test' } });
    await new Promise<void>((resolve) => void conn.consume('work', async (m) => {
      await m.reject({ reason: 'cannot parse' });
      resolve();
    }));
    const dead = await new Promise<Message>((resolve) => void conn.consume('work.dlq', (m) => resolve(m)));
    assert.equal(dead.text(), 'poison');
    assert.equal(dead.headers.kind, 'test');
    assert.equal(dead.headers['x-death-reason'], 'rejected');
    assert.equal(dead.headers['x-death-queue'], 'work');
    assert.equal(dead.headers['x-death-error'], 'cannot parse');
    assert.equal(dead.deliveryCount, 1);
  });

  it('dead-letters a message that reached maxDeliveries instead of requeueing it again', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('flaky', { maxDeliveries: 2, deadLetterQueue: 'flaky.dlq' });
    await conn.publish('flaky', 'boom');
    const attempts: number[] = [];
    await conn.consume('flaky', (m) => {
      attempts.push(m.deliveryCount);
      throw new Error('handler fails'); // → nack with requeue
    });
    const dead = await new Promise<Message>((resolve) => void conn.consume('flaky.dlq', (m) => resolve(m)));
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(dead.headers['x-death-reason'], 'delivery-limit');
    assert.equal(dead.headers['x-death-count'], 2);
  });
});

describe('consumer loss', () => {
  it('redelivers unacked messages of a closed connection to another consumer, marked redelivered', async (t) => {
    const { url } = await startTestServer(t);
    const producer = await connect(url);
    t.after(() => producer.close());
    await producer.assertQueue('tasks');
    await Promise.all(Array.from({ length: 5 }, (_, i) => producer.publish('tasks', `t${i}`)));

    const first = await connect(url);
    const held: Message[] = [];
    await first.consume('tasks', (m) => {
      held.push(m);
      return new Promise(() => {}); // never finishes: holds its deliveries
    }, { prefetch: 5 });
    await waitFor(() => held.length === 5, { what: 'five deliveries to the first consumer' });
    assert.ok(held.every((m) => !m.redelivered));

    const second = await connect(url);
    t.after(() => second.close());
    const redelivered: Message[] = [];
    await second.consume('tasks', (m) => {
      redelivered.push(m);
    }, { prefetch: 10 });
    await first.close();
    await waitFor(() => redelivered.length === 5, { what: 'redelivery to the second consumer' });
    assert.deepEqual(redelivered.map((m) => m.text()), ['t0', 't1', 't2', 't3', 't4']);
    assert.ok(redelivered.every((m) => m.redelivered && m.deliveryCount === 2));
  });
});

describe('prefetch', () => {
  it('never gives a consumer more than prefetch unacked deliveries', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('window');
    await Promise.all(Array.from({ length: 200 }, (_, i) => conn.publish('window', String(i))));
    let inHand = 0;
    let maxInHand = 0;
    let done = 0;
    await new Promise<void>((resolve) => {
      void conn.consume('window', async (m) => {
        inHand++;
        maxInHand = Math.max(maxInHand, inHand);
        await new Promise((r) => setImmediate(r));
        inHand--;
        await m.ack();
        if (++done === 200) resolve();
      }, { prefetch: 7 });
    });
    assert.equal(maxInHand, 7);
  });

  it('with prefetch 1, a busy consumer does not hold back messages an idle one can take', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('fair');
    let releaseSlow!: () => void;
    const slowDone = new Promise<void>((r) => (releaseSlow = r));
    const slow: string[] = [];
    const fast: string[] = [];
    await conn.consume('fair', async (m) => {
      slow.push(m.text());
      await slowDone;
    }, { prefetch: 1 });
    await conn.consume('fair', (m) => {
      fast.push(m.text());
    }, { prefetch: 1 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => conn.publish('fair', `m${i}`)));
    await waitFor(() => fast.length === 9, { what: 'the fast consumer to take the other nine' });
    assert.equal(slow.length, 1);
    releaseSlow();
  });
});
