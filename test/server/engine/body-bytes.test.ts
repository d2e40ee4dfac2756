import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { engineOnSqlite } from '../../helpers/engine.js';
import { waitFor } from '../../helpers/server.js';

describe('message bodies held in memory', () => {
  it('do not keep alive the larger buffer a published body was a view of', async (t) => {
    const { engine, session, deliveries, confirmedUpTo } = engineOnSqlite(t);
    engine.declareQueue('q');
    // As the broker decodes them: each body a view into one large WebSocket message.
    const message = new Uint8Array(64 * 1024);
    const bodies = Array.from({ length: 3 }, (_, i) => {
      const body = message.subarray(1000 * i + 9, 1000 * i + 9 + 100);
      body.fill(i + 1);
      return body;
    });
    // And one that is its own buffer, already as small as it can be.
    const own = new Uint8Array(100).fill(9);
    [...bodies, own].forEach((body, i) => engine.publish(session, { seq: i + 1, queue: 'q', body }));
    await waitFor(() => confirmedUpTo() === 4, { what: 'the confirms' });

    engine.consume(session, { queue: 'q', consumerTag: 'c', prefetch: 10 });
    await waitFor(() => deliveries.length === 4, { what: 'four deliveries' });
    for (const [i, d] of deliveries.slice(0, 3).entries()) {
      assert.deepEqual(d.message.body, new Uint8Array(100).fill(i + 1), `body ${i + 1} kept its bytes`);
      assert.ok(d.message.body.buffer.byteLength <= 200, `body ${i + 1} holds ${d.message.body.buffer.byteLength} bytes, not the 64 KiB message`);
    }
    // Memory is the point, not copying: a body that is its own buffer is kept as it is.
    assert.equal(deliveries[3]!.message.body, own);
    // Mutating the message the bodies came in (the socket's buffer is reused) leaves them intact.
    message.fill(0);
    assert.deepEqual(deliveries[0]!.message.body, new Uint8Array(100).fill(1));
  });
});
