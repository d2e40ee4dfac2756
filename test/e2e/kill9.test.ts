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
      const conn = await connect(server.url, { maxUnconfirmed: 1000, reconnect: false }); // each round sees its own broker die
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

describe('kill -9 with messages in every state', () => {
  it('keeps a delayed, a leased and a dead-lettered message, and remembered ids, in the state they were in', async (t) => {
    const dataDir = tempDir(t);
    const first = await spawnServer(dataDir);
    t.after(() => first.child.kill('SIGKILL'));
    const conn = await connect(first.url, { reconnect: false });
    await conn.assertQueue('work', { deadLetterQueue: 'work.dlq', visibilityTimeoutMs: 60_000 });
    const delayedUntil = Date.now() + 1500;
    await conn.publish('work', 'delayed', { notBefore: delayedUntil, messageId: 'd-1' });
    await conn.publish('work', 'leased');
    await conn.publish('work', 'poison');
    let leased = false;
    await conn.consume('work', async (m) => {
      if (m.text() === 'poison') await m.reject({ reason: 'bad input' });
      else {
        leased = true;
        await new Promise(() => {}); // held under a 60 s lease when the broker dies
      }
    });
    await waitFor(() => leased, { what: 'the leased delivery' });
    const http = first.url.replace('ws://', 'http://');
    await waitFor(async () => {
      const { queues } = (await (await fetch(`${http}/api/queues`)).json()) as { queues: Array<{ name: string; ready: number }> };
      return queues.find((q) => q.name === 'work.dlq')?.ready === 1;
    }, { what: 'the dead letter' });
    first.child.kill('SIGKILL');
    await first.exited;
    await conn.closed;

    const second = await spawnServer(dataDir);
    t.after(() => second.child.kill('SIGKILL'));
    const again = await connect(second.url);
    t.after(() => again.close());
    // The id of the delayed message is still remembered.
    assert.deepEqual(await again.publish('work', 'delayed', { messageId: 'd-1' }), { duplicate: true });
    const got: Array<{ body: string; at: number; redelivered: boolean }> = [];
    await again.consume('work', (m) => {
      got.push({ body: m.text(), at: Date.now(), redelivered: m.redelivered });
    });
    // The leased message is deliverable at once, without waiting out its 60 s lease.
    await waitFor(() => got.some((g) => g.body === 'leased'), { timeoutMs: 5000, what: 'the leased message' });
    assert.equal(got.find((g) => g.body === 'leased')!.redelivered, true);
    await waitFor(() => got.some((g) => g.body === 'delayed'), { timeoutMs: 10_000, what: 'the delayed message' });
    assert.ok(got.find((g) => g.body === 'delayed')!.at >= delayedUntil, 'the delayed message came early');
    const dead = await new Promise<{ reason: unknown; error: unknown }>((resolve) =>
      void again.consume('work.dlq', (m) => resolve({ reason: m.headers['x-death-reason'], error: m.headers['x-death-error'] })),
    );
    assert.deepEqual(dead, { reason: 'rejected', error: 'bad input' });
    assert.equal(got.length, 2);
  });
});

describe('one broker per data directory', () => {
  it('refuses a second berth serve on data a running broker holds, and takes it over after that one is killed', async (t) => {
    const dataDir = tempDir(t);
    const first = await spawnServer(dataDir);
    t.after(() => first.child.kill('SIGKILL'));
    const conn = await connect(first.url, { reconnect: false });
    await conn.assertQueue('owned');
    await conn.publish('owned', 'confirmed before the second start');

    // It must exit with the CLI's error code; a second broker that starts listening fails the test.
    const second = spawnServer(dataDir);
    void second.then((s) => s.child.kill('SIGKILL'), () => {});
    await assert.rejects(second, /exited \(2\) before listening: berth: .*berth\.db is in use by another process \(another broker on the same data directory\?\)/);

    // The first broker was not disturbed; once it is gone the data opens again, message and all.
    await conn.publish('owned', 'confirmed after');
    first.child.kill('SIGKILL');
    await first.exited;
    await conn.closed;
    const third = await spawnServer(dataDir);
    t.after(() => third.child.kill('SIGKILL'));
    const again = await connect(third.url);
    t.after(() => again.close());
    const got: string[] = [];
    await again.consume('owned', (m) => void got.push(m.text()));
    await waitFor(() => got.length === 2, { what: 'both confirmed messages' });
    assert.deepEqual(got, ['confirmed before the second start', 'confirmed after']);
  });
});
