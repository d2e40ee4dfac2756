import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { engineOnSqlite } from '../../helpers/engine.js';
import type { Store } from '../../../storage/index.js';
import { waitFor } from '../../helpers/server.js';

function stored(store: Store): number {
  return store.countMessages().reduce((n, c) => n + c.stored, 0);
}

const body = new TextEncoder().encode('x');

describe('ack-only commits', () => {
  it('commit on their own shortly after the ack, with no further traffic', async (t) => {
    const { engine, store, session, deliveries, confirmedUpTo } = engineOnSqlite(t);
    engine.declareQueue('q');
    engine.publish(session, { seq: 1, queue: 'q', body });
    await waitFor(() => confirmedUpTo() === 1, { what: 'the confirm' });
    engine.consume(session, { queue: 'q', consumerTag: 'c', prefetch: 1 });
    await waitFor(() => deliveries.length === 1, { what: 'the delivery' });
    assert.equal(stored(store), 1);
    engine.settle(session, [deliveries[0]!.deliveryTag], 'ack');
    await waitFor(() => stored(store) === 0, { what: 'the ack to be committed' });
  });

  it('commit with the next publish, in its transaction, before it is confirmed', async (t) => {
    const { engine, store, session, deliveries, confirmedUpTo } = engineOnSqlite(t);
    engine.declareQueue('q');
    engine.publish(session, { seq: 1, queue: 'q', body });
    engine.consume(session, { queue: 'q', consumerTag: 'c', prefetch: 1 });
    await waitFor(() => deliveries.length === 1, { what: 'the delivery' });
    engine.settle(session, [deliveries[0]!.deliveryTag], 'ack');
    engine.publish(session, { seq: 2, queue: 'q', body });
    await waitFor(() => confirmedUpTo() === 2, { what: 'the second confirm' });
    assert.equal(stored(store), 1, 'once the second publish is confirmed, the first, acked, row is gone');
  });

  it('are committed by close', async (t) => {
    const { engine, store, session, deliveries } = engineOnSqlite(t);
    engine.declareQueue('q');
    engine.publish(session, { seq: 1, queue: 'q', body });
    engine.consume(session, { queue: 'q', consumerTag: 'c', prefetch: 1 });
    await waitFor(() => deliveries.length === 1, { what: 'the delivery' });
    engine.settle(session, [deliveries[0]!.deliveryTag], 'ack');
    engine.close();
    assert.equal(stored(store), 0);
  });
});
