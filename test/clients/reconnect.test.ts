/**
 * The SDK against real brokers that die: a spawned `berth serve` is killed with
 * SIGKILL and started again on the same port and data, and the connection is
 * expected to reconnect by itself, resend what was unconfirmed (deduplicated by
 * messageId), resume its consumers, and give up cleanly when it must.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { BrokerError, connect, type Connection, type ConnectionStatus, type ConnectOptions, type Message } from '../../clients/index.js';
import { freePort, spawnServer, tempDir, waitFor, type ServerProcess } from '../helpers/server.js';

/** A broker on a fixed port and data dir that a test can kill -9 and start again. */
interface Restartable {
  url: string;
  current: ServerProcess;
  kill(): Promise<void>;
  start(extraArgs?: string[]): Promise<void>;
}

async function setup(t: TestContext, extraArgs: string[] = []): Promise<Restartable> {
  const dataDir = tempDir(t);
  const port = await freePort();
  // spawnServer passes `--port 0` first; the CLI takes the last value of a repeated option.
  const args = (more: string[]): string[] => ['--port', String(port), ...more];
  const first = await spawnServer(dataDir, args(extraArgs));
  const broker: Restartable = {
    url: first.url,
    current: first,
    async kill() {
      broker.current.child.kill('SIGKILL');
      await broker.current.exited;
    },
    async start(more = extraArgs) {
      broker.current = await spawnServer(dataDir, args(more));
      assert.equal(broker.current.url, broker.url);
    },
  };
  t.after(() => broker.current.child.kill('SIGKILL'));
  return broker;
}

/** Connects with quick reconnects (tests should not wait out production backoff) and records statuses. */
async function connectRecording(t: TestContext, url: string, options: ConnectOptions = {}): Promise<{ conn: Connection; statuses: ConnectionStatus[] }> {
  const statuses: ConnectionStatus[] = [];
  const conn = await connect(url, {
    reconnect: { initialDelayMs: 50, maxDelayMs: 400, maxAttempts: Infinity },
    onStatus: (s) => statuses.push(s),
    ...options,
  });
  t.after(() => conn.close());
  return { conn, statuses };
}

const count = (statuses: ConnectionStatus[], type: ConnectionStatus['type']): number => statuses.filter((s) => s.type === type).length;

describe('reconnect after kill -9', () => {
  it('resends in-flight publishes across restarts; every publish resolves and is stored exactly once', async (t) => {
    const broker = await setup(t);
    const MAX_UNCONFIRMED = 200;
    const TOTAL = 5000;
    const KILLS = 3;
    const { conn, statuses } = await connectRecording(t, broker.url, { maxUnconfirmed: MAX_UNCONFIRMED, publishDeadlineMs: 60_000 });
    await conn.assertQueue('orders');

    let resolved = 0;
    let duplicates = 0;
    let maxUnconfirmed = 0;
    // All at once: backpressure keeps at most MAX_UNCONFIRMED on the wire or held, the rest wait.
    const publishes = Array.from({ length: TOTAL }, (_, i) =>
      conn.publish('orders', `m${i}`).then((r) => {
        resolved++;
        if (r.duplicate) duplicates++;
        maxUnconfirmed = Math.max(maxUnconfirmed, conn.unconfirmed);
      }),
    );
    for (let kill = 1; kill <= KILLS; kill++) {
      await waitFor(() => resolved >= kill * 1000, { timeoutMs: 30_000, what: `${kill * 1000} confirmed publishes` });
      await broker.kill();
      await waitFor(() => conn.state === 'reconnecting', { what: 'the client to notice the kill' });
      assert.ok(conn.unconfirmed > 0 && conn.unconfirmed <= MAX_UNCONFIRMED, `unconfirmed at the kill: ${conn.unconfirmed}`);
      maxUnconfirmed = Math.max(maxUnconfirmed, conn.unconfirmed);
      await broker.start();
    }

    await Promise.all(publishes); // none rejects
    assert.equal(resolved, TOTAL);
    assert.equal(conn.state, 'open');
    assert.ok(maxUnconfirmed <= MAX_UNCONFIRMED, `unconfirmed grew to ${maxUnconfirmed}`);
    assert.equal(count(statuses, 'disconnected'), KILLS);
    assert.equal(count(statuses, 'reconnected'), KILLS);
    assert.equal(count(statuses, 'closed'), 0);

    // Exactly once: the queue holds TOTAL messages and each body once.
    assert.equal((await conn.assertQueue('orders')).messages, TOTAL);
    const seen = new Map<string, number>();
    await conn.consume('orders', (m) => {
      seen.set(m.text(), (seen.get(m.text()) ?? 0) + 1);
    }, { prefetch: 1000 });
    await waitFor(() => seen.size === TOTAL, { timeoutMs: 20_000, what: `all ${TOTAL} messages` });
    for (let i = 0; i < TOTAL; i++) assert.equal(seen.get(`m${i}`), 1, `m${i}`);
    t.diagnostic(`resent publishes confirmed as duplicates (stored before a kill, confirm lost): ${duplicates}`);
  });

  it('resumes a consumer, which gets what is published after the restart; old deliveries cannot be settled', async (t) => {
    const broker = await setup(t);
    const { conn, statuses } = await connectRecording(t, broker.url);
    await conn.assertQueue('jobs', { visibilityTimeoutMs: 60_000 });
    const got: Message[] = [];
    let held: Message | undefined;
    const sub = await conn.consume('jobs', async (m) => {
      got.push(m);
      if (m.text() === 'held' && held === undefined) {
        held = m;
        await new Promise(() => {}); // unsettled when the broker dies
      }
    }, { prefetch: 5, consumerTag: 'worker-1' });
    await conn.publish('jobs', 'before');
    await conn.publish('jobs', 'held');
    await waitFor(() => held !== undefined && got.some((m) => m.text() === 'before'), { what: 'both deliveries' });

    await broker.kill();
    await waitFor(() => conn.state === 'reconnecting', { what: 'the client to notice the kill' });
    // Made while reconnecting: waits for the connection instead of failing.
    const declared = conn.assertQueue('declared-meanwhile');
    await broker.start();
    await waitFor(() => conn.state === 'open', { timeoutMs: 10_000, what: 'the reconnect' });
    await declared;

    // Delivery tags belong to the lost connection: never sent on the new one.
    await assert.rejects(held!.ack(), (err: BrokerError) => err.code === 'E_CONNECTION_CLOSED' && /lost/.test(err.message));
    // The broker gives the held message back; the resumed consumer (same tag) gets it again.
    await waitFor(() => got.filter((m) => m.text() === 'held').length === 2, { what: 'the held message, delivered again' });

    const producer = await connect(broker.url);
    t.after(() => producer.close());
    await producer.publish('jobs', 'after');
    await waitFor(() => got.some((m) => m.text() === 'after'), { what: 'a message published after the restart' });
    assert.deepEqual(got.filter((m) => m.text() === 'before').length, 1, 'the acked message came back');
    assert.equal(sub.consumerTag, 'worker-1');
    assert.equal(count(statuses, 'reconnected'), 1);

    // The subscription still works on the new connection.
    await sub.cancel();
    await producer.publish('jobs', 'after-cancel');
    assert.equal((await producer.assertQueue('jobs')).consumers, 0);
  });
});

describe('reconnect after a graceful restart', () => {
  it('rides out SIGTERM (close 1001, E_SHUTTING_DOWN) and a restart: publishes resolve, the consumer resumes', async (t) => {
    const broker = await setup(t);
    const errors: string[] = [];
    const { conn, statuses } = await connectRecording(t, broker.url, { maxUnconfirmed: 50, onError: (e) => errors.push(e.code) });
    await conn.assertQueue('deploys');
    const received = new Set<string>();
    await conn.consume('deploys', (m) => {
      received.add(m.text());
    });
    const TOTAL = 2000;
    let resolved = 0;
    const publishes = Array.from({ length: TOTAL }, (_, i) => conn.publish('deploys', `d${i}`).then(() => void resolved++));
    await waitFor(() => resolved >= 500, { timeoutMs: 30_000, what: '500 confirmed publishes' });
    broker.current.child.kill('SIGTERM');
    assert.equal(await broker.current.exited, 0);
    await waitFor(() => conn.state === 'reconnecting', { what: 'the client to notice the shutdown' });
    const lost = statuses.find((s) => s.type === 'disconnected');
    assert.equal(lost?.type === 'disconnected' && lost.error.code, 'E_SHUTTING_DOWN');
    await broker.start();
    await Promise.all(publishes);
    await waitFor(() => received.size === TOTAL, { timeoutMs: 20_000, what: `all ${TOTAL} messages at the resumed consumer` });
    await waitFor(async () => (await conn.assertQueue('deploys')).messages === 0, { what: 'every message acked' });
    assert.ok(errors.every((code) => code === 'E_SHUTTING_DOWN'), `errors: ${errors.join(', ')}`);
  });
});

describe('reconnect after a silent broker', () => {
  it('notices a frozen broker by heartbeat, reconnects when it thaws, and stores every publish once', async (t) => {
    const broker = await setup(t, ['--heartbeat-ms', '200']);
    const TOTAL = 1000;
    const { conn, statuses } = await connectRecording(t, broker.url, { maxUnconfirmed: 100, connectTimeoutMs: 1000 });
    await conn.assertQueue('frozen');
    let resolved = 0;
    let duplicates = 0;
    const publishes = Array.from({ length: TOTAL }, (_, i) =>
      conn.publish('frozen', `f${i}`).then((r) => {
        resolved++;
        if (r.duplicate) duplicates++;
      }),
    );
    await waitFor(() => resolved >= 300, { timeoutMs: 30_000, what: '300 confirmed publishes' });
    // Frozen, the broker keeps its sockets open but says nothing: only the heartbeat can tell.
    broker.current.child.kill('SIGSTOP');
    t.after(() => broker.current.child.kill('SIGCONT'));
    await waitFor(() => conn.state === 'reconnecting', { timeoutMs: 5000, what: 'a heartbeat timeout' });
    const lost = statuses.find((s) => s.type === 'disconnected');
    assert.equal(lost?.type === 'disconnected' && lost.error.code, 'E_HEARTBEAT_TIMEOUT');
    // At least one attempt failed against the frozen broker (its upgrade never answered).
    await waitFor(() => statuses.some((s) => s.type === 'reconnecting' && s.attempt >= 2), { timeoutMs: 10_000, what: 'a failed attempt' });
    broker.current.child.kill('SIGCONT');

    await Promise.all(publishes);
    assert.equal(conn.state, 'open');
    // The old socket's publishes may have been stored after the thaw, next to their resends: dedup keeps one.
    assert.equal((await conn.assertQueue('frozen')).messages, TOTAL);
    t.diagnostic(`resent publishes confirmed as duplicates: ${duplicates}`);
  });
});

describe('a broker that never comes back', () => {
  it('rejects unconfirmed publishes with E_TIMEOUT after publishDeadlineMs while it keeps trying, holding at most maxUnconfirmed', async (t) => {
    const broker = await setup(t);
    const DEADLINE_MS = 700;
    const { conn } = await connectRecording(t, broker.url, { publishDeadlineMs: DEADLINE_MS, maxUnconfirmed: 2 });
    await conn.assertQueue('q');
    await broker.kill();
    await waitFor(() => conn.state === 'reconnecting', { what: 'the client to notice the kill' });
    const startedAt = Date.now();
    // Two are held for the next connection; three wait for capacity (bounded memory), past their deadline.
    const calls = [conn.publish('q', 'a', { messageId: 'mine' }), ...['b', 'c', 'd', 'e'].map((body) => conn.publish('q', body))];
    await waitFor(() => conn.unconfirmed === 2, { what: 'two held publishes' });
    const results = await Promise.allSettled(calls);
    const elapsed = Date.now() - startedAt;
    const errors = results.map((r) => {
      assert.equal(r.status, 'rejected');
      const err = (r as PromiseRejectedResult).reason as BrokerError;
      assert.ok(err instanceof BrokerError);
      assert.equal(err.code, 'E_TIMEOUT');
      return err.message;
    });
    assert.match(errors[0]!, /messageId mine\) was not confirmed within publishDeadlineMs \(700 ms\).*may or may not have been stored/);
    assert.match(errors[1]!, /may or may not have been stored/);
    // The three that waited for capacity: usually refused before they were held. When their calls
    // straddle a millisecond tick, their deadline is 1 ms after a's and b's, so the slots a and b free
    // can admit one just before its own deadline passes; it then times out as held. E_TIMEOUT
    // either way, and none reached a broker (there is none).
    for (const message of errors.slice(2)) assert.match(message, /waited for capacity .* it was not sent|was not confirmed within publishDeadlineMs \(700 ms\), the broker being unreachable/);
    assert.ok(elapsed >= DEADLINE_MS - 5 && elapsed < DEADLINE_MS + 1500, `rejected after ${elapsed} ms`);
    assert.equal(conn.unconfirmed, 0);
    assert.equal(conn.state, 'reconnecting'); // still trying (maxAttempts: Infinity)
    await conn.close();
    assert.equal(await conn.closed, undefined);
    assert.equal(conn.state, 'closed');
  });

  it('closes for good after maxAttempts: closed resolves and pending calls reject', async (t) => {
    const broker = await setup(t);
    const { conn, statuses } = await connectRecording(t, broker.url, {
      reconnect: { initialDelayMs: 20, maxDelayMs: 100, maxAttempts: 4 },
      publishDeadlineMs: Infinity,
    });
    await conn.assertQueue('q');
    await broker.kill();
    const pending = conn.publish('q', 'never confirmed');
    const request = conn.purgeQueue('q');
    const reason = await conn.closed;
    assert.ok(reason instanceof BrokerError);
    assert.equal(reason.code, 'E_CONNECTION_CLOSED');
    assert.match(reason.message, /gave up reconnecting .* after 4 failed attempts/);
    assert.ok(reason.cause instanceof Error);
    await assert.rejects(pending, (err: BrokerError) => err.code === 'E_CONNECTION_CLOSED' && /may or may not have been stored/.test(err.message));
    await assert.rejects(request, { code: 'E_CONNECTION_CLOSED' });
    await assert.rejects(conn.publish('q', 'after'), { code: 'E_CONNECTION_CLOSED' });
    assert.deepEqual(
      statuses.map((s) => s.type),
      ['disconnected', 'reconnecting', 'reconnecting', 'reconnecting', 'reconnecting', 'closed'],
    );
    assert.equal(conn.state, 'closed');
  });

  it('with reconnect: false, closes at the first loss as before', async (t) => {
    const broker = await setup(t);
    const { conn, statuses } = await connectRecording(t, broker.url, { reconnect: false });
    await conn.assertQueue('q');
    await broker.kill();
    const reason = await conn.closed;
    assert.equal(reason?.code, 'E_CONNECTION_CLOSED');
    assert.deepEqual(statuses.map((s) => s.type), ['closed']);
    await assert.rejects(conn.publish('q', 'x'), { code: 'E_CONNECTION_CLOSED' });
  });
});

describe('final errors', () => {
  it('does not retry a wrong token, on connect or on reconnect', async (t) => {
    const broker = await setup(t, ['--token', 'first']);
    const statuses: ConnectionStatus[] = [];
    await assert.rejects(connect(broker.url, { token: 'wrong', onStatus: (s) => statuses.push(s) }), { code: 'E_AUTH_FAILED' });
    assert.deepEqual(statuses, []);

    const { conn, statuses: seen } = await connectRecording(t, broker.url, { token: 'first', publishDeadlineMs: Infinity });
    await conn.assertQueue('q');
    await broker.kill();
    await waitFor(() => conn.state === 'reconnecting', { what: 'the client to notice the kill' });
    const pending = conn.publish('q', 'x');
    await broker.start(['--token', 'second']); // the token changed while it was down
    const reason = await conn.closed;
    assert.equal(reason?.code, 'E_AUTH_FAILED');
    await assert.rejects(pending, { code: 'E_AUTH_FAILED' });
    // The refused attempt was the last one: no 'reconnecting' after it.
    const types = seen.map((s) => s.type);
    assert.equal(types.at(-1), 'closed');
    assert.equal(types.at(-2), 'reconnecting');
    assert.equal(count(seen, 'reconnected'), 0);
  });
});

describe('publish ids and options', () => {
  it('gives every publish a messageId, so the broker can deduplicate a resend', async (t) => {
    const broker = await setup(t);
    const { conn } = await connectRecording(t, broker.url);
    await conn.assertQueue('ids');
    await conn.publish('ids', 'generated');
    await conn.publish('ids', 'chosen', { messageId: 'order-7' });
    const ids = new Map<string, string | undefined>();
    await conn.consume('ids', (m) => {
      ids.set(m.text(), m.messageId);
    });
    await waitFor(() => ids.size === 2, { what: 'both messages' });
    assert.match(ids.get('generated') ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(ids.get('chosen'), 'order-7');
  });

  it('refuses bad reconnect and deadline options, naming the field', async () => {
    const url = 'ws://127.0.0.1:9'; // never dialled: options are checked first
    await assert.rejects(connect(url, { publishDeadlineMs: 0 }), { code: 'E_INVALID_ARGUMENT', message: /"publishDeadlineMs"/ });
    await assert.rejects(connect(url, { reconnect: { maxAttempts: -1 } }), { code: 'E_INVALID_ARGUMENT', message: /"reconnect.maxAttempts"/ });
    await assert.rejects(connect(url, { reconnect: { initialDelayMs: 500, maxDelayMs: 100 } }), {
      code: 'E_INVALID_ARGUMENT',
      message: /"reconnect.maxDelayMs" must be ≥/,
    });
    await assert.rejects(connect(url, { maxUnconfirmed: 1.5 }), { code: 'E_INVALID_ARGUMENT', message: /"maxUnconfirmed"/ });
  });
});
