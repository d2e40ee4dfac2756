import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createApp } from '../../clients/index.js';
import { newTaskId } from '../../clients/tasks/task-id.js';
import { startTestServer } from '../helpers/server.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MAX_MS = 2 ** 48 - 1;

/** The milliseconds a v7 id carries in its first 48 bits. */
function msOf(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

describe('task ids', () => {
  it('are UUID version 7 carrying the time they were made', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_MS }), (ms) => {
        const id = newTaskId(ms);
        assert.match(id, UUID_V7);
        assert.equal(msOf(id), ms);
      }),
    );
    const before = Date.now();
    const id = newTaskId();
    assert.ok(msOf(id) >= before && msOf(id) <= Date.now(), `${id} carries ${msOf(id)}, made at ${before}`);
  });

  it('sort by the millisecond they were made in', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_MS - 1 }), fc.integer({ min: 1, max: 1000 }), (ms, later) => {
        const t2 = Math.min(MAX_MS, ms + later);
        assert.ok(newTaskId(ms) < newTaskId(t2));
      }),
    );
  });

  it('do not repeat, within one millisecond and across the random pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50_000; i++) seen.add(newTaskId(1_700_000_000_000));
    assert.equal(seen.size, 50_000);
  });

  it('are what delay() hands out when no taskId is given', async (t) => {
    const { url } = await startTestServer(t);
    const app = createApp({ broker: url, defaultQueue: 'ids' });
    t.after(() => app.close());
    const noop = app.task('noop', async () => null);
    const before = Date.now();
    const first = await noop.delay();
    const second = await noop.delay();
    assert.match(first.id, UUID_V7);
    assert.match(second.id, UUID_V7);
    assert.ok(msOf(first.id) >= before && first.id !== second.id);
    assert.equal((await noop.applyAsync([], { taskId: 'mine-1' })).id, 'mine-1', 'a given taskId is kept as it is');
  });
});
