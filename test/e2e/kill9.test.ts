/**
 * The durability promise, end to end: a spawned `berth serve` is killed with
 * SIGKILL while a producer streams confirmed publishes; after a restart on the
 * same data every confirmed message is delivered.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect } from '../../clients/index.js';
import { spawnServer, tempDir, waitFor } from '../helpers/server.js';

const ROUNDS = 3;
/** Confirmed publishes per round before the kill. */
const KILL_AFTER_CONFIRMED = 4000;

describe('kill -9', () => {
  it(`delivers every confirmed message after SIGKILL mid-stream, ${ROUNDS} rounds`, async (t) => {
    const dataDir = tempDir(t);
    const confirmed = new Set<string>();
    let published = 0;

    for (let round = 0; round < ROUNDS; round++) {
      const server = await spawnServer(dataDir);
      t.after(() => server.child.kill('SIGKILL'));
      const conn = await connect(server.url, { maxUnconfirmed: 1000 });
      await conn.assertQueue('durable');
      let connectionLost = false;
      void conn.closed.then(() => (connectionLost = true));
      let roundConfirmed = 0;
      // Keep publishing until the broker dies under us. (Publishes on a dead connection
      // fail in microtasks only, so the loop must end on the close, not on a timer.)
      const producing = (async () => {
        const inFlight = new Set<Promise<void>>();
        for (let i = 0; !connectionLost; i++) {
          const id = `r${round}-${i}`;
          published++;
          const p = conn.publish('durable', id, { messageId: id }).then(
            () => {
              confirmed.add(id);
              roundConfirmed++;
            },
            () => {}, // unconfirmed: may or may not have been stored
          );
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
          if (inFlight.size >= 500) await Promise.race(inFlight);
        }
        await Promise.allSettled(inFlight);
      })();
      await waitFor(() => roundConfirmed >= KILL_AFTER_CONFIRMED, { timeoutMs: 30_000, what: 'confirmed publishes' });
      server.child.kill('SIGKILL');
      await server.exited;
      await producing;
      await conn.closed;
    }

    const server = await spawnServer(dataDir);
    t.after(() => server.child.kill('SIGKILL'));
    const conn = await connect(server.url);
    t.after(() => conn.close());
    const delivered = new Set<string>();
    await conn.consume('durable', (m) => {
      delivered.add(m.text());
    }, { prefetch: 1000 });
    await waitFor(() => [...confirmed].every((id) => delivered.has(id)), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: `all ${confirmed.size} confirmed messages`,
    });
    // Only messages we tried to publish can come back, each at most once per publish.
    for (const id of delivered) assert.match(id, /^r\d-\d+$/);
    assert.ok(confirmed.size >= ROUNDS * KILL_AFTER_CONFIRMED);
    t.diagnostic(`published ${published}, confirmed ${confirmed.size}, delivered after restart ${delivered.size}`);
  });
});
