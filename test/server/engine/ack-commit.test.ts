import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Engine } from '../../../server/engine/engine.js';
import { engineOnSqlite } from '../../helpers/engine.js';
import type { Store } from '../../../storage/index.js';
import { waitFor } from '../../helpers/server.js';

function stored(store: Store): number {
  return store.countMessages().reduce((n, c) => n + c.stored, 0);
}

const body = new TextEncoder().encode('x');

/** Runs the engine's flush and the microtask in which it commits or defers the batch: no timer can fire meanwhile. */
async function flushTurn(engine: Engine): Promise<void> {
  engine.flush();
  await new Promise<void>((resolve) => queueMicrotask(resolve));
}

describe('deferred commits: acks and task states nobody waits for', () => {
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

  it('wait for company when they hold task states sent with noReply, then commit on their own', async (t) => {
    const { engine, store, session } = engineOnSqlite(t);
    const outcomes: unknown[] = [];
    engine.putResult(session, { taskId: 't1', state: 'SUCCESS', payload: body, ttlMs: 60_000 }, (o) => outcomes.push(o), false);
    await flushTurn(engine);
    assert.equal(store.getResult('t1'), null, 'a noReply state nobody waits for is not committed in its own turn');
    await waitFor(() => store.getResult('t1') !== null, { what: 'the deferred state to be committed' });
    assert.equal(store.getResult('t1')!.state, 'SUCCESS');
    assert.deepEqual(outcomes, [true]);
  });

  it('commit in their own turn when a task state wants its reply', async (t) => {
    const { engine, store, session } = engineOnSqlite(t);
    const outcomes: unknown[] = [];
    engine.putResult(session, { taskId: 't1', state: 'SUCCESS', payload: body, ttlMs: 60_000 }, (o) => outcomes.push(o), true);
    await flushTurn(engine);
    assert.equal(store.getResult('t1')?.state, 'SUCCESS');
    assert.deepEqual(outcomes, [true]);
  });

  it('commit in their own turn when a result.get waits for one of their tasks', async (t) => {
    const { engine, store, session } = engineOnSqlite(t);
    const answers: unknown[] = [];
    engine.getResult(session, 't1', 60_000, (outcome) => answers.push(outcome));
    assert.equal(answers.length, 0, 'the get waits: there is no row yet');
    engine.putResult(session, { taskId: 't1', state: 'SUCCESS', payload: body, ttlMs: 60_000 }, () => {}, false);
    await flushTurn(engine);
    assert.equal(store.getResult('t1')?.state, 'SUCCESS');
    assert.equal(answers.length, 1, 'the waiting get is answered by that commit');
    assert.equal((answers[0] as { state: string }).state, 'SUCCESS');
  });

  it('commit in their own turn when they hold a revocation', async (t) => {
    const { engine, store, session } = engineOnSqlite(t);
    engine.revoke(session, { taskId: 't1' }, () => {});
    await flushTurn(engine);
    assert.equal(store.getResult('t1')?.state, 'REVOKED');
  });
});
