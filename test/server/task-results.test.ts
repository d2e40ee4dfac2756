/**
 * Task results and revocation against a real broker [PROTO §5.18–§5.20]: states and payloads,
 * the terminal rule, PENDING at publish, waiting reads, revocation of ready, delayed and held
 * deliveries (also across a restart), expiry, and bad input.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { connect, type Message } from '../../clients/index.js';
import { encodeFrames } from '../../protocol/index.js';
import { startBroker } from '../../server/index.js';
import { databasePath } from '../../server/options.js';
import { openSqliteStore } from '../../storage/index.js';
import { rawPeer } from '../helpers/raw.js';
import { freePort, startTestServer, tempDir, waitFor } from '../helpers/server.js';

const HOUR = 3_600_000;
const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array | null): string | null => (bytes === null ? null : new TextDecoder().decode(bytes));

async function setup(t: TestContext, serverOptions: Parameters<typeof startTestServer>[1] = {}) {
  const server = await startTestServer(t, serverOptions);
  const conn = await connect(server.url);
  t.after(() => conn.close());
  const other = await connect(server.url);
  t.after(() => other.close());
  const stats = (queue: string) => server.broker.engine.queueStats().find((q) => q.name === queue)!;
  return { ...server, conn, other, stats };
}

describe('task results', () => {
  it('stores a state with its payload and reads it back', async (t) => {
    const { conn } = await setup(t);
    const before = Date.now();
    assert.deepEqual(await conn.putResult('t1', 'STARTED', { ttlMs: HOUR }), { stored: true });
    assert.deepEqual(await conn.putResult('t1', 'SUCCESS', { payload: enc('{"sum":5}'), ttlMs: HOUR }), { stored: true });
    const result = await conn.getResult('t1');
    assert.equal(result.taskId, 't1');
    assert.equal(result.state, 'SUCCESS');
    assert.equal(dec(result.payload), '{"sum":5}');
    assert.ok(result.updatedAt! >= before && result.updatedAt! <= Date.now());
    assert.ok(result.expiresAt! >= before + HOUR && result.expiresAt! <= Date.now() + HOUR);
  });

  it('answers NOT_FOUND for a task it has no row for', async (t) => {
    const { conn } = await setup(t);
    assert.deepEqual(await conn.getResult('never-stored'), { taskId: 'never-stored', state: 'NOT_FOUND', payload: null });
  });

  it('stores no payload for an empty one', async (t) => {
    const { conn } = await setup(t);
    await conn.putResult('empty', 'FAILURE', { payload: new Uint8Array(0), ttlMs: HOUR });
    const result = await conn.getResult('empty');
    assert.equal(result.state, 'FAILURE');
    assert.equal(result.payload, null);
  });

  it('never overwrites a terminal state: later puts answer stored: false', async (t) => {
    const { conn, other } = await setup(t);
    await conn.putResult('once', 'SUCCESS', { payload: enc('first'), ttlMs: HOUR });
    const first = await conn.getResult('once');
    assert.deepEqual(await other.putResult('once', 'SUCCESS', { payload: enc('again'), ttlMs: HOUR }), { stored: false });
    assert.deepEqual(await other.putResult('once', 'STARTED', { ttlMs: HOUR }), { stored: false });
    assert.deepEqual(await other.putResult('once', 'FAILURE', { ttlMs: HOUR }), { stored: false });
    assert.deepEqual(await conn.getResult('once'), first);
  });

  it('with noReply, stores the state and answers nothing, but still answers a refusal with an error naming the put', async (t) => {
    const { url, conn } = await setup(t);
    const peer = await rawPeer(url);
    t.after(() => peer.ws.terminate());
    peer.send(
      { type: 'result.put', ref: 7, taskId: 'quiet', state: 'SUCCESS', ttlMs: HOUR, noReply: true, body: enc('42') },
      { type: 'result.put', ref: 8, taskId: 'quiet-bad', state: 'SUCCESS', ttlMs: 0, noReply: true, body: enc('') },
      { type: 'result.get', ref: 9, taskId: 'quiet' },
    );
    const error = await peer.next('error');
    assert.deepEqual({ code: error.code, ref: error.ref }, { code: 'E_FRAME_INVALID', ref: 8 });
    const reply = await peer.next('result');
    assert.deepEqual({ ref: reply.ref, state: reply.state, body: dec(reply.body) }, { ref: 9, state: 'SUCCESS', body: '42' });
    assert.deepEqual(peer.frames.map((f) => f.type), [], 'no ok for the noReply put');
    assert.equal((await conn.getResult('quiet')).state, 'SUCCESS');
  });

  it('sendResult stores without a reply; a refusal goes to onError, and a bad payload or a closed connection throws', async (t) => {
    const server = await startTestServer(t, { maxBodyBytes: 1024, maxFrameBytes: 1024 + 64 * 1024 + 9 });
    const errors: Array<{ code: string }> = [];
    const conn = await connect(server.url, { onError: (err) => errors.push(err) });
    t.after(() => conn.close());
    conn.sendResult('sent', 'SUCCESS', { payload: enc('"done"'), ttlMs: HOUR });
    const read = await conn.getResult('sent');
    assert.deepEqual({ state: read.state, payload: dec(read.payload) }, { state: 'SUCCESS', payload: '"done"' });
    conn.sendResult('', 'SUCCESS', { ttlMs: HOUR });
    await waitFor(() => errors.length === 1, { what: 'the refusal reported to onError' });
    assert.equal(errors[0]!.code, 'E_FRAME_INVALID');
    assert.throws(() => conn.sendResult('big', 'SUCCESS', { payload: new Uint8Array(2048), ttlMs: HOUR }), { code: 'E_MESSAGE_TOO_LARGE' });
    assert.throws(() => conn.sendResult('odd', 'SUCCESS', { payload: 'text' as never, ttlMs: HOUR }), { code: 'E_INVALID_ARGUMENT' });
    assert.equal(conn.state, 'open');
    await conn.close();
    assert.throws(() => conn.sendResult('late', 'SUCCESS', { ttlMs: HOUR }), { code: 'E_CONNECTION_CLOSED' });
  });

  it('reads a put sent just before it without waiting for the put\'s reply', async (t) => {
    const { conn } = await setup(t);
    const put = conn.putResult('pipelined', 'SUCCESS', { payload: enc('5'), ttlMs: HOUR });
    const got = conn.getResult('pipelined');
    const [result] = await Promise.all([got, put]);
    assert.equal(result.state, 'SUCCESS');
    assert.equal(dec(result.payload), '5');
  });
});

describe('PENDING at publish', () => {
  it('writes PENDING in the publish\'s commit when resultTtlMs and a task-id header are given', async (t) => {
    const { conn } = await setup(t);
    await conn.assertQueue('tasks');
    const before = Date.now();
    await conn.publish('tasks', 'job', { headers: { 'task-id': 'p1' }, resultTtlMs: 60_000 });
    const pending = await conn.getResult('p1');
    assert.equal(pending.state, 'PENDING');
    assert.equal(pending.payload, null);
    assert.ok(pending.expiresAt! >= before + 60_000 && pending.expiresAt! <= Date.now() + 60_000);

    await conn.publish('tasks', 'job', { headers: { 'task-id': 'p2' } });
    assert.equal((await conn.getResult('p2')).state, 'NOT_FOUND', 'no row without resultTtlMs');
  });

  it('keeps an existing row, and a duplicate publish writes nothing', async (t) => {
    const { conn } = await setup(t);
    await conn.assertQueue('tasks');
    await conn.putResult('p3', 'STARTED', { ttlMs: HOUR });
    await conn.publish('tasks', 'retry', { headers: { 'task-id': 'p3' }, resultTtlMs: 60_000 });
    assert.equal((await conn.getResult('p3')).state, 'STARTED');

    await conn.publish('tasks', 'job', { messageId: 'dup', headers: { 'task-id': 'p4' } });
    const again = await conn.publish('tasks', 'job', { messageId: 'dup', headers: { 'task-id': 'p4' }, resultTtlMs: 60_000 });
    assert.equal(again.duplicate, true);
    assert.equal((await conn.getResult('p4')).state, 'NOT_FOUND');
  });
});

describe('waiting for a result', () => {
  it('answers a waiting get as soon as another connection stores a terminal state', async (t) => {
    const { conn, other, broker } = await setup(t);
    await conn.putResult('w1', 'STARTED', { ttlMs: HOUR });
    const started = Date.now();
    const waiting = conn.getResult('w1', { waitMs: 10_000 });
    await waitFor(() => broker.engine.resultWaiterCount === 1, { what: 'the get to wait' });
    await other.putResult('w1', 'RETRY', { ttlMs: HOUR });
    assert.equal(broker.engine.resultWaiterCount, 1, 'a non-terminal state does not answer it');
    await other.putResult('w1', 'SUCCESS', { payload: enc('done'), ttlMs: HOUR });
    const result = await waiting;
    assert.equal(result.state, 'SUCCESS');
    assert.equal(dec(result.payload), 'done');
    assert.ok(Date.now() - started < 5000, `answered after ${Date.now() - started} ms`);
    assert.equal(broker.engine.resultWaiterCount, 0);
  });

  it('wakes a get waiting on a task with no row yet', async (t) => {
    const { conn, other, broker } = await setup(t);
    const waiting = conn.getResult('w2', { waitMs: 10_000 });
    await waitFor(() => broker.engine.resultWaiterCount === 1, { what: 'the get to wait' });
    await other.putResult('w2', 'FAILURE', { payload: enc('boom'), ttlMs: HOUR });
    assert.equal((await waiting).state, 'FAILURE');
  });

  it('answers with the current state once waitMs passes', async (t) => {
    const { conn, broker } = await setup(t);
    await conn.putResult('w3', 'STARTED', { payload: enc('10%'), ttlMs: HOUR });
    const started = Date.now();
    const result = await conn.getResult('w3', { waitMs: 300 });
    const elapsed = Date.now() - started;
    assert.equal(result.state, 'STARTED');
    assert.equal(dec(result.payload), '10%');
    assert.ok(elapsed >= 290, `answered after ${elapsed} ms`);
    const none = await conn.getResult('w4', { waitMs: 100 });
    assert.equal(none.state, 'NOT_FOUND');
    assert.equal(broker.engine.resultWaiterCount, 0);
  });

  it('answers at once when the state is terminal already', async (t) => {
    const { conn } = await setup(t);
    await conn.putResult('w5', 'SUCCESS', { ttlMs: HOUR });
    const started = Date.now();
    assert.equal((await conn.getResult('w5', { waitMs: 60_000 })).state, 'SUCCESS');
    assert.ok(Date.now() - started < 5000);
  });

  it('drops the waiting gets of a connection that closes', async (t) => {
    const { url, broker } = await setup(t);
    const leaving = await connect(url);
    const waiting = leaving.getResult('w6', { waitMs: 60_000 });
    await waitFor(() => broker.engine.resultWaiterCount === 1, { what: 'the get to wait' });
    await leaving.close();
    await assert.rejects(waiting, { code: 'E_CONNECTION_CLOSED' });
    await waitFor(() => broker.engine.resultWaiterCount === 0, { what: 'the waiter to be dropped' });
  });

  it('keeps waiting across a broker restart: the read is sent again once reconnected', async (t) => {
    const dataDir = tempDir(t);
    const logger = pino({ level: 'silent' });
    const port = await freePort();
    const first = await startBroker({ port, dataDir, logger });
    const conn = await connect(first.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 100, maxAttempts: Infinity } });
    t.after(() => conn.close());
    await conn.putResult('rc', 'STARTED', { ttlMs: HOUR });
    const waiting = conn.getResult('rc', { waitMs: 20_000 });
    await waitFor(() => first.engine.resultWaiterCount === 1, { what: 'the get to wait' });
    await first.close();

    const second = await startBroker({ port, dataDir, logger });
    t.after(() => second.close());
    await waitFor(() => second.engine.resultWaiterCount === 1, { what: 'the get to wait again on the new broker' });
    const worker = await connect(second.url);
    t.after(() => worker.close());
    await worker.putResult('rc', 'SUCCESS', { payload: enc('after restart'), ttlMs: HOUR });
    const result = await waiting;
    assert.equal(result.state, 'SUCCESS');
    assert.equal(dec(result.payload), 'after restart');
  });

  it('refuses more waiting gets than maxResultWaiters per connection, and stays usable', async (t) => {
    const { conn, other, broker } = await setup(t, { maxResultWaiters: 2 });
    const first = conn.getResult('w7', { waitMs: 10_000 });
    const second = conn.getResult('w8', { waitMs: 10_000 });
    await waitFor(() => broker.engine.resultWaiterCount === 2, { what: 'two gets to wait' });
    await assert.rejects(conn.getResult('w9', { waitMs: 10_000 }), { code: 'E_RESULT_WAIT_LIMIT' });
    assert.equal((await conn.getResult('w9')).state, 'NOT_FOUND', 'a get without a wait is not limited');
    const elsewhere = other.getResult('w9', { waitMs: 100 });
    assert.equal((await elsewhere).state, 'NOT_FOUND', 'the limit is per connection');
    await other.putResult('w7', 'SUCCESS', { ttlMs: HOUR });
    await other.putResult('w8', 'REVOKED', { ttlMs: HOUR });
    assert.deepEqual((await Promise.all([first, second])).map((r) => r.state), ['SUCCESS', 'REVOKED']);
  });
});

describe('revocation', () => {
  it('never delivers ready or delayed messages of a revoked task, and marks it REVOKED', async (t) => {
    const { url, conn, other, stats } = await setup(t);
    await conn.assertQueue('jobs');
    await conn.publish('jobs', 'revoked now', { headers: { 'task-id': 'r1' }, resultTtlMs: HOUR });
    await conn.publish('jobs', 'revoked later', { headers: { 'task-id': 'r1' }, delayMs: 300 });
    await conn.publish('jobs', 'kept now', { headers: { 'task-id': 'k1' } });
    await conn.publish('jobs', 'kept later', { headers: { 'task-id': 'k2' }, delayMs: 300 });
    assert.equal((await conn.getResult('r1')).state, 'PENDING');
    await other.revoke('r1');
    assert.equal((await conn.getResult('r1')).state, 'REVOKED');

    const got: string[] = [];
    await conn.consume('jobs', (m) => {
      got.push(m.text());
    });
    await waitFor(() => got.length === 2 && stats('jobs').stats.revoked === 2, { what: 'both kept messages and both revoked ones to go' });
    assert.deepEqual(got.sort(), ['kept later', 'kept now']);
    await waitFor(() => stats('jobs').ready + stats('jobs').delayed + stats('jobs').unacked === 0, { what: 'the queue to empty' });
    assert.equal(stats('jobs').stats.deadLettered, 0);
    const metrics = await (await fetch(`${url.replace('ws://', 'http://')}/metrics`)).text();
    assert.match(metrics, /^berth_messages_revoked_total\{queue="jobs"\} 2$/m);
    assert.match(metrics, /^berth_revoked_tasks 1$/m);
    // A worker that finishes anyway cannot undo the revoke.
    assert.deepEqual(await conn.putResult('r1', 'SUCCESS', { ttlMs: HOUR }), { stored: false });
    assert.equal((await conn.getResult('r1')).state, 'REVOKED');
  });

  it('answers a get waiting on the task with REVOKED', async (t) => {
    const { conn, other, broker } = await setup(t);
    const waiting = conn.getResult('r2', { waitMs: 10_000 });
    await waitFor(() => broker.engine.resultWaiterCount === 1, { what: 'the get to wait' });
    await other.revoke('r2');
    assert.equal((await waiting).state, 'REVOKED');
  });

  it('leaves a finished task\'s state as it is', async (t) => {
    const { conn } = await setup(t);
    await conn.putResult('r3', 'SUCCESS', { payload: enc('5'), ttlMs: HOUR });
    await conn.revoke('r3');
    assert.equal((await conn.getResult('r3')).state, 'SUCCESS');
  });

  it('tells the consumer holding a delivery: its signal aborts and revoked carries terminate', async (t) => {
    const { conn, other } = await setup(t);
    await conn.assertQueue('held');
    const held = new Map<string, Message>();
    await conn.consume('held', (m) => {
      held.set(m.headers['task-id'] as string, m);
      return new Promise<void>(() => {}); // settled by hand below
    }, { prefetch: 10 });
    for (const id of ['h-terminate', 'h-soft', 'h-other']) await conn.publish('held', id, { headers: { 'task-id': id } });
    await waitFor(() => held.size === 3, { what: 'three deliveries' });
    const hard = held.get('h-terminate')!;
    const soft = held.get('h-soft')!;
    const untouched = held.get('h-other')!;
    assert.equal(hard.revoked, null);
    const hardSignal = hard.signal; // made before the revoke
    assert.equal(hardSignal.aborted, false);
    const aborted = new Promise<void>((resolve) => hardSignal.addEventListener('abort', () => resolve(), { once: true }));

    await other.revoke('h-terminate', { terminate: true });
    await aborted;
    assert.deepEqual(hard.revoked, { terminate: true });
    assert.equal((hardSignal.reason as { code?: string }).code, 'E_TASK_REVOKED');

    await other.revoke('h-soft');
    await waitFor(() => soft.revoked !== null, { what: 'the soft revoke to arrive' });
    assert.deepEqual(soft.revoked, { terminate: false });
    assert.equal(soft.signal.aborted, true, 'a signal made after the revoke is aborted already');
    assert.equal((soft.signal.reason as { code?: string }).code, 'E_TASK_REVOKED');

    assert.equal(untouched.revoked, null);
    assert.equal(untouched.signal.aborted, false);
    await Promise.all([hard.ack(), soft.ack(), untouched.ack()]);
    assert.equal((await conn.getResult('h-terminate')).state, 'REVOKED');
  });

  it('keeps a revocation across a broker restart', async (t) => {
    const dataDir = tempDir(t);
    const logger = pino({ level: 'silent' });
    const first = await startBroker({ port: 0, dataDir, logger });
    const conn = await connect(first.url, { reconnect: false }); // this test restarts the broker itself
    await conn.assertQueue('jobs');
    await conn.publish('jobs', 'before restart', { headers: { 'task-id': 'survivor' } });
    await conn.revoke('survivor', { ttlMs: HOUR });
    await first.close();
    await conn.closed;

    const second = await startBroker({ port: 0, dataDir, logger });
    t.after(() => second.close());
    assert.equal(second.engine.revokedCount, 1);
    const again = await connect(second.url);
    t.after(() => again.close());
    assert.equal((await again.getResult('survivor')).state, 'REVOKED');
    await again.publish('jobs', 'after restart', { headers: { 'task-id': 'survivor' } });
    await again.publish('jobs', 'marker', { headers: { 'task-id': 'other' } });
    const got: string[] = [];
    await again.consume('jobs', (m) => {
      got.push(m.text());
    });
    const stats = () => second.engine.queueStats().find((q) => q.name === 'jobs')!;
    await waitFor(() => got.length === 1 && stats().stats.revoked === 2, { what: 'the marker and both revoked copies' });
    assert.deepEqual(got, ['marker']);
  });
});

describe('expiry', () => {
  it('deletes results after their TTL and forgets expired revocations', async (t) => {
    const { conn, broker, dataDir, stats } = await setup(t, { resultSweepMs: 50 });
    await conn.putResult('short', 'SUCCESS', { payload: enc('x'), ttlMs: 300 });
    await conn.putResult('long', 'SUCCESS', { ttlMs: HOUR });
    await conn.revoke('brief', { ttlMs: 300 });
    assert.equal((await conn.getResult('short')).state, 'SUCCESS');
    assert.equal(broker.engine.revokedCount, 1);

    await waitFor(async () => (await conn.getResult('short')).state === 'NOT_FOUND', { timeoutMs: 5000, what: 'the result to expire' });
    // One sweep forgets expired revocations and then deletes expired rows: once 'brief' is
    // forgotten, its row and the older 'short' are gone from the database (checked below).
    await waitFor(() => broker.engine.revokedCount === 0, { timeoutMs: 5000, what: 'the revocation to be forgotten' });

    // Gone means gone: the id is free again, and its messages are delivered.
    assert.deepEqual(await conn.putResult('short', 'STARTED', { ttlMs: HOUR }), { stored: true });
    await conn.assertQueue('after');
    await conn.publish('after', 'runs', { headers: { 'task-id': 'brief' } });
    const delivered = await new Promise<string>((resolve) => void conn.consume('after', (m) => resolve(m.text())));
    assert.equal(delivered, 'runs');
    assert.equal(stats('after').stats.revoked, 0);

    // The sweep deleted the rows themselves: look in the database, which the broker holds
    // exclusively while it runs. An expired REVOKED row left in place would still be there.
    await broker.close();
    const reader = openSqliteStore({ path: databasePath(dataDir) });
    t.after(() => reader.close());
    assert.equal(reader.getResult('brief'), null);
    assert.equal(reader.getResult('short')?.state, 'STARTED');
    assert.equal(reader.getResult('long')?.state, 'SUCCESS');
  });
});

describe('bad input', () => {
  it('refuses bad ids, states, TTLs and waits with a clear code and keeps the connection', async (t) => {
    const { conn } = await setup(t);
    await assert.rejects(conn.putResult('', 'SUCCESS', { ttlMs: HOUR }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'E_FRAME_INVALID');
      assert.match(err.message, /taskId/);
      return true;
    });
    await assert.rejects(conn.putResult('t', 'DONE' as never, { ttlMs: HOUR }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'E_FRAME_INVALID');
      assert.match(err.message, /state/);
      return true;
    });
    await assert.rejects(conn.putResult('t', 'NOT_FOUND' as never, { ttlMs: HOUR }), { code: 'E_FRAME_INVALID' });
    await assert.rejects(conn.putResult('t', 'SUCCESS', { ttlMs: 0 }), { code: 'E_FRAME_INVALID' });
    await assert.rejects(conn.putResult('x'.repeat(201), 'SUCCESS', { ttlMs: HOUR }), { code: 'E_FRAME_INVALID' });
    await assert.rejects(conn.getResult(''), { code: 'E_FRAME_INVALID' });
    await assert.rejects(conn.getResult('t', { waitMs: 300_001 }), { code: 'E_INVALID_ARGUMENT' });
    await assert.rejects(conn.getResult('t', { waitMs: -1 }), { code: 'E_INVALID_ARGUMENT' });
    await assert.rejects(conn.revoke(''), { code: 'E_FRAME_INVALID' });
    await assert.rejects(conn.revoke('t', { ttlMs: 0 }), { code: 'E_FRAME_INVALID' });
    await conn.assertQueue('q');
    await assert.rejects(conn.publish('q', 'x', { headers: { 'task-id': 'y'.repeat(201) }, resultTtlMs: HOUR }), { code: 'E_FRAME_INVALID' });
    await assert.rejects(conn.publish('q', 'x', { headers: { 'task-id': 'ok' }, resultTtlMs: 0 }), { code: 'E_FRAME_INVALID' });
    // Still usable after all that.
    assert.deepEqual(await conn.putResult('t', 'SUCCESS', { ttlMs: HOUR }), { stored: true });
    assert.equal((await conn.getResult('t')).state, 'SUCCESS');
    assert.equal(conn.state, 'open');
  });

  it('refuses a payload over maxBodyBytes, in the SDK and on the wire', async (t) => {
    const { url, conn } = await setup(t, { maxBodyBytes: 1024, maxFrameBytes: 1024 + 64 * 1024 + 9 });
    await assert.rejects(conn.putResult('big', 'SUCCESS', { payload: new Uint8Array(2048), ttlMs: HOUR }), { code: 'E_MESSAGE_TOO_LARGE' });
    const peer = await rawPeer(url);
    t.after(() => peer.ws.terminate());
    peer.send({ type: 'result.put', ref: 3, taskId: 'big', state: 'SUCCESS', ttlMs: HOUR, body: new Uint8Array(2048) });
    const error = await peer.next('error');
    assert.equal(error.code, 'E_MESSAGE_TOO_LARGE');
    assert.equal(error.ref, 3);
    peer.send({ type: 'result.get', ref: 4, taskId: 'big' });
    const reply = await peer.next('result');
    assert.deepEqual({ ref: reply.ref, state: reply.state, body: reply.body.length }, { ref: 4, state: 'NOT_FOUND', body: 0 });
  });

  it('answers broker-only task frames from a client with E_FRAME_UNEXPECTED', async (t) => {
    const { url } = await startTestServer(t);
    const peer = await rawPeer(url);
    t.after(() => peer.ws.terminate());
    peer.ws.send(encodeFrames([{ type: 'result', ref: 9, taskId: 't', state: 'SUCCESS', body: new Uint8Array(0) }]));
    const unexpected = await peer.next('error');
    assert.equal(unexpected.code, 'E_FRAME_UNEXPECTED');
    assert.equal(unexpected.ref, 9);
    peer.send({ type: 'revoked', consumerTag: 'c', deliveryTag: 1, taskId: 't', terminate: false });
    assert.equal((await peer.next('error')).code, 'E_FRAME_UNEXPECTED');
    peer.send({ type: 'task.revoke', ref: 10, taskId: 't' });
    const ok = await peer.next('ok');
    assert.deepEqual([ok.ref, ok.stored], [10, true]);
  });
});
