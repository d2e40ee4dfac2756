/**
 * Berth through its public SDK (`dist/clients/index.js`). The broker itself is
 * a `berth serve` child process of the orchestrator.
 */
import { BrokerError, connect, createApp, type AsyncResult, type Connection, type Worker } from '../../clients/index.js';
import { errorMessage, publishWindowed, withDeadline } from '../lib/util.js';
import { closeWithin, fillThroughSession } from './common.js';
import type { Adapter, ConsumeOptions, OnMessage, Session, Subscription, TaskBench, TaskBenchOptions } from './types.js';

function isNotFound(err: unknown): boolean {
  return err instanceof BrokerError && err.code === 'E_QUEUE_NOT_FOUND';
}

class BerthSession implements Session {
  readonly #conn: Connection;
  constructor(conn: Connection) {
    this.#conn = conn;
  }
  async publish(queue: string, body: Buffer): Promise<void> {
    await this.#conn.publish(queue, body);
  }
  async consume(queue: string, options: ConsumeOptions, onMessage: OnMessage): Promise<Subscription> {
    const sub = await this.#conn.consume(
      queue,
      async (msg) => {
        onMessage(msg.body);
        await msg.ack();
      },
      { prefetch: options.prefetch },
    );
    return { cancel: () => sub.cancel() };
  }
  close(): Promise<void> {
    return closeWithin(5000, () => this.#conn.close());
  }
}

/** Handles kept for the after-run check: about ten spread over the run, and the last one sent. */
function sampled(i: number, n: number): boolean {
  return i % Math.max(1, Math.floor(n / 10)) === 0 || i === n - 1;
}

/**
 * w6 through the task layer, as a user would write it: an app with one no-op task, `delay()` to
 * send, and `app.worker()` (async pool) in this process. Results kept is the task layer's default;
 * otherwise the task is registered with `ignoreResult: true`.
 */
async function berthTaskBench(url: string, { queue, keepResults }: TaskBenchOptions): Promise<TaskBench> {
  const app = createApp({ broker: url, defaultQueue: queue, connection: { clientName: 'bench-tasks', connectTimeoutMs: 10_000 } });
  const noop = app.task('bench.noop', async (_i: number) => null, keepResults ? {} : { ignoreResult: true });
  const samples: Array<AsyncResult<null>> = [];
  let worker: Worker | null = null;
  return {
    async enqueue(n, inFlight, stop) {
      return publishWindowed(
        n,
        inFlight,
        async (i) => {
          const handle = await noop.delay(i);
          if (sampled(i, n)) samples.push(handle);
        },
        { stop },
      );
    },
    async startWorker(concurrency, onDone, onError) {
      // pool 'async' is the default; prefetchMultiplier (4) and acksLate (true) stay at theirs.
      const w = app.worker({ queues: [queue], concurrency, pool: 'async' });
      worker = w;
      w.on((event) => {
        if (event.type === 'task-succeeded') onDone();
        else if (event.type === 'task-failed') onError(new Error(`task failed: ${event.error.message}`));
        else if (event.type === 'error') onError(event.error);
      });
      await w.start();
    },
    async check() {
      const notes: string[] = [];
      if (keepResults) {
        let wrong = 0;
        let first = '';
        for (const handle of samples) {
          try {
            const value = await withDeadline(handle.get({ timeoutMs: 10_000 }), 15_000, `result of ${handle.id}`);
            if (value !== null) throw new Error(`result ${JSON.stringify(value)}, expected null`);
          } catch (err) {
            wrong++;
            first ||= errorMessage(err);
          }
        }
        if (wrong > 0) notes.push(`${wrong} of ${samples.length} sampled results not readable: ${first}`);
      } else {
        const ignored = samples.filter((h) => h.ignored).length;
        if (ignored !== samples.length) notes.push(`${samples.length - ignored} of ${samples.length} sampled tasks were not sent with ignoreResult`);
        const first = samples[0];
        if (first !== undefined) {
          const state = await app.asyncResult(first.id).state();
          if (state !== 'NOT_FOUND') notes.push(`an ignoreResult task has state ${state} in the broker, expected NOT_FOUND`);
        }
      }
      return notes;
    },
    async close() {
      const w = worker;
      worker = null;
      if (w !== null) await closeWithin(15_000, () => w.close());
      await closeWithin(5000, () => app.close());
    },
  };
}

export function berthAdapter(url: string, pid: number | null): Adapter {
  let admin: Connection | null = null;
  const need = (): Connection => {
    if (admin === null) throw new Error('berth adapter used before open()');
    return admin;
  };
  const adapter: Adapter = {
    id: 'berth',
    brokerPid: pid,
    async open() {
      admin = await connect(url, { clientName: 'bench-admin', connectTimeoutMs: 5000 });
    },
    async version() {
      return 'this checkout';
    },
    async resetQueue(queue) {
      await adapter.deleteQueue(queue);
      await need().assertQueue(queue);
    },
    async deleteQueue(queue) {
      try {
        await need().deleteQueue(queue);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
    async session() {
      return new BerthSession(await connect(url, { clientName: 'bench', connectTimeoutMs: 10_000 }));
    },
    idleConnection: () => adapter.session(),
    fill: (queue, count) => fillThroughSession(() => adapter.session(), queue, count),
    taskBench: (options) => berthTaskBench(url, options),
    async cleanupAll(_queues) {
      // The broker and its data folder belong to the bench and are removed with it.
    },
    async close() {
      if (admin !== null) await closeWithin(5000, () => admin!.close());
      admin = null;
    },
  };
  return adapter;
}
