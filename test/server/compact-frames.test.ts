/**
 * Compact frames against a real broker [PROTO §2.5]: what `welcome.features` answers to each
 * `hello.features`, which op the broker's deliveries take on the wire (read off the raw WebSocket
 * messages), that a compact publish is accepted on any connection while a bad one is nacked by seq
 * and leaves the session usable, and the SDK end to end with and without the feature (a recording
 * `ws` socket shows which ops it actually sent and received), so the two paths stay interchangeable.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { WebSocket as WsSocket } from 'ws';
import { BrokerError, connect, type Connection, type Message, type WebSocketConstructor } from '../../clients/index.js';
import { COMPACT_FRAMES, CompactOp, FrameWriter, Op, type FrameOf } from '../../protocol/index.js';
import { featurePeer as peer, opsOf, type RawPeer } from '../helpers/raw.js';
import { startTestServer, waitFor } from '../helpers/server.js';

const utf8 = new TextEncoder();

async function declare(raw: RawPeer, queue: string): Promise<FrameOf<'ok'>> {
  raw.send({ type: 'queue.declare', ref: 1, queue });
  return raw.next('ok');
}

/** Consumes `queue` and returns its first `count` deliveries, ordered by body. */
async function deliveries(raw: RawPeer, queue: string, count: number): Promise<Array<FrameOf<'deliver'>>> {
  raw.send({ type: 'consume', ref: 2, queue, consumerTag: 'worker-1', prefetch: 10 });
  await raw.next('ok');
  const out: Array<FrameOf<'deliver'>> = [];
  while (out.length < count) out.push(await raw.next('deliver'));
  return out.sort((a, b) => Buffer.compare(a.body, b.body));
}

/** The fields a consumer reads, without the per-delivery ones (tag, times). */
function fieldsOf(d: FrameOf<'deliver'>): object {
  const { queue, consumerTag, messageId, headers, priority, deliveryCount, redelivered, body } = d;
  return { queue, consumerTag, messageId, headers, priority, deliveryCount, redelivered, body: Buffer.from(body).toString() };
}

function compactPublish(frame: Omit<FrameOf<'publish'>, 'type'>): Uint8Array {
  const w = new FrameWriter();
  assert.ok(w.pushCompactPublish({ type: 'publish', ...frame }, frame.headers === undefined ? null : JSON.stringify(frame.headers)));
  return w.take();
}

const HEADERS = { tenant: 'acme', attempt: 2, urgent: true, trace: null, 'note-é': 'a😀b' };

describe('compact-frames negotiation', () => {
  it('lists compact-frames in welcome.features when offered, [] when not, and ignores unknown features', async (t) => {
    const { url } = await startTestServer(t);
    assert.deepEqual((await peer(t, url, [COMPACT_FRAMES])).welcome.features, [COMPACT_FRAMES]);
    assert.deepEqual((await peer(t, url)).welcome.features, []);
    assert.deepEqual((await peer(t, url, [])).welcome.features, []);
    assert.deepEqual((await peer(t, url, ['x-future', COMPACT_FRAMES, 'zstd'])).welcome.features, [COMPACT_FRAMES]);
    assert.deepEqual((await peer(t, url, ['x-future', 'Compact-Frames'])).welcome.features, []);
  });
});

describe('deliveries on the wire', () => {
  it('sends op 43 to a peer that offered compact-frames and op 40 to one that did not, with the same fields', async (t) => {
    const { url } = await startTestServer(t);
    const seen: Record<string, Array<FrameOf<'deliver'>>> = {};
    for (const [name, features] of [['compact', [COMPACT_FRAMES]], ['json', undefined]] as const) {
      const { raw, ops } = await peer(t, url, features === undefined ? undefined : [...features]);
      const queue = `wire-${name}`;
      await declare(raw, queue);
      raw.send(
        { type: 'publish', seq: 1, queue, messageId: 'm-€-😀', headers: HEADERS, priority: 7, body: utf8.encode('first') },
        { type: 'publish', seq: 2, queue, body: utf8.encode('second') },
      );
      while ((await raw.next('confirm')).upTo < 2);
      ops.length = 0;
      const got = await deliveries(raw, queue, 2);
      const deliverOps = ops.filter((op) => op === Op.deliver || op === CompactOp.deliver);
      assert.deepEqual(deliverOps, name === 'compact' ? [43, 43] : [40, 40]);
      for (const d of got) assert.ok(Number.isSafeInteger(d.leaseExpiresAt) && d.deliveryTag >= 1 && d.publishedAt > 0, JSON.stringify(d));
      seen[name] = got;
    }
    const compact = seen.compact!.map(fieldsOf);
    const json = seen.json!.map(fieldsOf);
    assert.deepEqual(json, [
      { queue: 'wire-json', consumerTag: 'worker-1', messageId: 'm-€-😀', headers: HEADERS, priority: 7, deliveryCount: 1, redelivered: false, body: 'first' },
      { queue: 'wire-json', consumerTag: 'worker-1', messageId: undefined, headers: undefined, priority: undefined, deliveryCount: 1, redelivered: false, body: 'second' },
    ]);
    assert.deepEqual(compact, json.map((d) => ({ ...d, queue: 'wire-compact' })));
  });
});

describe('compact publishes', () => {
  it('accepts and confirms a compact publish from a peer that did not offer the feature, and delivers it intact', async (t) => {
    const { url } = await startTestServer(t);
    const { raw, ops } = await peer(t, url);
    await declare(raw, 'loose');
    raw.ws.send(compactPublish({ seq: 1, queue: 'loose', messageId: 'id-1', headers: HEADERS, priority: 4, body: utf8.encode('payload') }));
    assert.equal((await raw.next('confirm')).upTo, 1);
    const [d] = await deliveries(raw, 'loose', 1);
    assert.deepEqual(fieldsOf(d!), { queue: 'loose', consumerTag: 'worker-1', messageId: 'id-1', headers: HEADERS, priority: 4, deliveryCount: 1, redelivered: false, body: 'payload' });
    // The peer never offered the feature: its deliveries stay JSON.
    assert.ok(ops.includes(Op.deliver) && !ops.includes(CompactOp.deliver));
  });

  it('nacks an invalid compact publish by seq with E_FRAME_INVALID, and the connection stays usable', async (t) => {
    const { url } = await startTestServer(t);
    const { raw } = await peer(t, url, [COMPACT_FRAMES]);
    await declare(raw, 'strict');
    const body = utf8.encode('x');

    raw.ws.send(compactPublish({ seq: 1, queue: 'strict', priority: 10, body }));
    const badPriority = await raw.next('publish.nack');
    assert.deepEqual([badPriority.seq, badPriority.code], [1, 'E_FRAME_INVALID']);
    assert.match(badPriority.message, /priority/);

    raw.ws.send(compactPublish({ seq: 2, queue: 'no spaces', body }));
    const badQueue = await raw.next('publish.nack');
    assert.deepEqual([badQueue.seq, badQueue.code], [2, 'E_FRAME_INVALID']);
    assert.match(badQueue.message, /queue/);

    // Without a valid seq there is nothing to nack: an error frame says why.
    raw.ws.send(compactPublish({ seq: 0, queue: 'strict', body }));
    const noSeq = await raw.next('error');
    assert.equal(noSeq.code, 'E_FRAME_INVALID');
    assert.match(noSeq.message, /seq/);

    raw.ws.send(compactPublish({ seq: 3, queue: 'strict', body }));
    assert.equal((await raw.next('confirm')).upTo, 3);
    assert.equal(raw.ws.readyState, WsSocket.OPEN);
    // Only the valid publish was stored.
    assert.equal((await declare(raw, 'strict')).messages, 1);
  });
});

describe('SDK', () => {
  /** A `ws` socket that records the op of every frame the SDK sends and receives. */
  function recording(ops: { sent: number[]; received: number[] }): WebSocketConstructor {
    return function (url: string) {
      const ws = new WsSocket(url);
      const send = ws.send.bind(ws);
      ws.send = ((data: Uint8Array) => {
        ops.sent.push(...opsOf(data));
        send(data);
      }) as typeof ws.send;
      ws.on('message', (data: ArrayBuffer | Buffer) => ops.received.push(...opsOf(new Uint8Array(data))));
      return ws;
    } as unknown as WebSocketConstructor;
  }

  /** A broker, an SDK connection to it (default options) recording its ops, and a queue declared. */
  async function recordedConnection(t: TestContext, queue: string): Promise<{ conn: Connection; ops: { sent: number[]; received: number[] } }> {
    const { url } = await startTestServer(t);
    const ops = { sent: [] as number[], received: [] as number[] };
    const conn = await connect(url, { WebSocket: recording(ops) });
    t.after(() => conn.close());
    await conn.assertQueue(queue);
    return { conn, ops };
  }

  const MESSAGES = [
    { body: 'a', messageId: 'sdk-1', headers: HEADERS, priority: 9 },
    { body: 'b', messageId: 'sdk-2-é😀', headers: { tenant: 'globex' }, priority: 0 },
    { body: 'c', messageId: 'sdk-3', priority: 5 },
  ];

  it('publishes and consumes the same messageId, headers and priority with compact frames (default) and without', async (t) => {
    const { url } = await startTestServer(t);
    const results: object[][] = [];
    for (const compactFrames of [undefined, false]) {
      const ops = { sent: [] as number[], received: [] as number[] };
      const conn = await connect(url, { ...(compactFrames === undefined ? {} : { compactFrames }), WebSocket: recording(ops) });
      t.after(() => conn.close());
      const queue = `sdk-${compactFrames ?? 'default'}`;
      await conn.assertQueue(queue);
      await Promise.all(MESSAGES.map(({ body, ...options }) => conn.publish(queue, utf8.encode(body), options)));
      const got: Message[] = [];
      await conn.consume(queue, (m) => void got.push(m));
      await waitFor(() => got.length === MESSAGES.length, { what: `${MESSAGES.length} deliveries on ${queue}` });
      results.push(
        got
          .map((m) => ({ messageId: m.messageId, headers: m.headers, priority: m.priority, deliveryCount: m.deliveryCount, redelivered: m.redelivered, queue: m.queue === queue, body: m.text() }))
          .sort((a, b) => a.body.localeCompare(b.body)),
      );
      const [publishOp, deliverOp] = compactFrames === false ? [Op.publish, Op.deliver] : [CompactOp.publish, CompactOp.deliver];
      assert.deepEqual(ops.sent.filter((op) => op === Op.publish || op === CompactOp.publish), [publishOp, publishOp, publishOp]);
      assert.deepEqual(ops.received.filter((op) => op === Op.deliver || op === CompactOp.deliver), [deliverOp, deliverOp, deliverOp]);
    }
    const expected = MESSAGES.map(({ body, messageId, headers, priority }) => ({ messageId, headers: headers ?? {}, priority, deliveryCount: 1, redelivered: false, queue: true, body }));
    assert.deepEqual(results, [expected, expected]);
  });

  it('sends a publish the compact layout cannot carry as JSON, which the broker refuses by its rules', async (t) => {
    const { conn, ops } = await recordedConnection(t, 'fallback');
    for (const [queue, priority, op] of [['fallback', 1.5, Op.publish], ['fallback', 300, Op.publish], ['q'.repeat(256), 1, Op.publish], ['fallback', 10, CompactOp.publish]] as const) {
      ops.sent.length = 0;
      await assert.rejects(conn.publish(queue, 'x', { priority }), (err) => err instanceof BrokerError && err.code === 'E_FRAME_INVALID');
      assert.deepEqual(ops.sent.filter((o) => o === Op.publish || o === CompactOp.publish), [op], `priority ${priority} to a queue of ${queue.length}`);
    }
    await conn.publish('fallback', 'fine', { priority: 1 });
    assert.equal((await conn.assertQueue('fallback')).messages, 1);
  });

  it('keeps a lone surrogate in a message id and a consumer tag by sending those frames as JSON', async (t) => {
    const { conn, ops } = await recordedConnection(t, 'surrogates');
    await conn.publish('surrogates', 'x', { messageId: 'm\ud800' });
    await conn.publish('surrogates', 'y', { messageId: 'plain' });
    const got: Message[] = [];
    await conn.consume('surrogates', (m) => void got.push(m), { consumerTag: 'c\udc00' });
    await waitFor(() => got.length === 2, { what: 'both deliveries to the consumer c\\udc00' });
    assert.deepEqual(got.map((m) => [m.messageId, m.text()]), [['m\ud800', 'x'], ['plain', 'y']]);
    assert.deepEqual(ops.sent.filter((o) => o === Op.publish || o === CompactOp.publish), [Op.publish, CompactOp.publish]);
    // A consumer tag UTF-8 cannot carry: every delivery to it goes as JSON.
    assert.deepEqual(ops.received.filter((o) => o === Op.deliver || o === CompactOp.deliver), [Op.deliver, Op.deliver]);
  });

  it('rejects a compactFrames option that is not a boolean with E_INVALID_ARGUMENT', async (t) => {
    const { url } = await startTestServer(t);
    await assert.rejects(connect(url, { compactFrames: 'yes' as unknown as boolean }), (err) => err instanceof BrokerError && err.code === 'E_INVALID_ARGUMENT' && /compactFrames/.test(err.message));
  });
});
