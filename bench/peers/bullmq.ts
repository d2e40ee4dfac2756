/**
 * BullMQ on Redis: `Queue.add` resolves once Redis has run the add script (the
 * closest thing to a confirm), a `Worker` with `concurrency = prefetch` is the
 * consumer, and a job is acked by returning from the processor (removed on completion).
 *
 * Two deployments: the machine's Redis (:6379, as configured) and a Redis the
 * bench starts with `appendonly yes` + `appendfsync everysec`.
 */
import { Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { errorMessage, publishWindowed } from '../lib/util.js';
import { closeWithin } from './common.js';
import type { Adapter, ConsumeOptions, OnMessage, Session, Subscription, TaskBench, TaskBenchOptions } from './types.js';

/** BullMQ key prefix: every key the bench writes starts with `berthbench:`. */
const PREFIX = 'berthbench';
const JOB_OPTIONS = { removeOnComplete: true, removeOnFail: true } as const;

interface JobData {
  b: string;
}

function connectionOptions(port: number): { host: string; port: number; maxRetriesPerRequest: null; connectTimeout: number } {
  return { host: '127.0.0.1', port, maxRetriesPerRequest: null, connectTimeout: 5000 };
}

function newQueue(name: string, port: number): Queue<JobData> {
  const queue = new Queue<JobData>(name, { connection: connectionOptions(port), prefix: PREFIX, defaultJobOptions: JOB_OPTIONS });
  queue.on('error', () => {});
  return queue;
}

class BullSession implements Session {
  readonly #port: number;
  readonly #queues = new Map<string, Queue<JobData>>();
  readonly #workers = new Set<Worker<JobData>>();
  constructor(port: number) {
    this.#port = port;
  }
  async publish(queue: string, body: Buffer): Promise<void> {
    let q = this.#queues.get(queue);
    if (q === undefined) this.#queues.set(queue, (q = newQueue(queue, this.#port)));
    await q.add('m', { b: body.toString('latin1') });
  }
  async consume(queue: string, options: ConsumeOptions, onMessage: OnMessage): Promise<Subscription> {
    const worker = new Worker<JobData>(
      queue,
      async (job) => {
        onMessage(Buffer.from(job.data.b, 'latin1'));
      },
      {
        connection: connectionOptions(this.#port),
        prefix: PREFIX,
        concurrency: options.prefetch,
        removeOnComplete: { count: 0 },
        removeOnFail: { count: 0 },
      },
    );
    worker.on('error', () => {});
    this.#workers.add(worker);
    await worker.waitUntilReady();
    return {
      cancel: async () => {
        this.#workers.delete(worker);
        // Measurement is over: don't wait for the blocking fetch or jobs in hand (the queue is deleted next).
        await closeWithin(10_000, () => worker.close(true));
      },
    };
  }
  async close(): Promise<void> {
    await Promise.all([
      ...[...this.#workers].map((w) => closeWithin(10_000, () => w.close(true))),
      ...[...this.#queues.values()].map((q) => closeWithin(5000, () => q.close())),
    ]);
  }
}

interface TaskData {
  args: number[];
}

/**
 * w6 on BullMQ: `Queue.add` per task (the producer's call, like Berth's `delay()`), and a
 * `Worker` with a no-op async processor at the same concurrency, in this process.
 * Results kept = BullMQ's default retention (`removeOnComplete: false`: the job hash stays, with
 * its `returnvalue`, in the completed set); not kept = `removeOnComplete: true` (the job is deleted
 * on completion), BullMQ's nearest equivalent of `ignoreResult`.
 */
function bullTaskBench(port: number, { queue, keepResults }: TaskBenchOptions): TaskBench {
  const jobOptions = keepResults ? { removeOnComplete: false, removeOnFail: false } : { removeOnComplete: true, removeOnFail: true };
  const producer = new Queue<TaskData>(queue, { connection: connectionOptions(port), prefix: PREFIX });
  producer.on('error', () => {});
  const sampleIds: string[] = [];
  let worker: Worker<TaskData> | null = null;
  return {
    async enqueue(n, inFlight, stop) {
      const every = Math.max(1, Math.floor(n / 10));
      return publishWindowed(
        n,
        inFlight,
        async (i) => {
          const job = await producer.add('noop', { args: [i] }, jobOptions);
          if ((i % every === 0 || i === n - 1) && job.id !== undefined) sampleIds.push(job.id);
        },
        { stop },
      );
    },
    async startWorker(concurrency, onDone, onError) {
      const w = new Worker<TaskData>(queue, async () => null, { connection: connectionOptions(port), prefix: PREFIX, concurrency });
      worker = w;
      w.on('completed', () => onDone());
      w.on('failed', (_job, err) => onError(err));
      w.on('error', (err) => onError(err));
      await w.waitUntilReady();
    },
    async check(processed) {
      const notes: string[] = [];
      const completed = await producer.getCompletedCount();
      if (keepResults) {
        if (completed !== processed) notes.push(`${completed} jobs in the completed set, expected ${processed}`);
        let wrong = 0;
        let first = '';
        for (const id of sampleIds) {
          try {
            const job = await Job.fromId<TaskData>(producer, id);
            if (job === undefined) throw new Error(`job ${id} is gone`);
            if (job.returnvalue !== null) throw new Error(`job ${id} returned ${JSON.stringify(job.returnvalue)}, expected null`);
          } catch (err) {
            wrong++;
            first ||= errorMessage(err);
          }
        }
        if (wrong > 0) notes.push(`${wrong} of ${sampleIds.length} sampled results not readable: ${first}`);
      } else if (completed !== 0) {
        notes.push(`${completed} jobs kept in the completed set, expected none (removeOnComplete)`);
      }
      return notes;
    },
    async close() {
      const w = worker;
      worker = null;
      if (w !== null) await closeWithin(10_000, () => w.close());
      await closeWithin(5000, () => producer.close());
    },
  };
}

/** Deletes every key matching `pattern` with SCAN + UNLINK. */
async function unlinkMatching(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let removed = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    cursor = next;
    if (keys.length > 0) removed += await redis.unlink(...keys);
  } while (cursor !== '0');
  return removed;
}

export function bullmqAdapter(id: 'bullmq' | 'bullmq-durable', port: number, pid: number | null): Adapter {
  let admin: Redis | null = null;
  const need = (): Redis => {
    if (admin === null) throw new Error('bullmq adapter used before open()');
    return admin;
  };
  const adapter: Adapter = {
    id,
    brokerPid: pid,
    async open() {
      const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000, retryStrategy: () => null });
      redis.on('error', () => {});
      await redis.connect();
      await redis.ping();
      admin = redis;
    },
    async version() {
      const info = await need().info('server');
      const aof = (await need().config('GET', 'appendonly')) as string[];
      const fsync = (await need().config('GET', 'appendfsync')) as string[];
      const v = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
      return `Redis ${v} (appendonly ${aof[1] ?? '?'}, appendfsync ${fsync[1] ?? '?'})`;
    },
    async resetQueue(queue) {
      await adapter.deleteQueue(queue);
    },
    async deleteQueue(queue) {
      await unlinkMatching(need(), `${PREFIX}:${queue}:*`);
    },
    async session() {
      return new BullSession(port);
    },
    async idleConnection() {
      // An idle producer: one Queue, connected.
      const queue = newQueue(`${PREFIX}-idle`, port);
      await queue.waitUntilReady();
      return { close: () => closeWithin(5000, () => queue.close()) };
    },
    async fill(queue, count) {
      const q = newQueue(queue, port);
      try {
        const body = Buffer.alloc(256, 0x61).toString('latin1');
        const chunk = 1000;
        let next = 0;
        const lane = async (): Promise<void> => {
          while (next < count) {
            const n = Math.min(chunk, count - next);
            next += n;
            await q.addBulk(Array.from({ length: n }, () => ({ name: 'm', data: { b: body } })));
          }
        };
        await Promise.all([lane(), lane(), lane(), lane()]);
      } finally {
        await closeWithin(5000, () => q.close());
      }
    },
    taskBench: async (options) => bullTaskBench(port, options),
    async cleanupAll() {
      await unlinkMatching(need(), `${PREFIX}:*`);
    },
    async close() {
      if (admin !== null) admin.disconnect();
      admin = null;
    },
  };
  return adapter;
}
