/**
 * The task layer against a real broker, with workers in this process (async and solo pools):
 * results, failures, retries, time and rate limits, states, revocation, callbacks.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { connect, createApp, Reject, TaskFailedError, type App, type AppOptions, type WorkerEvent, type WorkerOptions } from '../../clients/index.js';
import { startTestServer, waitFor } from '../helpers/server.js';

let queueNo = 0;

/** A broker, an app whose tasks go to a queue of this test's own, and a way to start workers. */
async function setup(t: TestContext, appOptions: Partial<AppOptions> = {}) {
  const server = await startTestServer(t, { resultSweepMs: 100 });
  const queue = `tasks-${++queueNo}`;
  const app = createApp({ broker: server.url, defaultQueue: queue, ...appOptions });
  t.after(() => app.close());
  const events: WorkerEvent[] = [];
  const startWorker = async (options: WorkerOptions = {}) => {
    const worker = app.worker({ queues: [queue], ...options });
    worker.on((event) => events.push(event));
    t.after(() => worker.close({ force: true }));
    await worker.start();
    return worker;
  };
  return { ...server, app, queue, events, startWorker };
}

class FlakyError extends Error {
  override name = 'FlakyError';
}

describe('results', () => {
  it('runs a task sent with delay and returns its result, typed', async (t) => {
    const { app, startWorker } = await setup(t);
    const add = app.task('add', async (a: number, b: number) => a + b);
    await startWorker();
    const result = await add.delay(2, 3);
    const sum: number = await result.get({ timeoutMs: 5000 });
    assert.equal(sum, 5);
    assert.equal(await result.state(), 'SUCCESS');
  });

  it('rethrows a failure with the task error type, message and stack', async (t) => {
    const { app, startWorker } = await setup(t);
    const fail = app.task('fail', async (what: string) => {
      throw new TypeError(`bad ${what}`);
    });
    await startWorker();
    const result = await fail.delay('input');
    const err = await result.get({ timeoutMs: 5000 }).then(
      () => assert.fail('get() should reject'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TaskFailedError);
    assert.equal(err.code, 'E_TASK_FAILED');
    assert.equal(err.name, 'TypeError');
    assert.equal(err.message, 'bad input');
    assert.match(err.stack ?? '', /TypeError: bad input/);
    const info = await result.info();
    assert.equal(info.state, 'FAILURE');
    assert.equal(info.error?.type, 'TypeError');
  });

  it('reports PENDING while queued, STARTED while running, NOT_FOUND for an id never sent', async (t) => {
    const { app, startWorker } = await setup(t);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const wait = app.task('wait', async () => {
      await gate;
      return 'done';
    });
    const result = await wait.delay();
    assert.equal(await result.state(), 'PENDING');
    assert.equal(await app.asyncResult('no-such-task').state(), 'NOT_FOUND');
    await assert.rejects(app.asyncResult('no-such-task').get({ timeoutMs: 1000 }), { code: 'E_TASK_NOT_FOUND' });
    await startWorker();
    await waitFor(async () => (await result.state()) === 'STARTED', { what: 'STARTED' });
    await assert.rejects(result.get({ timeoutMs: 100 }), { code: 'E_TASK_TIMEOUT' });
    open();
    assert.equal(await result.get({ timeoutMs: 5000 }), 'done');
  });

  it('stores nothing for ignoreResult, and get() says so', async (t) => {
    const { app, url, startWorker, events } = await setup(t);
    const fire = app.task('fire', async () => 'ignored', { ignoreResult: true });
    await startWorker();
    const result = await fire.delay();
    assert.equal(result.ignored, true);
    await assert.rejects(result.get(), { code: 'E_RESULT_IGNORED' });
    await waitFor(() => events.some((e) => e.type === 'task-succeeded' && e.taskId === result.id), { what: 'the task to run' });
    const conn = await connect(url);
    t.after(() => conn.close());
    const stored = await conn.getResult(result.id);
    assert.equal(stored.state, 'NOT_FOUND');
    assert.equal(stored.payload, null);
  });

  it('expires results after their TTL', async (t) => {
    const { app, startWorker } = await setup(t);
    const quick = app.task('quick', async () => 1, { resultTtlMs: 200 });
    await startWorker();
    const result = await quick.delay();
    assert.equal(await result.get({ timeoutMs: 5000 }), 1);
    await waitFor(async () => (await result.state()) === 'NOT_FOUND', { timeoutMs: 5000, what: 'the result to expire' });
  });
});

describe('retries', () => {
  it('retries automatically with backoff and succeeds on the third try', async (t) => {
    const { app, startWorker, events } = await setup(t);
    const attempts: number[] = [];
    const flaky = app.task(
      'flaky',
      async function () {
        attempts.push(Date.now());
        if (this.retries < 2) throw new FlakyError(`attempt ${this.retries + 1}`);
        return `ok after ${this.retries} retries`;
      },
      { autoretryFor: [FlakyError], retry: { max: 5, backoffMs: 100, jitter: false } },
    );
    await startWorker();
    const result = await flaky.delay();
    assert.equal(await result.get({ timeoutMs: 10_000 }), 'ok after 2 retries');
    assert.equal(attempts.length, 3);
    const [a, b, c] = attempts as [number, number, number];
    // Exponential: 100 ms, then 200 ms (the broker holds delays to within 50 ms, never early).
    assert.ok(b - a >= 100 - 5, `first retry after ${b - a} ms`);
    assert.ok(c - b >= 200 - 5, `second retry after ${c - b} ms`);
    assert.deepEqual(
      events.filter((e) => e.type === 'task-retried').map((e) => (e as { retries: number }).retries),
      [1, 2],
    );
  });

  it('does not retry errors autoretryFor does not match, and fails after retry.max', async (t) => {
    const { app, startWorker } = await setup(t);
    let runs = 0;
    const picky = app.task(
      'picky',
      async (kind: string) => {
        runs++;
        if (kind === 'flaky') throw new FlakyError('again');
        throw new RangeError('not retried');
      },
      { autoretryFor: (err) => err instanceof FlakyError, retry: { max: 2, backoffMs: 10 } },
    );
    await startWorker();
    await assert.rejects((await picky.delay('range')).get({ timeoutMs: 5000 }), { name: 'RangeError' });
    assert.equal(runs, 1);
    runs = 0;
    await assert.rejects((await picky.delay('flaky')).get({ timeoutMs: 5000 }), { name: 'FlakyError' });
    assert.equal(runs, 3, 'the first run and two retries');
  });

  it('lets a task retry itself with a countdown through its context', async (t) => {
    const { app, startWorker } = await setup(t);
    const seen: Array<{ retries: number; at: number; id: string }> = [];
    const poll = app.task('poll', async function (target: number) {
      seen.push({ retries: this.retries, at: Date.now(), id: this.id });
      if (this.retries < target) this.retry({ countdownMs: 300 });
      return this.retries;
    });
    await startWorker();
    const result = await poll.delay(1);
    assert.equal(await result.get({ timeoutMs: 5000 }), 1);
    assert.equal(seen.length, 2);
    assert.ok(seen[1]!.at - seen[0]!.at >= 295, `retried after ${seen[1]!.at - seen[0]!.at} ms`);
    assert.equal(seen[0]!.id, result.id);
    assert.equal(seen[1]!.id, result.id, 'a retry keeps the task id');
  });

  it('shows RETRY between tries', async (t) => {
    const { app, startWorker } = await setup(t);
    const later = app.task('later', async function () {
      if (this.retries === 0) this.retry({ countdownMs: 60_000 });
      return 'never this soon';
    });
    await startWorker();
    const result = await later.delay();
    await waitFor(async () => (await result.state()) === 'RETRY', { what: 'RETRY' });
    const info = await result.info();
    assert.equal(info.retries, 1);
  });

  it('fails at once without retries on Reject', async (t) => {
    const { app, startWorker } = await setup(t);
    let runs = 0;
    const refuse = app.task(
      'refuse',
      async () => {
        runs++;
        throw new Reject('not for us', { cause: new Error('bad payload') });
      },
      { retry: { max: 5, backoffMs: 10 } },
    );
    await startWorker();
    await assert.rejects((await refuse.delay()).get({ timeoutMs: 5000 }), { message: 'bad payload' });
    assert.equal(runs, 1);
  });
});

describe('time limits', () => {
  it('aborts the task signal at the soft time limit, and the task may clean up', async (t) => {
    const { app, startWorker } = await setup(t);
    const slow = app.task(
      'slow',
      async function () {
        await new Promise<void>((resolve) => this.signal.addEventListener('abort', () => resolve()));
        return `cleaned up after ${(this.signal.reason as Error).name}`;
      },
      { softTimeLimitMs: 100 },
    );
    await startWorker();
    assert.equal(await (await slow.delay()).get({ timeoutMs: 5000 }), 'cleaned up after SoftTimeLimitExceeded');
  });

  it('fails a task past its hard time limit in the async pool and frees its slot', async (t) => {
    const { app, startWorker } = await setup(t);
    const hang = app.task('hang', () => new Promise<never>(() => {}), { timeLimitMs: 100 });
    const add = app.task('add', async (a: number, b: number) => a + b);
    await startWorker({ concurrency: 1 });
    await assert.rejects((await hang.delay()).get({ timeoutMs: 5000 }), { name: 'TimeLimitExceeded' });
    assert.equal(await (await add.delay(1, 1)).get({ timeoutMs: 5000 }), 2);
  });
});

describe('rate limits', () => {
  it('holds a 5/s rate limit per worker', async (t) => {
    const { app, startWorker } = await setup(t);
    const starts: number[] = [];
    const limited = app.task('limited', async () => void starts.push(Date.now()), { rateLimit: '5/s' });
    const results = await Promise.all(Array.from({ length: 11 }, () => limited.delay()));
    await startWorker({ concurrency: 10 });
    await Promise.all(results.map((r) => r.get({ timeoutMs: 10_000 })));
    starts.sort((a, b) => a - b);
    const span = starts.at(-1)! - starts[0]!;
    // 11 starts at 5/s are 10 intervals of 200 ms: at least 2 s from the first to the last.
    assert.ok(span >= 2000 - 20, `11 starts took ${span} ms`);
    for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! - starts[i - 1]! >= 190, `gap ${i} was ${starts[i]! - starts[i - 1]!} ms`);
  });

  it('lets other tasks by while one task type waits for its rate limit', async (t) => {
    const { app, startWorker } = await setup(t);
    const slowRate = app.task('slow-rate', async () => 'limited', { rateLimit: '1/m' });
    const free = app.task('free', async () => 'free');
    await startWorker({ concurrency: 2 });
    const first = await slowRate.delay();
    assert.equal(await first.get({ timeoutMs: 5000 }), 'limited');
    const blocked = await slowRate.delay();
    const other = await free.delay();
    assert.equal(await other.get({ timeoutMs: 5000 }), 'free');
    assert.equal(await blocked.state(), 'PENDING');
  });
});

describe('sending', () => {
  it('holds a countdown in the broker and runs the task after it', async (t) => {
    const { app, startWorker } = await setup(t);
    const at = app.task('at', async () => Date.now());
    await startWorker();
    const sentAt = Date.now();
    const ranAt = await (await at.applyAsync([], { countdownMs: 300 })).get({ timeoutMs: 5000 });
    assert.ok(ranAt - sentAt >= 295, `ran ${ranAt - sentAt} ms after the send`);
  });

  it('marks a task REVOKED instead of running it once it expired', async (t) => {
    const { app, startWorker } = await setup(t);
    let runs = 0;
    const stale = app.task('stale', async () => void runs++);
    const result = await stale.applyAsync([], { expiresMs: 50 });
    await new Promise((resolve) => setTimeout(resolve, 100)); // let it expire while no worker runs
    await startWorker();
    await assert.rejects(result.get({ timeoutMs: 5000 }), { code: 'E_TASK_REVOKED' });
    assert.equal(runs, 0);
  });

  it('routes by exact name and glob, and applyAsync can override the queue', async (t) => {
    const server = await startTestServer(t);
    const app = createApp({ broker: server.url, routes: { 'feed.*': { queue: 'feeds', priority: 3 }, 'mail.send': 'mail' } });
    t.after(() => app.close());
    assert.deepEqual(app.route('feed.import'), { queue: 'feeds', priority: 3 });
    assert.deepEqual(app.route('mail.send'), { queue: 'mail' });
    assert.deepEqual(app.route('other'), { queue: 'tasks' });
    const where = app.task('feed.where', async function () {
      return this.queue;
    });
    const worker = app.worker({ queues: ['feeds', 'elsewhere'] });
    t.after(() => worker.close({ force: true }));
    await worker.start();
    assert.equal(await (await where.delay()).get({ timeoutMs: 5000 }), 'feeds');
    assert.equal(await (await where.applyAsync([], { queue: 'elsewhere' })).get({ timeoutMs: 5000 }), 'elsewhere');
  });

  it('calls link with the result and linkError with the failure', async (t) => {
    const { app, startWorker } = await setup(t);
    const calls: unknown[][] = [];
    const double = app.task('double', async (n: number) => n * 2);
    const fail = app.task('fail', async () => {
      throw new Error('nope');
    });
    const record = app.task('record', async (...args: unknown[]) => void calls.push(args));
    await startWorker();
    await (await double.applyAsync([21], { link: record.s('extra') })).get({ timeoutMs: 5000 });
    await waitFor(() => calls.length === 1, { what: 'the callback' });
    assert.deepEqual(calls[0], [42, 'extra']);
    const failed = await fail.applyAsync([], { linkError: record });
    await assert.rejects(failed.get({ timeoutMs: 5000 }));
    await waitFor(() => calls.length === 2, { what: 'the errback' });
    const failure = calls[1]![0] as { taskId: string; task: string; type: string; message: string };
    assert.equal(failure.taskId, failed.id);
    assert.equal(failure.task, 'fail');
    assert.equal(failure.message, 'nope');
  });

  it('runs a task id sent twice only once', async (t) => {
    const { app, startWorker } = await setup(t);
    let runs = 0;
    const once = app.task('once', async () => ++runs);
    await once.applyAsync([], { taskId: 'order-42' });
    await once.applyAsync([], { taskId: 'order-42' });
    await startWorker();
    assert.equal(await app.asyncResult('order-42').get({ timeoutMs: 5000 }), 1);
    assert.equal(runs, 1);
  });

  it('refuses bad calls with E_TASK_INVALID', async (t) => {
    const { app } = await setup(t);
    const add = app.task('add', async (a: number, b: number) => a + b);
    assert.throws(() => app.task('add', async () => 0), { code: 'E_TASK_INVALID' });
    assert.throws(() => app.task('', async () => 0), { code: 'E_TASK_INVALID' });
    assert.throws(() => app.task('x', async () => 0, { rateLimit: 'fast' }), { code: 'E_TASK_INVALID' });
    assert.throws(() => app.task('y', async () => 0, { softTimeLimitMs: 10, timeLimitMs: 5 }), { code: 'E_TASK_INVALID' });
    await assert.rejects(add.applyAsync([1, 2], { countdownMs: -1 }), { code: 'E_TASK_INVALID' });
    await assert.rejects(add.applyAsync([1n as unknown as number, 2]), { code: 'E_TASK_INVALID' });
    assert.throws(() => app.worker({ pool: 'processes' }), { code: 'E_TASK_INVALID' });
    assert.throws(() => app.worker({ concurrency: 0 }), { code: 'E_TASK_INVALID' });
    assert.throws(() => createApp({} as AppOptions), { code: 'E_TASK_INVALID' });
  });
});

describe('revoke', () => {
  it('never runs a revoked queued or delayed task, and get() says REVOKED', async (t) => {
    const { app, startWorker } = await setup(t);
    const ran: string[] = [];
    const job = app.task('job', async (label: string) => void ran.push(label));
    const queued = await job.delay('queued');
    const delayed = await job.applyAsync(['delayed'], { countdownMs: 200 });
    const kept = await job.delay('kept');
    await queued.revoke();
    await app.revoke(delayed.id);
    await startWorker();
    await kept.get({ timeoutMs: 5000 });
    await assert.rejects(queued.get({ timeoutMs: 5000 }), { code: 'E_TASK_REVOKED' });
    await assert.rejects(delayed.get({ timeoutMs: 5000 }), { code: 'E_TASK_REVOKED' });
    // The delayed copy would have been due by now; give its promotion a moment to be dropped.
    const probe = await job.applyAsync(['probe'], { countdownMs: 300 });
    await probe.get({ timeoutMs: 5000 });
    assert.deepEqual(ran.sort(), ['kept', 'probe']);
  });

  it('aborts the signal of a running task on revoke', async (t) => {
    const { app, startWorker } = await setup(t);
    const started: string[] = [];
    const long = app.task('long', async function () {
      started.push(this.id);
      await new Promise<void>((resolve) => this.signal.addEventListener('abort', () => resolve()));
      return `aborted: ${(this.signal.reason as { code?: string }).code}`;
    });
    await startWorker();
    const result = await long.delay();
    await waitFor(() => started.length === 1, { what: 'the task to start' });
    await result.revoke();
    await assert.rejects(result.get({ timeoutMs: 5000 }), { code: 'E_TASK_REVOKED' });
    assert.equal(await result.state(), 'REVOKED');
  });
});

describe('workers', () => {
  it('runs one task at a time in the solo pool', async (t) => {
    const { app, startWorker } = await setup(t);
    let running = 0;
    let most = 0;
    const one = app.task('one', async () => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running--;
    });
    await startWorker({ pool: 'solo' });
    await Promise.all((await Promise.all(Array.from({ length: 5 }, () => one.delay()))).map((r) => r.get({ timeoutMs: 5000 })));
    assert.equal(most, 1);
  });

  it('runs up to concurrency tasks at once in the async pool', async (t) => {
    const { app, startWorker } = await setup(t);
    let running = 0;
    let most = 0;
    const io = app.task('io', async () => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, 50));
      running--;
    });
    await startWorker({ concurrency: 8 });
    await Promise.all((await Promise.all(Array.from({ length: 20 }, () => io.delay()))).map((r) => r.get({ timeoutMs: 5000 })));
    assert.equal(most, 8);
  });

  it('keeps the lease of a long task alive', async (t) => {
    const server = await startTestServer(t);
    const app: App = createApp({ broker: server.url, defaultQueue: 'short-lease' });
    t.after(() => app.close());
    const conn = await connect(server.url);
    t.after(() => conn.close());
    await conn.assertQueue('short-lease', { visibilityTimeoutMs: 300 });
    let runs = 0;
    const long = app.task('long', async () => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 1500)); // five lease lengths
      return 'done';
    });
    const worker = app.worker({ queues: ['short-lease'] });
    t.after(() => worker.close({ force: true }));
    await worker.start();
    assert.equal(await (await long.delay()).get({ timeoutMs: 5000 }), 'done');
    assert.equal(runs, 1, 'the lease never ran out, so the task was not delivered again');
  });

  it('gives prefetched tasks back at once on warm shutdown and finishes the running one', async (t) => {
    const { app, startWorker, broker, queue } = await setup(t);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let started = 0;
    const blocker = app.task('blocker', async () => {
      started++;
      await gate;
      return 'finished';
    });
    const running = await blocker.delay();
    const prefetched = await Promise.all([blocker.delay(), blocker.delay()]);
    const worker = await startWorker({ concurrency: 1, prefetchMultiplier: 3 });
    await waitFor(() => started === 1 && worker.held === 3, { what: 'one running, two prefetched' });
    const closing = worker.close();
    const stats = () => broker.engine.queueStats().find((q) => q.name === queue)!;
    await waitFor(() => stats().ready === 2, { what: 'the prefetched tasks back in the queue' });
    assert.equal(worker.running, 1);
    open();
    await closing;
    assert.equal(await running.get({ timeoutMs: 5000 }), 'finished');
    assert.equal(started, 1);
    for (const r of prefetched) assert.equal(await r.state(), 'PENDING');
  });
});

describe('revoke of early-acked tasks', () => {
  it('reaches a running task that acked its message as it started', async (t) => {
    const { app, startWorker } = await setup(t);
    const started: string[] = [];
    const early = app.task(
      'early',
      async function () {
        started.push(this.id);
        await new Promise<void>((resolve) => this.signal.addEventListener('abort', () => resolve()));
        return 'stopped';
      },
      { acksLate: false },
    );
    await startWorker();
    const result = await early.delay();
    await waitFor(() => started.length === 1, { what: 'the task to start' });
    await result.revoke();
    await assert.rejects(result.get({ timeoutMs: 5000 }), { code: 'E_TASK_REVOKED' });
  });

  it('announces a revocation to consuming connections only, without a delivery', async (t) => {
    const { url, queue } = await setup(t);
    const consuming = await connect(url);
    const idle = await connect(url);
    t.after(() => consuming.close());
    t.after(() => idle.close());
    await consuming.assertQueue(queue);
    await consuming.consume(queue, () => {});
    const heard: Array<{ taskId: string; terminate: boolean }> = [];
    const idleHeard: unknown[] = [];
    consuming.onTaskRevoked((event) => heard.push(event));
    idle.onTaskRevoked((event) => idleHeard.push(event));
    await idle.revoke('some-task', { terminate: true });
    await waitFor(() => heard.length === 1, { what: 'the notice' });
    assert.deepEqual(heard[0], { taskId: 'some-task', terminate: true });
    assert.deepEqual(idleHeard, []);
  });
});

describe('app connection', () => {
  it('tries again on the next send when the broker was not up for the first', async (t) => {
    const server = await startTestServer(t);
    const port = Number(new URL(server.url).port);
    await server.broker.close();
    const app = createApp({ broker: server.url, connection: { connectTimeoutMs: 1000 } });
    t.after(() => app.close());
    const ping = app.task('ping', async () => 'pong');
    await assert.rejects(ping.delay());
    const again = await startTestServer(t, { port, dataDir: server.dataDir });
    const worker = app.worker();
    t.after(() => worker.close({ force: true }));
    await worker.start();
    assert.equal(await (await ping.delay()).get({ timeoutMs: 5000 }), 'pong');
    assert.equal(again.url, server.url);
  });
});
