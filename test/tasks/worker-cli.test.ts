/**
 * `berth worker` as users run it: a real broker (in this process), real worker processes spawned
 * from the built CLI on the shared fixture app, and tasks sent from this process. Tests see what
 * ran where through the marks the fixture writes (name + pid), the workers' JSON log lines, task
 * results, and the broker's management API (`GET /api/queues`: ready/unacked per queue).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { TaskFailedError } from '../../clients/index.js';
import { processAlive, waitFor } from '../helpers/server.js';
import { CLI, FIXTURE, openGate, queueStats, readMarks, setup, waitForMark, waitForQueue, type WorkerProcess } from './worker-process.js';

/** Every wait on a result is bounded, so a stuck task fails its test instead of hanging the file. */
const GET = { timeoutMs: 10_000 } as const;
const TEST = { timeout: 20_000 } as const;

/** Task ids the worker logged as received (debug level, which the tests turn on). */
function received(worker: WorkerProcess, task: string): string[] {
  return worker.logs.filter((line) => line.msg === 'task received' && line.task === task).map((line) => String(line.taskId));
}

describe('berth worker', () => {
  describe('routing', () => {
    it('runs feed.import only on a worker of the feeds queue, not on one of the default queue', TEST, async (t) => {
      const { fx, dir, spawnWorker } = await setup(t);
      const feeds = await spawnWorker(['-Q', 'feeds']);
      const tasks = await spawnWorker(['-Q', 'tasks']);

      assert.equal(await (await fx.feedImport.delay('x')).get(GET), 'imported x');
      const more = await Promise.all(['a', 'b', 'c', 'd'].map((feed) => fx.feedImport.delay(feed)));
      assert.deepEqual(await Promise.all(more.map((r) => r.get(GET))), ['imported a', 'imported b', 'imported c', 'imported d']);
      // The default-queue worker is alive and consuming all along: it runs the tasks of its own queue.
      assert.equal((await (await fx.whoami.delay()).get(GET)).pid, tasks.pid);

      const imports = readMarks(dir).filter((m) => m.name.startsWith('feed.import:'));
      assert.equal(imports.length, 5);
      for (const m of imports) assert.equal(m.pid, feeds.pid, `${m.name} ran on pid ${m.pid}, not on the feeds worker ${feeds.pid}`);
      assert.deepEqual(received(tasks, 'feed.import'), [], 'the default-queue worker never even received a feed.import');
    });
  });

  describe('hard time limit', () => {
    for (const pool of ['processes', 'threads'] as const) {
      it(`fails a task past timeLimitMs with TimeLimitExceeded in the ${pool} pool, and keeps serving from a new child`, TEST, async (t) => {
        const { fx, dir, spawnWorker } = await setup(t);
        const worker = await spawnWorker(['-P', pool, '-c', '1']);
        const before = await (await fx.whoami.delay()).get(GET);

        const spinning = await fx.spin.delay(60_000);
        await assert.rejects(spinning.get(GET), (err: unknown) => {
          assert.ok(err instanceof TaskFailedError, `expected a TaskFailedError, got ${String(err)}`);
          assert.equal(err.code, 'E_TASK_FAILED');
          assert.equal(err.name, 'TimeLimitExceeded');
          assert.equal(err.type, 'TimeLimitExceeded');
          assert.equal(err.errorCode, 'E_TASK_TIME_LIMIT');
          return true;
        });
        assert.equal(await spinning.state(), 'FAILURE');

        // The same worker (one slot) serves the next tasks.
        assert.equal(await (await fx.add.delay(2, 3)).get(GET), 5);
        const after = await (await fx.whoami.delay()).get(GET);
        assert.equal(worker.hasExited(), false);

        const spinMark = readMarks(dir).find((m) => m.name === 'cpu.spin:start');
        if (pool === 'processes') {
          assert.notEqual(before.pid, worker.pid, 'tasks run in a forked child, not in the worker');
          assert.equal(spinMark?.pid, before.pid, 'the spin ran in the child that served before it');
          assert.notEqual(after.pid, before.pid, 'the killed child was replaced by a new process');
          assert.throws(() => process.kill(before.pid, 0), { code: 'ESRCH' }, 'the killed child is gone');
        } else {
          assert.equal(before.pid, worker.pid);
          assert.equal(after.pid, worker.pid);
          assert.notEqual(before.threadId, 0, 'tasks run in a worker thread, not the main thread');
          assert.notEqual(after.threadId, before.threadId, 'the terminated thread was replaced by a new one');
        }
      });
    }
  });

  describe('lost worker', () => {
    it('runs a task again on another worker after its worker is killed with SIGKILL mid-task (acksLate)', TEST, async (t) => {
      const { fx, dir, spawnWorker } = await setup(t);
      const a = await spawnWorker([]);
      const result = await fx.gate.delay('g1');
      await waitForMark(dir, 'gate:start:g1', { pid: a.pid });
      a.child.kill('SIGKILL');
      await a.exited;

      const b = await spawnWorker([]);
      await waitForMark(dir, 'gate:start:g1', { pid: b.pid });
      openGate(dir, 'g1');
      assert.equal(await result.get(GET), 'g1');
      assert.deepEqual(
        readMarks(dir).filter((m) => m.name.startsWith('gate:')),
        [
          { name: 'gate:start:g1', pid: a.pid },
          { name: 'gate:start:g1', pid: b.pid },
          { name: 'gate:end:g1', pid: b.pid },
        ],
      );
    });
  });

  describe('shutdown', () => {
    it('warm (SIGTERM): gives prefetched tasks back at once, finishes the running one, exits 0', TEST, async (t) => {
      const { url, fx, dir, spawnWorker } = await setup(t);
      // Async pool, one task at a time, prefetch 1 × 4: it runs the gate task and holds 3 more.
      const w1 = await spawnWorker(['-c', '1']);
      const running = await fx.gate.delay('w1');
      await waitForMark(dir, 'gate:start:w1', { pid: w1.pid });
      const prefetched = [await fx.whoami.delay(), await fx.whoami.delay(), await fx.whoami.delay()];
      await waitForQueue(url, 'tasks', (q) => q.unacked === 4 && q.ready === 0, { what: 'w1 to hold the running task and 3 prefetched' });

      w1.child.kill('SIGTERM');
      await w1.waitForLog('warm shutdown');
      // Back in the queue while the running task still runs: only its message stays unacked.
      await waitForQueue(url, 'tasks', (q) => q.unacked === 1 && q.ready === 3 && q.consumers === 0, { what: 'the 3 prefetched tasks back in the queue' });

      const w2 = await spawnWorker([]);
      const ran = await Promise.all(prefetched.map((r) => r.get(GET)));
      assert.deepEqual(
        ran.map((r) => r.pid),
        [w2.pid, w2.pid, w2.pid],
      );
      assert.equal(w1.hasExited(), false, 'w1 waits for its running task');
      assert.equal(await running.state(), 'STARTED');

      openGate(dir, 'w1');
      assert.equal(await running.get(GET), 'w1');
      assert.deepEqual(await w1.exited, { code: 0, signal: null });
      assert.equal(await running.state(), 'SUCCESS');
      assert.deepEqual(
        readMarks(dir).filter((m) => m.name === 'gate:end:w1'),
        [{ name: 'gate:end:w1', pid: w1.pid }],
      );
      await waitForQueue(url, 'tasks', (q) => q.unacked === 0 && q.ready === 0, { what: 'an empty queue' });
    });

    for (const pool of ['async', 'processes'] as const) {
      it(`cold (second SIGTERM, -P ${pool}): stops at once, and the running task goes back to the queue for another worker`, TEST, async (t) => {
        const { url, fx, dir, spawnWorker } = await setup(t);
        const w1 = await spawnWorker(['-P', pool, '-c', '1']);
        const result = await fx.gate.delay('c1');
        const firstRun = await waitForMark(dir, 'gate:start:c1');
        assert.equal(firstRun.pid === w1.pid, pool === 'async', 'the task runs in the worker (async) or in its child (processes)');

        w1.child.kill('SIGTERM');
        await w1.waitForLog('warm shutdown');
        w1.child.kill('SIGTERM');
        await w1.waitForLog('cold shutdown');
        const exit = await w1.exited;
        assert.equal(exit.signal, null, 'the worker exits by itself');
        // The killed run is neither acked nor finished: its message is ready again.
        await waitForQueue(url, 'tasks', (q) => q.ready === 1 && q.unacked === 0, { timeoutMs: 5_000, what: 'the killed task back in the queue' });
        assert.equal(await result.state(), 'STARTED', 'no result was stored for the killed run');
        await waitFor(() => !processAlive(firstRun.pid), { what: `the process that ran the task (${firstRun.pid}) to be gone` });

        const w2 = await spawnWorker([]);
        await waitForMark(dir, 'gate:start:c1', { pid: w2.pid });
        openGate(dir, 'c1');
        assert.equal(await result.get(GET), 'c1');
        assert.deepEqual(
          readMarks(dir).filter((m) => m.name.startsWith('gate:')),
          [
            { name: 'gate:start:c1', pid: firstRun.pid },
            { name: 'gate:start:c1', pid: w2.pid },
            { name: 'gate:end:c1', pid: w2.pid },
          ],
        );
      });
    }
  });

  describe('fair dispatch', () => {
    it('-P processes -c 2 -O fair: short tasks all finish in the free child while a long one runs', TEST, async (t) => {
      const { fx, dir, spawnWorker } = await setup(t);
      await spawnWorker(['-P', 'processes', '-c', '2', '-O', 'fair']);
      const long = await fx.gate.delay('long');
      const longStart = await waitForMark(dir, 'gate:start:long');

      const shorts = await Promise.all(Array.from({ length: 10 }, (_, i) => fx.add.delay(i, 1)));
      assert.deepEqual(
        await Promise.all(shorts.map((r) => r.get(GET))),
        Array.from({ length: 10 }, (_, i) => i + 1),
      );
      const other = await (await fx.whoami.delay()).get(GET);
      assert.notEqual(other.pid, longStart.pid, 'short tasks ran in the other child');

      assert.equal(await long.state(), 'STARTED', 'the long task is still running');
      assert.equal(readMarks(dir).some((m) => m.name === 'gate:end:long'), false);
      openGate(dir, 'long');
      assert.equal(await long.get(GET), 'long');
    });
  });

  describe('prefetch (the Celery prefetch scenario)', () => {
    it('acksLate, --prefetch-multiplier 1: each worker holds only what it runs, so short tasks are not stuck behind long ones', TEST, async (t) => {
      const { url, fx, dir, spawnWorker } = await setup(t);
      const w1 = await spawnWorker(['-c', '2', '--prefetch-multiplier', '1']);
      const w2 = await spawnWorker(['-c', '1', '--prefetch-multiplier', '1']);

      // Three long tasks fill the three slots: two on w1, one on w2.
      const longNames = ['L1', 'L2', 'L3'];
      const longs = [];
      for (const name of longNames) longs.push(await fx.gate.delay(name));
      const starts = await Promise.all(longNames.map((name) => waitForMark(dir, `gate:start:${name}`)));
      assert.equal(starts.filter((m) => m.pid === w1.pid).length, 2);
      assert.equal(starts.filter((m) => m.pid === w2.pid).length, 1);

      const shorts = [];
      for (let i = 0; i < 6; i++) shorts.push(await fx.whoami.delay());
      // Every slot is busy and each worker's window (prefetch = concurrency) is full of what it
      // runs: the short tasks stay ready in the broker, where any worker that frees up takes them.
      await waitForQueue(url, 'tasks', (q) => q.unacked === 3 && q.ready === 6, { what: '3 running, 6 ready' });

      // Free one slot; the short tasks all go through it while the other two long tasks run.
      const first = starts[0]!;
      const firstName = longNames[0]!;
      openGate(dir, firstName);
      let maxUnacked = 0;
      let done = false;
      const results = Promise.all(shorts.map((r) => r.get(GET))).finally(() => (done = true));
      while (!done) {
        const q = await queueStats(url, 'tasks');
        maxUnacked = Math.max(maxUnacked, q.unacked);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const ran = await results;
      assert.ok(maxUnacked <= 3, `unacked must stay ≤ 3 (the sum of the prefetch windows), saw ${maxUnacked}`);
      for (const r of ran) assert.equal(r.pid, first.pid, 'short tasks run on the worker with the free slot');
      for (const [i, name] of longNames.entries()) {
        if (name !== firstName) assert.equal(await longs[i]!.state(), 'STARTED', `${name} still runs while the short tasks finish`);
      }
      // No worker took a short task it did not run (nothing waited in a busy worker's buffer).
      const busy = first.pid === w1.pid ? w2 : w1;
      assert.deepEqual(received(busy, 'proc.whoami'), []);

      for (const name of longNames) openGate(dir, name);
      assert.deepEqual(await Promise.all(longs.map((r) => r.get(GET))), longNames);
      await waitForQueue(url, 'tasks', (q) => q.unacked === 0 && q.ready === 0, { what: 'an empty queue' });
    });

    it('early ack (acksLate: false): each worker holds up to concurrency + prefetch, and short tasks wait behind long ones', TEST, async (t) => {
      const { url, fx, dir, spawnWorker } = await setup(t);
      const w1 = await spawnWorker(['-c', '2', '--prefetch-multiplier', '1']);
      const w2 = await spawnWorker(['-c', '1', '--prefetch-multiplier', '1']);

      const longNames = ['E1', 'E2', 'E3'];
      // Sent together, so that one dispatch hands them out by the windows alone: two to w1, one to w2.
      // One by one, a worker's early ack of a started task can reach the broker before the next
      // publish, and w1, whose window is then empty again, would take all three (two running, the
      // third prefetched behind them, never started).
      const longs = await Promise.all(longNames.map((name) => fx.gateEarly.delay(name)));
      const starts = await Promise.all(longNames.map((name) => waitForMark(dir, `gate:start:${name}`)));
      assert.equal(starts.filter((m) => m.pid === w1.pid).length, 2);
      assert.equal(starts.filter((m) => m.pid === w2.pid).length, 1);

      const shorts = [];
      for (let i = 0; i < 6; i++) shorts.push(await fx.addEarly.delay(i, 1));
      // What we assert, and why: a task acked as it starts no longer counts against its worker's
      // prefetch window, so the broker fills the window again although every slot is busy. w1
      // (prefetch 2) then holds 2 running + 2 prefetched, w2 (prefetch 1) 1 running + 1 prefetched:
      // concurrency + prefetch each. The broker sees only the prefetched ones as unacked (3 = the
      // sum of the windows); the 3 running ones are gone from its books (acked), and 6 − 3 short
      // tasks stay ready. This state is stable: nothing can start until a gate opens.
      await waitForQueue(url, 'tasks', (q) => q.unacked === 3 && q.ready === 3, { what: '3 prefetched (unacked), 3 ready' });
      await waitFor(() => received(w1, 'math.add.early').length === 2 && received(w2, 'math.add.early').length === 1, {
        what: 'w1 to hold 2 short tasks and w2 1',
      });
      // The prefetched short tasks sit in the busy workers' buffers: received, not started.
      for (const r of shorts) assert.equal(await r.state(), 'PENDING');

      for (const name of longNames) openGate(dir, name);
      assert.deepEqual(
        await Promise.all(shorts.map((r) => r.get(GET))),
        Array.from({ length: 6 }, (_, i) => i + 1),
      );
      assert.deepEqual(await Promise.all(longs.map((r) => r.get(GET))), longNames);
      await waitForQueue(url, 'tasks', (q) => q.unacked === 0 && q.ready === 0, { what: 'an empty queue' });
    });
  });

  describe('command line', () => {
    it('berth worker --help prints the usage and exits 0', TEST, () => {
      const run = spawnSync(process.execPath, [CLI, 'worker', '--help'], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^berth worker/);
      assert.match(run.stdout, /Usage:\n {2}berth worker --app MODULE/);
      for (const option of ['--queues', '--concurrency', '--pool', '--prefetch-multiplier', '-O']) assert.ok(run.stdout.includes(option), option);
      assert.equal(run.stderr, '');
    });

    it('a bad -P value exits non-zero and says what is allowed on stderr', TEST, () => {
      const run = spawnSync(process.execPath, [CLI, 'worker', '--app', FIXTURE, '-P', 'bogus'], {
        encoding: 'utf8',
        timeout: 10_000,
        env: { ...process.env, BERTH_URL: 'ws://127.0.0.1:1' },
      });
      assert.notEqual(run.status, 0);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /-P must be processes, threads, async or solo, got "bogus"/);
    });
  });
});
