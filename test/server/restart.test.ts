import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { connect, type Message } from '../../clients/index.js';
import { startBroker } from '../../server/index.js';
import { tempDir, waitFor } from '../helpers/server.js';

describe('restart', () => {
  it('keeps queues, ready and unacked messages across a restart; unacked ones come back redelivered', async (t) => {
    const dataDir = tempDir(t);
    const logger = pino({ level: 'silent' });
    const first = await startBroker({ port: 0, dataDir, logger });
    const conn = await connect(first.url, { reconnect: false }); // this test restarts the broker itself
    await conn.assertQueue('orders', { maxDeliveries: 5, deadLetterQueue: 'orders.dlq' });
    await Promise.all(Array.from({ length: 3000 }, (_, i) => conn.publish('orders', `o${i}`, { priority: i % 3 === 0 ? 4 : 0 })));
    const held: Message[] = [];
    let acked = 0;
    await conn.consume('orders', async (m) => {
      if (acked < 1000) {
        acked++;
        await m.ack();
      } else {
        held.push(m);
        await new Promise(() => {});
      }
    }, { prefetch: 50 });
    await waitFor(() => acked === 1000 && held.length === 50, { what: '1000 acked and 50 held' });
    // The acks were answered; they are committed with the next turn's batch.
    await waitFor(() => first.engine.queueStats().find((q) => q.name === 'orders')?.stats.acked === 1000);
    await first.close(); // the held deliveries were never acked
    await conn.closed;

    const second = await startBroker({ port: 0, dataDir, logger });
    t.after(() => second.close());
    const stats = second.engine.queueStats();
    assert.deepEqual(stats.map((q) => q.name).sort(), ['orders', 'orders.dlq']);
    assert.equal(stats.find((q) => q.name === 'orders')?.ready, 2000);

    const again = await connect(second.url);
    t.after(() => again.close());
    // Options survived too: redeclaring with different ones is refused.
    await assert.rejects(again.assertQueue('orders', { maxDeliveries: 6 }), { code: 'E_QUEUE_OPTIONS_MISMATCH' });
    const heldBodies = new Set(held.map((m) => m.text()));
    const seen = new Map<string, Message>();
    await again.consume('orders', (m) => {
      seen.set(m.text(), m);
    }, { prefetch: 500 });
    await waitFor(() => seen.size === 2000, { what: 'all 2000 remaining messages' });
    for (const body of heldBodies) {
      const m = seen.get(body);
      assert.ok(m, `held message ${body} was lost`);
      assert.equal(m.redelivered, true);
      assert.equal(m.deliveryCount, 2);
    }
    const fresh = [...seen.values()].filter((m) => !heldBodies.has(m.text()));
    assert.equal(fresh.length, 1950);
    assert.ok(fresh.every((m) => !m.redelivered && m.deliveryCount === 1));
  });
});
