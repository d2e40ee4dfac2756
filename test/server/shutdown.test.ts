/**
 * A graceful close tells every client why (an E_SHUTTING_DOWN error frame, close code 1001),
 * even one whose socket still holds a backlog of deliveries: the close frame waits behind them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect } from '../../clients/index.js';
import { rawPeer } from '../helpers/raw.js';
import { spawnServer, startTestServer, tempDir, waitFor } from '../helpers/server.js';

describe('graceful close', () => {
  it('sends E_SHUTTING_DOWN and close 1001 after the deliveries still queued on a slow reader', async (t) => {
    const { url, broker } = await startTestServer(t);
    const producer = await connect(url);
    t.after(() => producer.close());
    await producer.assertQueue('backlog');
    const COUNT = 400;
    const body = new Uint8Array(128 * 1024).fill(7); // 50 MiB in all: more than loopback's socket buffers hold
    await Promise.all(Array.from({ length: COUNT }, () => producer.publish('backlog', body)));

    const consumer = await rawPeer(url);
    t.after(() => consumer.ws.terminate());
    // The consumer stops reading: what the broker sends piles up in its socket's buffers.
    consumer.ws.pause();
    consumer.send({ type: 'consume', ref: 1, queue: 'backlog', consumerTag: 'slow', prefetch: COUNT });
    await waitFor(() => broker.engine.queueStats().find((q) => q.name === 'backlog')?.unacked === COUNT, {
      what: `all ${COUNT} messages handed to the paused consumer`,
    });

    const closing = broker.close();
    consumer.ws.resume();
    const { code } = await consumer.closed;
    await closing;
    assert.equal(code, 1001);
    const deliveries = consumer.frames.filter((f) => f.type === 'deliver').length;
    assert.equal(deliveries, COUNT, 'every delivery already sent arrived before the close');
    const error = consumer.frames.find((f) => f.type === 'error');
    assert.equal(error?.type === 'error' && error.code, 'E_SHUTTING_DOWN');
  });

  it('berth serve exits on SIGTERM even when the reader of its log is gone', { timeout: 30_000 }, async (t) => {
    const server = await spawnServer(tempDir(t));
    t.after(() => server.child.kill('SIGKILL'));
    // Whoever read the log (a pipe to a log shipper, say) goes away: the next line meets EPIPE.
    server.child.stdout!.destroy();
    server.child.kill('SIGTERM');
    const exit = await Promise.race([server.exited, new Promise((resolve) => setTimeout(() => resolve('still running after 10 s'), 10_000))]);
    assert.equal(exit, 0);
  });
});
