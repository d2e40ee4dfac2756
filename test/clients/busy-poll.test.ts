/**
 * The SDK's consumer-side busy poll (`busyPollUs`): the hello offers `backlog-hint` unless it is 0,
 * the option is checked, and the event loop polls after a settle only when the broker said it holds
 * more back for the consumer's credit and nothing delivered is left unsettled. Real broker, real
 * sockets; the poll's state is read from its module (one per test process).
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { backlogPolledMs, pollingForBacklog } from '../../clients/backlog-poll.js';
import { BrokerError, connect, type ConnectOptions, type Connection, type Message } from '../../clients/index.js';
import { BACKLOG_HINT, COMPACT_FRAMES, type FrameOf } from '../../protocol/index.js';
import { startTestServer, waitFor } from '../helpers/server.js';
import { recordingWebSocket, type Wire } from '../helpers/wire.js';

/** Long enough that a check right after the settle cannot miss it on a loaded machine. */
const LONG_WINDOW_US = 100_000;

async function setup(t: TestContext, options: ConnectOptions = {}): Promise<{ conn: Connection; wire: Wire }> {
  const { url } = await startTestServer(t);
  const wire: Wire = { sent: [], received: [] };
  const conn = await connect(url, { ...options, WebSocket: recordingWebSocket(wire) });
  t.after(() => conn.close());
  return { conn, wire };
}

/** Deliveries of `queue` (filled with `count` messages) to a consumer that settles nothing itself. */
async function held(conn: Connection, queue: string, count: number, prefetch: number): Promise<Message[]> {
  await conn.assertQueue(queue);
  await Promise.all(Array.from({ length: count }, (_, i) => conn.publish(queue, `m${i}`)));
  const got: Message[] = [];
  await conn.consume(queue, (m) => void got.push(m), { prefetch, autoSettle: false });
  return got;
}

/** Lets the settles of this turn go out: the SDK writes them in a microtask. */
function afterFlush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits until no poll window is open, so that a test starts from a sleeping loop. */
async function quiet(): Promise<void> {
  await waitFor(() => !pollingForBacklog(), { what: 'the poll window to close' });
}

describe('busyPollUs option', () => {
  for (const bad of [-1, 1.5, 100_001, Number.NaN, '200' as unknown as number]) {
    it(`refuses ${String(bad)} with E_INVALID_ARGUMENT`, async () => {
      await assert.rejects(connect('ws://127.0.0.1:1', { busyPollUs: bad }), (err) => {
        assert.ok(err instanceof BrokerError);
        assert.equal(err.code, 'E_INVALID_ARGUMENT');
        assert.match(err.message, /"busyPollUs" must be an integer from 0 to 100000/);
        return true;
      });
    });
  }

  for (const [options, features] of [
    [{}, [COMPACT_FRAMES, BACKLOG_HINT]],
    [{ busyPollUs: 0 }, [COMPACT_FRAMES]],
    [{ busyPollUs: 0, compactFrames: false }, undefined],
    [{ compactFrames: false }, [BACKLOG_HINT]],
  ] as const) {
    it(`says hello with features ${JSON.stringify(features ?? null)} for ${JSON.stringify(options)}`, async (t) => {
      const { wire } = await setup(t, options);
      const hello = wire.sent[0]![0] as FrameOf<'hello'>;
      assert.equal(hello.type, 'hello');
      assert.deepEqual(hello.features, features);
    });
  }
});

describe('polling after a settle', () => {
  it('polls once everything delivered is settled and the last delivery announced a backlog, and not before', async (t) => {
    await quiet();
    const { conn } = await setup(t, { busyPollUs: LONG_WINDOW_US });
    // Prefetch 2 over 4 messages: the second delivery fills the window with two more ready.
    const got = await held(conn, 'backlog', 4, 2);
    await waitFor(() => got.length === 2, { what: 'two deliveries' });
    const settled = [got[0]!.ack()];
    await afterFlush();
    assert.equal(pollingForBacklog(), false, 'one delivery is still unsettled: the app has work');
    await waitFor(() => got.length === 3, { what: 'the third delivery, for the freed credit' });
    settled.push(got[1]!.ack(), got[2]!.ack());
    await afterFlush();
    assert.equal(pollingForBacklog(), true, 'nothing unsettled and the broker holds the fourth message back');
    await Promise.all(settled);
    await waitFor(() => got.length === 4, { what: 'the fourth delivery' });
  });

  it('does not poll after settling a delivery that announced no backlog', async (t) => {
    await quiet();
    const before = backlogPolledMs();
    const { conn } = await setup(t, { busyPollUs: LONG_WINDOW_US });
    const got = await held(conn, 'drained', 1, 1);
    await waitFor(() => got.length === 1, { what: 'the delivery' });
    await got[0]!.ack();
    assert.equal(pollingForBacklog(), false);
    assert.equal(backlogPolledMs(), before);
  });

  it('with busyPollUs 0, asks for no hint and never polls', async (t) => {
    await quiet();
    const before = backlogPolledMs();
    const { conn, wire } = await setup(t, { busyPollUs: 0 });
    const got = await held(conn, 'off', 3, 1);
    for (let i = 0; i < 3; i++) {
      await waitFor(() => got.length === i + 1, { what: `delivery ${i + 1}` });
      await got[i]!.ack();
      assert.equal(pollingForBacklog(), false);
    }
    const delivers = wire.received.flat().filter((f): f is FrameOf<'deliver'> => f.type === 'deliver');
    assert.deepEqual(delivers.map((d) => d.backlog), [undefined, undefined, undefined]);
    assert.equal(backlogPolledMs(), before);
  });

  it('ends a window that no settle renews, and counts its time', async (t) => {
    await quiet();
    const before = backlogPolledMs();
    const { conn } = await setup(t, { busyPollUs: 20_000 });
    const got = await held(conn, 'window', 2, 1);
    await waitFor(() => got.length === 1, { what: 'the first delivery' });
    const acked = got[0]!.ack();
    await afterFlush();
    assert.equal(pollingForBacklog(), true);
    await acked;
    // The second delivery stays unsettled, so nothing renews the window.
    await waitFor(() => got.length === 2 && !pollingForBacklog(), { what: 'the window to end' });
    assert.ok(backlogPolledMs() - before >= 20, `polled ${backlogPolledMs() - before} ms`);
  });
});
