import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect } from '../../clients/index.js';
import { encodeFrames, PROTOCOL_VERSION } from '../../protocol/index.js';
import { rawPeer } from '../helpers/raw.js';
import { startTestServer, waitFor } from '../helpers/server.js';

/** A frame with a valid length prefix but any op and header bytes. */
function handMadeFrame(op: number, header: string | Uint8Array, body = new Uint8Array(0)): Uint8Array {
  const h = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(9 + h.length + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 5 + h.length + body.length);
  out[4] = op;
  view.setUint32(5, h.length);
  out.set(h, 9);
  out.set(body, 9 + h.length);
  return out;
}

describe('bad frames', () => {
  it('answers malformed, unknown and invalid frames with error frames and stays up for everyone', async (t) => {
    const { url } = await startTestServer(t);
    const bystander = await connect(url);
    t.after(() => bystander.close());
    await bystander.assertQueue('calm');

    const peer = await rawPeer(url);
    t.after(() => peer.ws.terminate());

    peer.ws.send(new Uint8Array([1, 2, 3]));
    assert.equal((await peer.next('error')).code, 'E_FRAME_MALFORMED');

    peer.ws.send(handMadeFrame(99, '{}'));
    const unknown = await peer.next('error');
    assert.equal(unknown.code, 'E_FRAME_UNKNOWN_TYPE');
    assert.match(unknown.message, /op 99/);

    peer.ws.send(handMadeFrame(10, '{not json'));
    assert.equal((await peer.next('error')).code, 'E_FRAME_MALFORMED');

    peer.ws.send(handMadeFrame(10, JSON.stringify({ ref: 7, queue: 42 })));
    const invalid = await peer.next('error');
    assert.equal(invalid.code, 'E_FRAME_INVALID');
    assert.equal(invalid.ref, 7);
    assert.match(invalid.message, /queue/);

    peer.ws.send('text is not a frame');
    assert.equal((await peer.next('error')).code, 'E_FRAME_MALFORMED');

    peer.send({ type: 'confirm', upTo: 1 });
    assert.equal((await peer.next('error')).code, 'E_FRAME_UNEXPECTED');

    // A publish with a bad field is nacked by seq, so a producer's promise settles.
    peer.ws.send(handMadeFrame(20, JSON.stringify({ seq: 3, queue: 'calm', priority: 'high' }), new Uint8Array(4)));
    const nack = await peer.next('publish.nack');
    assert.equal(nack.seq, 3);
    assert.equal(nack.code, 'E_FRAME_INVALID');

    // Still usable after all that.
    peer.send({ type: 'queue.declare', ref: 8, queue: 'calm' });
    assert.equal((await peer.next('ok')).ref, 8);
    await bystander.publish('calm', 'fine');
  });

  it('nacks a publish whose body is over the limit and keeps the connection', async (t) => {
    const { url } = await startTestServer(t, { maxBodyBytes: 1024, maxFrameBytes: 1024 + 64 * 1024 + 9 });
    const peer = await rawPeer(url);
    t.after(() => peer.ws.terminate());
    peer.send({ type: 'queue.declare', ref: 1, queue: 'q' });
    await peer.next('ok');
    peer.send({ type: 'publish', seq: 1, queue: 'q', body: new Uint8Array(2048) });
    const nack = await peer.next('publish.nack');
    assert.equal(nack.code, 'E_MESSAGE_TOO_LARGE');
    peer.send({ type: 'publish', seq: 2, queue: 'q', body: new Uint8Array(10) });
    assert.equal((await peer.next('confirm')).upTo, 2);

    const conn = await connect(url);
    t.after(() => conn.close());
    await assert.rejects(conn.publish('q', new Uint8Array(2048)), { code: 'E_MESSAGE_TOO_LARGE' });
  });

  it('closes a connection whose WebSocket message exceeds maxFrameBytes (1009), other clients unaffected', async (t) => {
    const { url, broker } = await startTestServer(t, { maxBodyBytes: 1024, maxFrameBytes: 1024 + 64 * 1024 + 9 });
    const bystander = await connect(url);
    t.after(() => bystander.close());
    await bystander.assertQueue('q');
    const peer = await rawPeer(url);
    peer.ws.send(new Uint8Array(200 * 1024));
    const { code } = await peer.closed;
    assert.equal(code, 1009);
    await bystander.publish('q', 'still here');
    await waitFor(() => broker.connectionCount === 1, { what: 'the closed peer to be dropped' });
  });

  it('closes a connection that sends more than the handshake limit before hello', async (t) => {
    const { url } = await startTestServer(t);
    const peer = await rawPeer(url, { handshake: false });
    peer.ws.send(new Uint8Array(100 * 1024));
    const { code, reason } = await peer.closed;
    assert.equal(code, 1009);
    assert.equal(reason, 'E_FRAME_TOO_LARGE');
  });

  it('nacks a publish whose seq does not increase, so cumulative confirms stay truthful', async (t) => {
    const { url } = await startTestServer(t);
    const peer = await rawPeer(url);
    t.after(() => peer.ws.terminate());
    peer.send({ type: 'queue.declare', ref: 1, queue: 'q' });
    await peer.next('ok');
    peer.send({ type: 'publish', seq: 5, queue: 'q', body: new Uint8Array(1) });
    assert.equal((await peer.next('confirm')).upTo, 5);
    peer.send({ type: 'publish', seq: 4, queue: 'q', body: new Uint8Array(1) });
    const nack = await peer.next('publish.nack');
    assert.equal(nack.seq, 4);
    assert.match(nack.message, /must be greater/);
  });

  it('closes a connection whose first message is text', async (t) => {
    const { url } = await startTestServer(t);
    const peer = await rawPeer(url, { handshake: false });
    peer.ws.send('hello?');
    assert.equal((await peer.next('error')).code, 'E_HANDSHAKE_REQUIRED');
    assert.equal((await peer.closed).code, 4003);
  });

  it('requires hello first, and refuses an unknown protocol version', async (t) => {
    const { url } = await startTestServer(t);
    const early = await rawPeer(url, { handshake: false });
    early.send({ type: 'queue.declare', ref: 1, queue: 'q' });
    assert.equal((await early.next('error')).code, 'E_HANDSHAKE_REQUIRED');
    assert.equal((await early.closed).code, 4003);

    const future = await rawPeer(url, { handshake: false });
    future.ws.send(encodeFrames([{ type: 'hello', version: PROTOCOL_VERSION + 1 }]));
    assert.equal((await future.next('error')).code, 'E_PROTOCOL_VERSION');
    assert.equal((await future.closed).code, 4003);
  });
});

describe('authentication', () => {
  it('admits a client with the right token and refuses a wrong or missing one', async (t) => {
    const { url } = await startTestServer(t, { token: 's3cret' });
    const good = await connect(url, { token: 's3cret' });
    t.after(() => good.close());
    await good.assertQueue('q');
    await assert.rejects(connect(url, { token: 'wrong' }), { code: 'E_AUTH_FAILED' });
    await assert.rejects(connect(url), { code: 'E_AUTH_FAILED' });
  });
});

describe('heartbeats', () => {
  it('drops a peer that goes silent and redelivers what it held', async (t) => {
    const { url, broker } = await startTestServer(t, { heartbeatMs: 200 });
    const producer = await connect(url);
    t.after(() => producer.close());
    await producer.assertQueue('hb');
    await producer.publish('hb', 'x');

    const silent = await rawPeer(url);
    silent.send({ type: 'consume', ref: 1, queue: 'hb', consumerTag: 'c', prefetch: 1 });
    const delivery = await silent.next('deliver');
    assert.equal(delivery.redelivered, false);
    const started = Date.now();
    const { code } = await silent.closed; // it never answers heartbeats
    const silentFor = Date.now() - started;
    assert.equal(code, 4002);
    assert.ok(silentFor < 2000, `dropped after ${silentFor} ms; heartbeat is 200 ms`);
    await waitFor(() => broker.engine.queueStats().find((q) => q.name === 'hb')?.ready === 1, { what: 'the message to be ready again' });
  });

  it('uses the lower heartbeat interval when the client asks for one', async (t) => {
    const { url } = await startTestServer(t, { heartbeatMs: 5000 });
    const peer = await rawPeer(url, { handshake: false });
    t.after(() => peer.ws.terminate());
    peer.send({ type: 'hello', version: PROTOCOL_VERSION, heartbeatMs: 600 });
    assert.equal((await peer.next('welcome')).heartbeatMs, 600);
    await peer.next('heartbeat', 2000);
  });

  it('keeps an idle SDK connection alive across many heartbeat intervals', async (t) => {
    const { url, broker } = await startTestServer(t, { heartbeatMs: 100 });
    const conn = await connect(url);
    t.after(() => conn.close());
    let closed = false;
    void conn.closed.then(() => (closed = true));
    const until = Date.now() + 800;
    await waitFor(() => Date.now() > until, { what: '8 heartbeat intervals' });
    assert.equal(closed, false);
    assert.equal(broker.connectionCount, 1);
    await conn.assertQueue('still-alive');
  });
});

describe('http', () => {
  it('serves /healthz and per-queue gauges and counters on /metrics', async (t) => {
    const { url } = await startTestServer(t);
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('metered');
    await Promise.all([conn.publish('metered', 'a'), conn.publish('metered', 'b')]);
    const http = url.replace('ws://', 'http://');
    const health = await fetch(`${http}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'ok');
    const metrics = await (await fetch(`${http}/metrics`)).text();
    assert.match(metrics, /berth_queue_messages_ready\{queue="metered"\} 2/);
    assert.match(metrics, /berth_queue_messages_unacked\{queue="metered"\} 0/);
    assert.match(metrics, /berth_messages_published_total\{queue="metered"\} 2/);
    assert.match(metrics, /berth_connections 1/);
  });
});
