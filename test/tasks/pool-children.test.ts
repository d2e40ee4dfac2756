/**
 * What only child pools can do: keep the lease of a CPU-bound task alive from the worker's main
 * thread (BullMQ's "stalled job" trap), and kill a running task on revoke with terminate.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect } from '../../clients/index.js';
import { readMarks, setup, waitForMark } from './worker-process.js';

const TEST = { timeout: 20_000 } as const;

describe('child pools', () => {
  for (const pool of ['processes', 'threads'] as const) {
    it(`keeps the lease of a CPU-bound task alive in the ${pool} pool`, TEST, async (t) => {
      const { url, dir, fx, spawnWorker } = await setup(t);
      const conn = await connect(url);
      t.after(() => conn.close());
      await conn.assertQueue('cpu-short-lease', { visibilityTimeoutMs: 300 });
      await spawnWorker(['-Q', 'cpu-short-lease', '-P', pool, '-c', '2']);
      // 1.5 s of a blocked event loop in the child: five lease lengths.
      const result = await fx.burn.applyAsync([1500, 'long'], { queue: 'cpu-short-lease' });
      assert.equal(await result.get({ timeoutMs: 10_000 }), 'long');
      const starts = readMarks(dir).filter((m) => m.name === 'burn:start:long');
      assert.equal(starts.length, 1, 'the lease never ran out, so no second run started');
    });
  }

  it('kills a running CPU-bound task on revoke with terminate, and the worker keeps serving', TEST, async (t) => {
    const { dir, fx, spawnWorker } = await setup(t);
    const worker = await spawnWorker(['-P', 'processes', '-c', '1']);
    const result = await fx.burn.delay(60_000, 'forever');
    const start = await waitForMark(dir, 'burn:start:forever');
    assert.notEqual(start.pid, worker.pid, 'it runs in a child');
    await result.revoke({ terminate: true });
    await assert.rejects(result.get({ timeoutMs: 10_000 }), { code: 'E_TASK_REVOKED' });
    assert.equal(await (await fx.add.delay(20, 22)).get({ timeoutMs: 10_000 }), 42);
    assert.throws(() => process.kill(start.pid, 0), 'the child that ran it is gone');
  });
});
