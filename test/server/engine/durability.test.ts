/**
 * What waits for the disk in the engine: a published message is delivered once its batch has
 * committed, and its publish is confirmed once the store's log sync has covered it. The store is
 * a real SQLite file whose sync the test finishes by hand (the real fdatasync, or a failure).
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { BrokerError } from '../../../protocol/index.js';
import { engineOnSqlite } from '../../helpers/engine.js';
import { heldSync } from '../../helpers/held-sync.js';
import { waitFor } from '../../helpers/server.js';

/** An engine on a real SQLite file whose log syncs the test finishes by hand (`syncs[i].real()`, `syncs[i].finish(error)`). */
function setup(t: TestContext) {
  const { syncFile, calls: syncs } = heldSync();
  const failed: Array<{ seq: number; error: BrokerError }> = [];
  const { engine, session, deliveries, confirmedUpTo } = engineOnSqlite(t, {
    storeOptions: { syncFile },
    publishFailed: (seq, error) => failed.push({ seq, error }),
  });
  return { engine, session, syncs, deliveries, failed, confirmedUpTo };
}

const body = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('engine: delivery before the sync, confirms after it', () => {
  it('delivers a published message while its sync runs, and confirms the publish once the sync is done', async (t) => {
    const { engine, session, syncs, deliveries, confirmedUpTo } = setup(t);
    engine.declareQueue('q');
    engine.consume(session, { queue: 'q', consumerTag: 'c', prefetch: 10 });
    engine.publish(session, { seq: 1, queue: 'q', body: body('m1') });
    await waitFor(() => deliveries.length === 1 && syncs.length === 1, { what: 'the delivery, and a sync started' });
    assert.equal(confirmedUpTo(), 0, 'not confirmed while the sync runs');

    // Published during the sync: delivered too, and confirmed only by the sync after.
    engine.publish(session, { seq: 2, queue: 'q', body: body('m2') });
    await waitFor(() => deliveries.length === 2, { what: 'the second delivery' });
    syncs[0]!.real();
    await waitFor(() => confirmedUpTo() === 1, { what: 'the first confirm' });
    await waitFor(() => syncs.length === 2, { what: 'the second sync' });
    assert.equal(confirmedUpTo(), 1);
    syncs[1]!.real();
    await waitFor(() => confirmedUpTo() === 2, { what: 'the second confirm' });
    assert.deepEqual(
      deliveries.map((d) => new TextDecoder().decode(d.message.body)),
      ['m1', 'm2'],
    );
  });

  it('refuses publishes whose sync failed with E_STORE_FAILED, and every publish after, while their messages stay deliverable', async (t) => {
    const { engine, session, syncs, deliveries, failed, confirmedUpTo } = setup(t);
    engine.declareQueue('q');
    engine.publish(session, { seq: 1, queue: 'q', body: body('m1') });
    await waitFor(() => syncs.length === 1, { what: 'a sync' });
    syncs[0]!.finish(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await waitFor(() => failed.length === 1, { what: 'the refusal' });
    assert.equal(failed[0]!.seq, 1);
    assert.equal(failed[0]!.error.code, 'E_STORE_FAILED');
    assert.match(failed[0]!.error.message, /could not sync .* to disk: .*EIO/);

    engine.publish(session, { seq: 2, queue: 'q', body: body('m2') });
    await waitFor(() => failed.length === 2, { what: 'the later publish refused' });
    assert.equal(failed[1]!.error.code, 'E_STORE_FAILED');
    assert.equal(confirmedUpTo(), 0);

    // The first message committed before its sync failed: at-least-once keeps it deliverable.
    engine.consume(session, { queue: 'q', consumerTag: 'c', prefetch: 10 });
    await waitFor(() => deliveries.length === 1, { what: 'the committed message delivered' });
    assert.equal(new TextDecoder().decode(deliveries[0]!.message.body), 'm1');
  });
});
