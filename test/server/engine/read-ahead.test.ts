import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { Engine, type Delivery, type EngineSession } from '../../../server/engine/engine.js';
import { recordingSink } from '../../helpers/engine.js';
import { openSqliteStore, type Store } from '../../../storage/index.js';
import { tempDir, waitFor } from '../../helpers/server.js';

type LoadReadyParams = Parameters<Store['loadReady']>[0];

const LANE = 8;

/** An engine with a small lane buffer on a real SQLite file; the store's reads of ready rows are recorded. */
function setup(t: TestContext): { engine: Engine; session: EngineSession; deliveries: Delivery[]; reads: LoadReadyParams[]; confirmedUpTo: () => number } {
  const store = openSqliteStore({ path: join(tempDir(t), 'berth.db') });
  const reads: LoadReadyParams[] = [];
  const recording: Store = {
    ...store,
    loadReady: (params) => {
      reads.push({ ...params });
      return store.loadReady(params);
    },
  };
  const engine = new Engine({ store: recording, logger: pino({ level: 'silent' }), laneBufferSize: LANE });
  t.after(() => {
    engine.close();
    store.close();
  });
  const { sink, deliveries, confirmedUpTo } = recordingSink();
  return { engine, session: engine.openSession('s1', sink), deliveries, reads, confirmedUpTo };
}

const text = new TextDecoder();

describe('lane read-ahead', () => {
  it('tops up a lane that fell below half full after the deliveries of the turn, and keeps FIFO order', async (t) => {
    const { engine, session, deliveries, reads, confirmedUpTo } = setup(t);
    engine.declareQueue('q');
    const total = 30;
    for (let i = 0; i < total; i++) engine.publish(session, { seq: i + 1, queue: 'q', body: new TextEncoder().encode(`m${i}`) });
    await waitFor(() => confirmedUpTo() === total, { what: 'the confirms' });
    // The first LANE messages went to the lane's buffer as they were committed; the rest are only on disk.
    assert.equal(reads.length, 0);

    engine.consume(session, { queue: 'q', consumerTag: 'c', prefetch: 5 });
    await waitFor(() => deliveries.length === 5 && reads.length === 1, { what: 'five deliveries and one read' });
    // Five taken leaves three, past the read-ahead point of half the buffer: the lane is topped up by five,
    // after the deliveries, not refilled once empty.
    assert.equal(reads[0]!.limit, LANE - 3);
    assert.equal(reads[0]!.afterSeq, deliveries[4]!.message.seq + 3, 'reads on from the last row in the buffer');

    for (let acked = 0; acked < total; acked++) {
      await waitFor(() => deliveries.length > acked, { what: `delivery ${acked + 1}` });
      engine.settle(session, [deliveries[acked]!.deliveryTag], 'ack');
    }
    assert.deepEqual(
      deliveries.map((d) => text.decode(d.message.body)),
      Array.from({ length: total }, (_, i) => `m${i}`),
    );
    assert.ok(
      reads.every((r) => r.limit < LANE),
      `every read was a top-up of a lane that still held messages: ${JSON.stringify(reads.map((r) => r.limit))}`,
    );
  });
});
