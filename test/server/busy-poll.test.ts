import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect } from '../../clients/index.js';
import { BusyPoll } from '../../server/busy-poll.js';
import { parseServeArgs } from '../../server/cli.js';
import { DEFAULTS, resolveOptions } from '../../server/options.js';
import { rawPeer } from '../helpers/raw.js';
import { startTestServer, waitFor } from '../helpers/server.js';

async function polledSeconds(url: string): Promise<number> {
  const text = await (await fetch(`${url.replace('ws://', 'http://')}/metrics`)).text();
  const m = /^berth_busy_poll_seconds_total ([0-9.e+-]+)$/m.exec(text);
  assert.ok(m, 'berth_busy_poll_seconds_total is exported');
  return Number(m[1]);
}

describe('BusyPoll', () => {
  it('keeps polling for a window after the last touch, then sleeps and accounts the run', async () => {
    const poll = new BusyPoll(20_000);
    assert.equal(poll.polling, false);
    poll.touch();
    assert.equal(poll.polling, true);
    const started = performance.now();
    await waitFor(() => !poll.polling, { what: 'the polling run to end' });
    assert.ok(performance.now() - started >= 20, 'the run lasts at least the window');
    assert.ok(poll.polledSeconds >= 0.02, `accounted ${poll.polledSeconds} s for a 20 ms window`);
  });

  it('extends the window with each touch made while polling', async () => {
    const poll = new BusyPoll(20_000);
    poll.touch();
    const until = performance.now() + 60;
    // Touch from timers for 60 ms: the run must outlast the last touch, not the first.
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        poll.touch();
        if (performance.now() >= until) {
          clearInterval(timer);
          resolve();
        }
      }, 5);
    });
    assert.equal(poll.polling, true, 'still polling right after the last touch');
    await waitFor(() => !poll.polling, { what: 'the polling run to end' });
    assert.ok(poll.polledSeconds >= 0.08, `one run of at least 60 + 20 ms, accounted ${poll.polledSeconds} s`);
  });

  it('never polls with a zero window or after close', () => {
    const off = new BusyPoll(0);
    off.touch();
    assert.equal(off.polling, false);
    const closed = new BusyPoll(1000);
    closed.close();
    closed.touch();
    assert.equal(closed.polling, false);
  });
});

describe('busyPollUs option', () => {
  it('defaults to 100 µs and rejects what is not an integer from 0 to 100000', () => {
    assert.equal(DEFAULTS.busyPollUs, 100);
    assert.equal(resolveOptions({ busyPollUs: 0 }).busyPollUs, 0);
    assert.equal(resolveOptions({ busyPollUs: 100_000 }).busyPollUs, 100_000);
    for (const bad of [-1, 1.5, 100_001, Number.NaN]) {
      assert.throws(() => resolveOptions({ busyPollUs: bad }), /"busyPollUs" must be/);
    }
  });

  it('is read from --busy-poll-us, then BERTH_BUSY_POLL_US', () => {
    assert.equal(parseServeArgs(['--busy-poll-us', '0'], { BERTH_BUSY_POLL_US: '50' }).busyPollUs, 0);
    assert.equal(parseServeArgs([], { BERTH_BUSY_POLL_US: '50' }).busyPollUs, 50);
    assert.equal(parseServeArgs([], {}).busyPollUs, undefined);
    assert.throws(() => parseServeArgs(['--busy-poll-us', 'soon'], {}), /--busy-poll-us must be an integer/);
  });
});

describe('busy polling in the broker', () => {
  it('polls after work, not after heartbeats, and stops once work stops', async (t) => {
    // A window longer than the heartbeat interval: if heartbeats counted as work, the loop would never sleep.
    const { url } = await startTestServer(t, { busyPollUs: 100_000, heartbeatMs: 100 });
    const peer = await rawPeer(url);
    t.after(() => peer.ws.close());
    for (let i = 0; i < 3; i++) {
      peer.send({ type: 'heartbeat' });
      await peer.next('heartbeat');
    }
    assert.equal(await polledSeconds(url), 0, 'the handshake and heartbeats alone never start a polling run');

    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('polled');
    await conn.publish('polled', 'x');
    // The counter only grows when a run ends: reaching the window proves the loop polled and then slept.
    await waitFor(async () => (await polledSeconds(url)) >= 0.1, { what: 'a polling run of at least the window to end' });
  });

  it('does not poll with busyPollUs 0', async (t) => {
    const { url } = await startTestServer(t, { busyPollUs: 0 });
    const conn = await connect(url);
    t.after(() => conn.close());
    await conn.assertQueue('unpolled');
    for (let i = 0; i < 20; i++) await conn.publish('unpolled', `m${i}`);
    assert.equal(await polledSeconds(url), 0);
  });
});
