import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { Engine, type Delivery, type EngineSession } from '../../../server/engine/engine.js';
import { recordingSink } from '../../helpers/engine.js';
import { openSqliteStore, type Store } from '../../../storage/index.js';
import { tempDir, waitFor } from '../../helpers/server.js';

/** An engine on a real SQLite file, one session whose sink records what it is sent. */
function setup(t: TestContext): { engine: Engine; store: Store; session: EngineSession; deliveries: Delivery[]; confirmedUpTo: () => number } {
  const store = openSqliteStore({ path: join(tempDir(t), 'berth.db') });
  const engine = new Engine({ store, logger: pino({ level: 'silent' }) });
  t.after(() => {
    engine.close();
    store.close();
  });
  const { sink, deliveries, confirmedUpTo } = recordingSink();
  return { engine, store, session: engine.openSession('s1', sink), deliveries, confirmedUpTo };
}

function stored(store: Store): number {
  return store.countMessages().reduce((n, c) => n + c.stored, 0);
}

const body = new TextEncoder().encode('x');

describe('ack-only commits', () => {
  it('commit on their own shortly after the ack, with no further traffic', async (t) => {
    const { engine, store, session, deliveries, confirmedUpTo } = setup(t);
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
    const { engine, store, session, deliveries, confirmedUpTo } = setup(t);
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
    const { engine, store, session, deliveries } = setup(t);
    engine.declareQueue('q');
    engine.publish(session, { seq: 1, queue: 'q', body });
    engine.consume(session, { queue: 'q', consumerTag: 'c', prefetch: 1 });
    await waitFor(() => deliveries.length === 1, { what: 'the delivery' });
    engine.settle(session, [deliveries[0]!.deliveryTag], 'ack');
    engine.close();
    assert.equal(stored(store), 0);
  });
});
