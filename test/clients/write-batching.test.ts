/**
 * How the SDK puts frames on the wire: settles without replies (`confirmSettles: false`) and
 * one WebSocket message per turn (`writeBatching: 'turn'`). A WebSocket subclass records every
 * message each way, decoded, against a real broker.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { connect, type ConnectOptions, type Connection, type Message } from '../../clients/index.js';
import type { Frame } from '../../protocol/index.js';
import { startTestServer, waitFor } from '../helpers/server.js';
import { recordingWebSocket, type Wire } from '../helpers/wire.js';

const HOUR = 3_600_000;

async function setup(t: TestContext, options: ConnectOptions = {}) {
  const server = await startTestServer(t);
  const wire: Wire = { sent: [], received: [] };
  const errors: Array<{ code: string; message: string; deliveryTags?: number[] }> = [];
  const conn = await connect(server.url, { ...options, WebSocket: recordingWebSocket(wire), onError: (err) => errors.push(err) });
  t.after(() => conn.close());
  const stats = (queue: string) => server.broker.engine.queueStats().find((q) => q.name === queue)!;
  return { conn, wire, errors, stats };
}

const framesOf = (messages: Frame[][], type: Frame['type']): Frame[] => messages.flat().filter((f) => f.type === type);

describe('confirmSettles: false', () => {
  it('sends acks without a ref: they resolve, the broker applies them, and it answers nothing', async (t) => {
    const { conn, wire, stats } = await setup(t);
    await conn.assertQueue('jobs');
    await Promise.all(Array.from({ length: 20 }, (_, i) => conn.publish('jobs', `m${i}`)));
    const settled: Array<Promise<void>> = [];
    await conn.consume('jobs', (m) => void settled.push(m.ack()), { prefetch: 5, autoSettle: false, confirmSettles: false });
    await waitFor(() => settled.length === 20, { what: 'all 20 delivered and acked' });
    await Promise.all(settled);
    await waitFor(() => stats('jobs').stats.acked === 20, { what: 'the broker applied the acks' });
    assert.equal(stats('jobs').unacked, 0);

    const acks = framesOf(wire.sent, 'ack') as Array<Frame & { ref?: number }>;
    assert.ok(acks.length > 0);
    assert.ok(acks.every((f) => f.ref === undefined), 'no ack carries a ref');
    // A request sent last is answered after anything the broker could have said about the acks.
    await conn.assertQueue('jobs');
    const refsSent = new Set(wire.sent.flat().flatMap((f) => ('ref' in f && typeof f.ref === 'number' ? [f.ref] : [])));
    const oks = framesOf(wire.received, 'ok') as Array<Frame & { ref: number }>;
    assert.ok(oks.every((ok) => refsSent.has(ok.ref)));
    assert.equal(oks.length, refsSent.size, 'one ok per request, none for the acks');
  });

  it('reports a refused ack to onError with its tags, after its promise resolved', async (t) => {
    const { conn, errors } = await setup(t);
    await conn.assertQueue('short', { visibilityTimeoutMs: 100 });
    await conn.publish('short', 'slow job');
    const deliveries: Message[] = [];
    await conn.consume('short', (m) => void deliveries.push(m), { prefetch: 2, autoSettle: false, confirmSettles: false });
    // Not acked within its lease: the broker hands the message out again.
    await waitFor(() => deliveries.length === 2, { what: 'the redelivery after the lease ran out' });
    const [first, second] = deliveries as [Message, Message];
    assert.equal(second.redelivered, true);
    await first.ack(); // resolves: nobody answers it
    await waitFor(() => errors.length === 1, { what: 'the refusal reported to onError' });
    assert.equal(errors[0]!.code, 'E_LEASE_EXPIRED');
    assert.deepEqual(errors[0]!.deliveryTags, [first.deliveryTag]);
    await second.ack();
    assert.equal(conn.state, 'open');
  });

  it('leaves the default as it was: an ack waits for its ok, and a refused one rejects', async (t) => {
    const { conn, wire, errors } = await setup(t);
    await conn.assertQueue('short', { visibilityTimeoutMs: 100 });
    await conn.publish('short', 'slow job');
    const deliveries: Message[] = [];
    await conn.consume('short', (m) => void deliveries.push(m), { prefetch: 2, autoSettle: false });
    await waitFor(() => deliveries.length === 2, { what: 'the redelivery after the lease ran out' });
    await assert.rejects(deliveries[0]!.ack(), { code: 'E_LEASE_EXPIRED' });
    await deliveries[1]!.ack();
    assert.ok((framesOf(wire.sent, 'ack') as Array<Frame & { ref?: number }>).every((f) => typeof f.ref === 'number'));
    assert.deepEqual(errors, []);
  });
});

describe('writeBatching', () => {
  /** Sends `count` states, each after the microtasks the previous one queued. */
  async function sendAcrossMicrotasks(conn: Awaited<ReturnType<typeof setup>>['conn'], prefix: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      conn.sendResult(`${prefix}${i}`, 'SUCCESS', { ttlMs: HOUR });
      await Promise.resolve();
    }
  }

  const putMessages = (wire: Wire): number[] => wire.sent.map((m) => m.filter((f) => f.type === 'result.put').length).filter((n) => n > 0);

  it("'microtask' (default) sends what each microtask drain wrote; 'turn' sends one message per turn", async (t) => {
    const micro = await setup(t);
    await sendAcrossMicrotasks(micro.conn, 'm', 5);
    assert.equal((await micro.conn.getResult('m4')).state, 'SUCCESS');
    assert.deepEqual(putMessages(micro.wire), [1, 1, 1, 1, 1]);

    const turn = await setup(t, { writeBatching: 'turn' });
    await sendAcrossMicrotasks(turn.conn, 't', 5);
    assert.equal((await turn.conn.getResult('t4')).state, 'SUCCESS');
    assert.deepEqual(putMessages(turn.wire), [5]);
  });

  it("'turn' sends a large batch in parts of 128 frames, and loses none", async (t) => {
    const { conn, wire } = await setup(t, { writeBatching: 'turn' });
    for (let i = 0; i < 300; i++) conn.sendResult(`b${i}`, 'SUCCESS', { ttlMs: HOUR });
    const last = await conn.getResult('b299');
    assert.equal(last.state, 'SUCCESS');
    assert.deepEqual(putMessages(wire), [128, 128, 44]);
    for (const id of ['b0', 'b127', 'b128', 'b256']) assert.equal((await conn.getResult(id)).state, 'SUCCESS', id);
  });

  /**
   * Acks `count` held messages in one synchronous loop, calling `beforeAck` before each ack (to write
   * other frames in the same turn); returns how many messages had been sent before each ack.
   */
  async function ackHeldInOneTurn(t: TestContext, prefetch: number, count: number, beforeAck?: (conn: Connection, i: number, queue: string) => void) {
    const { conn, wire, stats } = await setup(t, { writeBatching: 'turn' });
    const queue = `held-${prefetch}`;
    await conn.assertQueue(queue);
    await Promise.all(Array.from({ length: count }, (_, i) => conn.publish(queue, `m${i}`)));
    const held: Message[] = [];
    await conn.consume(queue, (m) => void held.push(m), { prefetch, autoSettle: false, confirmSettles: false });
    await waitFor(() => held.length === count, { what: `${count} delivered` });
    const sentBefore: number[] = [];
    const first = wire.sent.length;
    for (const [i, m] of held.entries()) {
      beforeAck?.(conn, i, queue);
      sentBefore.push(wire.sent.length - first);
      void m.ack();
    }
    await waitFor(() => stats(queue).stats.acked === count, { what: 'the broker applied the acks' });
    const sentAfter = wire.sent.slice(first);
    const tagsPerMessage = sentAfter
      .map((frames) => frames.filter((f) => f.type === 'ack').reduce((n, f) => n + (f as Frame & { deliveryTags: number[] }).deliveryTags.length, 0))
      .filter((n) => n > 0);
    return { conn, sentBefore, tagsPerMessage, sentAfter };
  }

  it("'turn' sends acks early once they free half the largest prefetch, so the broker refills while the rest run", async (t) => {
    const { sentBefore, tagsPerMessage } = await ackHeldInOneTurn(t, 40, 40);
    // Nothing left before the 20th ack; its ack was written at once, within the same loop.
    assert.deepEqual(sentBefore.slice(0, 20), new Array(20).fill(0));
    assert.deepEqual(sentBefore.slice(20), new Array(20).fill(1));
    assert.deepEqual(tagsPerMessage, [20, 20]);
  });

  it("'turn' sends task states written with noReply early with those acks: the broker keeps them waiting with the acks", async (t) => {
    const { conn, sentBefore, tagsPerMessage, sentAfter } = await ackHeldInOneTurn(t, 40, 40, (c, i) =>
      c.sendResult(`state-${i}`, 'SUCCESS', { ttlMs: HOUR }),
    );
    assert.deepEqual(sentBefore.slice(0, 20), new Array(20).fill(0));
    assert.deepEqual(sentBefore.slice(20), new Array(20).fill(1));
    assert.deepEqual(tagsPerMessage, [20, 20]);
    assert.deepEqual(
      sentAfter.map((frames) => frames.filter((f) => f.type === 'result.put').length),
      [20, 20],
      'each part carries the states written before its acks',
    );
    for (const id of ['state-0', 'state-19', 'state-20', 'state-39']) assert.equal((await conn.getResult(id)).state, 'SUCCESS', id);
  });

  it("'turn' sends no early part of acks while a frame the broker acts on at once waits with them", async (t) => {
    let published: Promise<unknown> = Promise.resolve();
    const { sentBefore, tagsPerMessage } = await ackHeldInOneTurn(t, 40, 40, (c, i, queue) => {
      if (i === 0) published = c.publish(queue, 'made by the first task');
    });
    await published;
    assert.deepEqual(sentBefore, new Array(40).fill(0));
    assert.deepEqual(tagsPerMessage, [40]);
  });

  it("'turn' sends no early part of fewer than 16 acks", async (t) => {
    const { sentBefore, tagsPerMessage } = await ackHeldInOneTurn(t, 10, 10);
    assert.deepEqual(sentBefore, new Array(10).fill(0));
    assert.deepEqual(tagsPerMessage, [10]);
  });

  it('refuses an unknown mode with E_INVALID_ARGUMENT', async (t) => {
    const server = await startTestServer(t);
    await assert.rejects(connect(server.url, { writeBatching: 'never' as never }), { code: 'E_INVALID_ARGUMENT', message: /"writeBatching" must be 'microtask' or 'turn'/ });
  });
});

describe("the broker's writes", () => {
  it("sends an ack's ok in the same WebSocket message as the delivery the ack made room for", async (t) => {
    const { conn, wire, stats } = await setup(t);
    await conn.assertQueue('one-by-one');
    await Promise.all(['a', 'b', 'c'].map((body) => conn.publish('one-by-one', body)));
    const got: string[] = [];
    await conn.consume('one-by-one', (m) => void got.push(m.text()), { prefetch: 1 });
    await waitFor(() => got.length === 3 && stats('one-by-one').stats.acked === 3, { what: 'three delivered and acked' });
    const acks = framesOf(wire.sent, 'ack') as Array<Frame & { ref: number }>;
    assert.equal(acks.length, 3);
    // The first two acks each freed the window for the next message: one message carries both.
    for (const ack of acks.slice(0, 2)) {
      await waitFor(() => wire.received.some((frames) => frames.some((f) => f.type === 'ok' && f.ref === ack.ref)), { what: `ok ${ack.ref}` });
      const message = wire.received.find((frames) => frames.some((f) => f.type === 'ok' && f.ref === ack.ref))!;
      assert.deepEqual(message.map((f) => f.type).sort(), ['deliver', 'ok'], `the message with ok ${ack.ref}`);
    }
  });
});
