/**
 * The workload table. Each case runs in a fresh client process (bench/cell.ts)
 * against one system, and returns its figures; the orchestrator only reads the
 * metadata (metrics, rounds, deadline, queues).
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpuMeter, openFilesLimit, rssBytes, rssPeakSampler } from './lib/proc.js';
import { bodyIndex, errorMessage, makeBody, percentileSorted, publishWindowed, signal, sleep, timeCap, type Deadline } from './lib/util.js';
import { QUEUE_PREFIX, type Adapter, type Endpoints, type Session, type Subscription, type SystemId } from './peers/types.js';
import type { Mode, Scale } from './scale.js';

export interface MetricDef {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  digits: number;
}

/** What one run of one case on one system measured. */
export interface CellOutcome {
  metrics: Record<string, number | null>;
  /** Broker CPU over the measured phase, percent of one core. */
  brokerCpuPct: number | null;
  notes: string[];
}

export interface CellContext {
  system: SystemId;
  mode: Mode;
  scale: Scale;
  endpoints: Endpoints;
  /** The adapter, opened. Replaced by `restartBroker`. */
  adapter: Adapter;
  deadline: Deadline;
  /** Berth only: restarts `berth serve` on the same data folder; resolves with the time until it was ready. */
  restartBroker: (() => Promise<{ readyMs: number }>) | null;
  log(message: string): void;
}

export interface CaseDef {
  id: string;
  workload: string;
  title: string;
  /** One paragraph: what is measured, how. */
  describe(scale: Scale): string;
  /** [0] is the headline figure: the one ratios, CPU and targets refer to. */
  metrics: readonly MetricDef[];
  rounds(scale: Scale): number;
  deadlineMs(scale: Scale): number;
  queues(scale: Scale): string[];
  /** Cases with the same group share one Berth broker (default: the workload). */
  brokerGroup?: string;
  /** Systems this case runs on (default all). */
  systems?: readonly SystemId[];
  /** Absent: the case is listed as not yet measurable. */
  run?: (ctx: CellContext) => Promise<CellOutcome>;
  notMeasurable?: string;
}

const q = (name: string): string => `${QUEUE_PREFIX}${name}`;
const MB = 1024 * 1024;
const now = (): number => performance.now();
const rate = (count: number, ms: number): number => count / (ms / 1000);

/** Resolves when `count` messages have arrived; `onMessage` to hand to consume. */
function counter(count: number): { onMessage: () => void; done: Promise<void>; readonly received: number } {
  let received = 0;
  const s = signal();
  return {
    onMessage: () => {
      if (++received === count) s.resolve();
    },
    done: s.promise,
    get received() {
      return received;
    },
  };
}

async function closeAll(subs: Subscription[], sessions: Session[]): Promise<void> {
  await Promise.all(subs.map((s) => s.cancel().catch(() => {})));
  await Promise.all(sessions.map((s) => s.close().catch(() => {})));
}

const throughput = (label: string): MetricDef => ({ key: 'rate', label, unit: 'msgs/s', better: 'higher', digits: 0 });

function capNote(done: number, total: number, capMs: number): string[] {
  return done < total ? [`stopped at the ${capMs / 1000} s cap: ${done.toLocaleString('en')} of ${total.toLocaleString('en')}`] : [];
}

/** Waits for the counter, the time cap or the deadline, whichever first; returns what arrived by then. */
async function waitCapped(c: { done: Promise<void>; readonly received: number }, capMs: number, deadline: Deadline, what: string): Promise<number> {
  const cap = timeCap(capMs);
  try {
    await deadline.race(Promise.race([c.done, cap.wait]), `${what} (${c.received} received)`);
  } finally {
    cap.clear();
  }
  return c.received;
}

// ---- w1 / w2: publish ----------------------------------------------------------

const w1: CaseDef = {
  id: 'w1',
  workload: 'w1',
  title: 'w1 · publish with confirms, 1000 in flight',
  describe: (s) =>
    `${s.w1.count.toLocaleString('en')} persistent 256-byte messages (or ${s.w1.capMs / 1000} s) to one durable queue, at most ${s.w1.inFlight} unconfirmed; rate = confirmed messages / time until the last confirm.`,
  metrics: [throughput('confirmed')],
  rounds: (s) => s.rounds,
  deadlineMs: (s) => 30_000 + s.w1.count * 1.5,
  queues: () => [q('w1')],
  async run({ adapter, scale, deadline }) {
    const queue = q('w1');
    await adapter.resetQueue(queue);
    const session = await adapter.session();
    const body = makeBody(0);
    const { count, inFlight, capMs } = scale.w1;
    const cap = timeCap(capMs);
    const cpu = cpuMeter(adapter.brokerPid);
    const t0 = now();
    const done = await deadline.race(
      publishWindowed(count, inFlight, () => session.publish(queue, body), { stop: () => cap.reached }),
      'publishing',
    );
    const ms = now() - t0;
    const brokerCpuPct = cpu.stop();
    cap.clear();
    await session.close();
    await adapter.deleteQueue(queue);
    return { metrics: { rate: rate(done, ms) }, brokerCpuPct, notes: capNote(done, count, capMs) };
  },
};

const w2: CaseDef = {
  id: 'w2',
  workload: 'w2',
  title: 'w2 · publish with confirms, one at a time',
  describe: (s) =>
    `${s.w2.count.toLocaleString('en')} messages, each published only after the previous one was confirmed, after ${s.w2.warmup.toLocaleString('en')} untimed warm-up publishes on the same connection; rate and confirm round-trip.`,
  metrics: [
    throughput('confirmed'),
    { key: 'p50', label: 'confirm p50', unit: 'ms', better: 'lower', digits: 3 },
    { key: 'p99', label: 'confirm p99', unit: 'ms', better: 'lower', digits: 3 },
  ],
  rounds: (s) => s.rounds,
  deadlineMs: (s) => 30_000 + (s.w2.warmup + s.w2.count) * 20,
  queues: () => [q('w2')],
  async run({ adapter, scale, deadline }) {
    const queue = q('w2');
    await adapter.resetQueue(queue);
    const session = await adapter.session();
    const body = makeBody(0);
    const { count: n, warmup, capMs } = scale.w2;
    await deadline.race(
      (async () => {
        for (let i = 0; i < warmup; i++) await session.publish(queue, body);
      })(),
      'warming up',
    );
    const lat = new Float64Array(n);
    let done = 0;
    const cpu = cpuMeter(adapter.brokerPid);
    const t0 = now();
    await deadline.race(
      (async () => {
        for (; done < n && now() - t0 < capMs; done++) {
          const t = now();
          await session.publish(queue, body);
          lat[done] = now() - t;
        }
      })(),
      'publishing',
    );
    const ms = now() - t0;
    const brokerCpuPct = cpu.stop();
    await session.close();
    await adapter.deleteQueue(queue);
    const sorted = lat.subarray(0, done).sort();
    return { metrics: { rate: rate(done, ms), p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99) }, brokerCpuPct, notes: capNote(done, n, capMs) };
  },
};

// ---- w3: consume ---------------------------------------------------------------

function w3(prefetch: number): CaseDef {
  return {
    id: `w3-p${prefetch}`,
    workload: 'w3',
    title: `w3 · consume pre-filled, manual ack, prefetch ${prefetch}`,
    describe: (s) =>
      `${s.w3.count.toLocaleString('en')} messages are stored first (not timed), then one consumer with prefetch ${prefetch} acks each one; rate = messages / time until the last delivery (or the ${s.w3.capMs / 1000} s cap). BullMQ: a Worker with concurrency ${prefetch}. JetStream: max_ack_pending ${prefetch}.`,
    metrics: [throughput('delivered+acked')],
    rounds: (s) => s.rounds,
    deadlineMs: (s) => 90_000 + s.w3.count + s.w3.capMs,
    queues: () => [q('w3')],
    async run({ adapter, scale, deadline }) {
      const queue = q('w3');
      const n = scale.w3.count;
      await adapter.resetQueue(queue);
      await deadline.race(adapter.fill(queue, n), 'pre-filling');
      await sleep(200);
      const session = await adapter.session();
      const c = counter(n);
      const cpu = cpuMeter(adapter.brokerPid);
      const t0 = now();
      const sub = await session.consume(queue, { prefetch }, c.onMessage);
      const { capMs } = scale.w3;
      const got = await waitCapped(c, capMs, deadline, 'consuming');
      const ms = now() - t0;
      const brokerCpuPct = cpu.stop();
      await closeAll([sub], [session]);
      await adapter.deleteQueue(queue);
      return { metrics: { rate: rate(got, ms) }, brokerCpuPct, notes: capNote(got, n, capMs) };
    },
  };
}

// ---- w4: end to end ------------------------------------------------------------

const w4: CaseDef = {
  id: 'w4',
  workload: 'w4',
  title: 'w4 · end to end: producer (1000 in flight) + consumer (prefetch 100)',
  describe: (s) =>
    `A consumer (prefetch ${s.w4.prefetch}, manual ack) and a producer (${s.w4.inFlight} unconfirmed) on separate connections, ${s.w4.count.toLocaleString('en')} messages (or ${s.w4.capMs / 1000} s); rate = messages delivered / time from the first publish to the last delivery.`,
  metrics: [throughput('delivered'), { key: 'publishRate', label: 'confirmed publishes', unit: 'msgs/s', better: 'higher', digits: 0 }],
  rounds: (s) => s.rounds,
  deadlineMs: (s) => 30_000 + s.w4.count * 1.5,
  queues: () => [q('w4')],
  async run({ adapter, scale, deadline }) {
    const queue = q('w4');
    const n = scale.w4.count;
    await adapter.resetQueue(queue);
    const consumer = await adapter.session();
    const producer = await adapter.session();
    const c = counter(n);
    const sub = await consumer.consume(queue, { prefetch: scale.w4.prefetch }, c.onMessage);
    const body = makeBody(0);
    const { capMs } = scale.w4;
    const cap = timeCap(capMs);
    const cpu = cpuMeter(adapter.brokerPid);
    const t0 = now();
    let publishMs = 0;
    let published = 0;
    const publishing = publishWindowed(n, scale.w4.inFlight, () => producer.publish(queue, body), { stop: () => cap.reached }).then((done) => {
      published = done;
      publishMs = now() - t0;
    });
    publishing.catch(() => {});
    await deadline.race(Promise.race([Promise.all([publishing, c.done]), cap.wait]), `end to end (${c.received} of ${n} received)`);
    const got = c.received;
    const ms = now() - t0;
    const brokerCpuPct = cpu.stop();
    cap.clear();
    await deadline.race(publishing, 'stopping the producer');
    await closeAll([sub], [consumer, producer]);
    await adapter.deleteQueue(queue);
    return { metrics: { rate: rate(got, ms), publishRate: rate(published, publishMs) }, brokerCpuPct, notes: capNote(got, n, capMs) };
  },
};

// ---- w5: latency -----------------------------------------------------------------

const w5: CaseDef = {
  id: 'w5',
  workload: 'w5',
  title: 'w5 · publish-to-deliver latency at a steady 1,000 msg/s',
  describe: (s) =>
    `A producer publishes at a steady ${s.w5.rate} msg/s (paced every ~1 ms, not waiting for confirms) for ${s.w5.seconds} s after ${s.w5.warmup} warm-up messages; a consumer (prefetch ${s.w5.prefetch}) on another connection records the time from the publish call to the delivery. Same process and clock for both ends.`,
  metrics: [
    { key: 'p99', label: 'p99', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'p50', label: 'p50', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'max', label: 'max', unit: 'ms', better: 'lower', digits: 1 },
    { key: 'achieved', label: 'achieved msg/s', unit: 'msgs/s', better: 'higher', digits: 0 },
  ],
  rounds: (s) => s.rounds,
  deadlineMs: (s) => 45_000 + s.w5.seconds * 1000 * 2,
  queues: () => [q('w5')],
  async run({ adapter, scale, deadline }) {
    const queue = q('w5');
    const { rate: perSecond, seconds, warmup, prefetch } = scale.w5;
    const total = warmup + perSecond * seconds;
    await adapter.resetQueue(queue);
    const consumer = await adapter.session();
    const producer = await adapter.session();
    const sentAt = new Float64Array(total);
    const latency = new Float64Array(total).fill(Number.NaN);
    let received = 0;
    const done = signal();
    const sub = await consumer.consume(queue, { prefetch }, (body) => {
      const i = bodyIndex(body);
      if (i >= 0 && i < total && Number.isNaN(latency[i]!)) {
        latency[i] = now() - sentAt[i]!;
        if (++received === total) done.resolve();
      }
    });
    let publishErrors = 0;
    let firstError = '';
    const confirms: Array<Promise<void>> = [];
    await sleep(200);
    const cpu = cpuMeter(adapter.brokerPid);
    let measuredStart = 0;
    const t0 = now();
    let sent = 0;
    await deadline.race(
      (async () => {
        while (sent < total) {
          const due = Math.min(total, Math.floor(((now() - t0) * perSecond) / 1000) + 1);
          while (sent < due) {
            const i = sent++;
            if (i === warmup) measuredStart = now();
            const body = makeBody(i);
            sentAt[i] = now();
            confirms.push(
              producer.publish(queue, body).catch((err: unknown) => {
                publishErrors++;
                firstError ||= String(err);
              }),
            );
          }
          await sleep(1);
        }
      })(),
      'publishing',
    );
    const sendEnd = now();
    await deadline.race(done.promise, `waiting for deliveries (${received} of ${total})`);
    const brokerCpuPct = cpu.stop();
    // Every confirm in before closing, so a close never fails a publish that did arrive.
    await deadline.race(Promise.all(confirms), 'waiting for the last confirms');
    await closeAll([sub], [consumer, producer]);
    await adapter.deleteQueue(queue);
    const measured = latency.slice(warmup).sort();
    const notes = publishErrors > 0 ? [`${publishErrors} publishes failed: ${firstError}`] : [];
    return {
      metrics: {
        p99: percentileSorted(measured, 99),
        p50: percentileSorted(measured, 50),
        max: measured[measured.length - 1] ?? null,
        achieved: rate(total - warmup, sendEnd - measuredStart),
      },
      brokerCpuPct,
      notes,
    };
  },
};

// ---- w6: tasks -------------------------------------------------------------------

/** w6 compares task layers: Berth's and BullMQ's (both Redis deployments). */
const W6_SYSTEMS: readonly SystemId[] = ['berth', 'bullmq', 'bullmq-durable'];

/** Pause between the enqueue phase and the worker's start, so the broker has settled. */
const W6_SETTLE_MS = 200;

function w6(concurrency: number, keepResults: boolean): CaseDef {
  const id = `w6-c${concurrency}-${keepResults ? 'results' : 'ignore'}`;
  return {
    id,
    workload: 'w6',
    // A fresh Berth broker per case: results of one case's runs never weigh on the next case.
    brokerGroup: id,
    systems: W6_SYSTEMS,
    title: `w6 · tasks: no-op tasks, worker concurrency ${concurrency}, ${keepResults ? 'results kept' : 'ignoreResult'}`,
    describe: (s) =>
      `${s.w6.count.toLocaleString('en')} no-op tasks (one integer argument; the function is \`async () => null\`) are enqueued first, with no worker running ` +
      `(Berth: \`task.delay(i)\` with at most ${s.w6.inFlight} not yet confirmed, as a producer would; BullMQ: \`queue.add\` per job with the same window, no \`addBulk\`, since Berth's task layer has no bulk send). ` +
      `Then one worker with concurrency ${concurrency} starts in the client process, and the clock runs from the call that starts it (connecting included) until the last task is done ` +
      `(Berth: \`task-succeeded\` events from \`worker.on\`; BullMQ: the Worker's \`completed\` events), or the ${s.w6.capMs / 1000} s cap. ` +
      `Berth worker: pool \`async\` (the default), prefetchMultiplier 4 (the default: prefetch ${concurrency * 4}), acksLate (the default: ack after the task ran). BullMQ: \`new Worker(queue, async () => null, { concurrency: ${concurrency} })\`. ` +
      (keepResults
        ? "Results kept: Berth's default (the broker stores a STARTED state and then the SUCCESS result of every task, kept 1 day); BullMQ's default retention (`removeOnComplete: false`: the job hash with its `returnvalue` stays, in the completed set). "
        : 'No results: Berth task option `ignoreResult: true` (no state, no result stored); BullMQ `removeOnComplete: true` (the job is deleted as it completes), its nearest equivalent. ') +
      `Headline: tasks processed per second. Also: the enqueue rate, and the CPU of the client process (worker + idle producer) over the processing phase. ` +
      'After the run, about ten sampled results are read back (with results) or checked absent (without); a mismatch is a note.',
    metrics: [
      { key: 'rate', label: 'processed', unit: 'tasks/s', better: 'higher', digits: 0 },
      { key: 'enqueueRate', label: 'enqueued', unit: 'tasks/s', better: 'higher', digits: 0 },
      { key: 'workerCpuPct', label: 'worker process CPU', unit: '%', better: 'lower', digits: 0 },
    ],
    rounds: (s) => s.rounds,
    deadlineMs: (s) => 90_000 + 2 * s.w6.capMs,
    queues: () => [q(id)],
    async run({ adapter, scale, deadline, system }) {
      if (adapter.taskBench === undefined) throw new Error(`${system} has no task layer`);
      const queue = q(id);
      const { count: n, inFlight, capMs } = scale.w6;
      await adapter.resetQueue(queue);
      const bench = await adapter.taskBench({ queue, keepResults });
      try {
        const notes: string[] = [];
        const enqueueCap = timeCap(capMs);
        const te = now();
        const enqueued = await deadline.race(bench.enqueue(n, inFlight, () => enqueueCap.reached), 'enqueueing');
        const enqueueMs = now() - te;
        enqueueCap.clear();
        if (enqueued < n) notes.push(`enqueue stopped at the ${capMs / 1000} s cap: ${enqueued.toLocaleString('en')} of ${n.toLocaleString('en')}`);
        await sleep(W6_SETTLE_MS);
        const c = counter(enqueued);
        let errors = 0;
        let firstError = '';
        const onError = (err: unknown): void => {
          errors++;
          firstError ||= errorMessage(err);
        };
        const cpu = cpuMeter(adapter.brokerPid);
        const cpu0 = process.cpuUsage();
        const t0 = now();
        await deadline.race(bench.startWorker(concurrency, c.onMessage, onError), 'starting the worker');
        const done = await waitCapped(c, capMs, deadline, 'processing');
        const ms = now() - t0;
        const brokerCpuPct = cpu.stop();
        const used = process.cpuUsage(cpu0);
        const workerCpuPct = ((used.user + used.system) / 1000 / ms) * 100;
        notes.push(...capNote(done, enqueued, capMs));
        if (errors > 0) notes.push(`${errors} worker errors or failed tasks: ${firstError}`);
        if (done === enqueued) notes.push(...(await deadline.race(bench.check(done), 'checking the results')));
        return { metrics: { rate: rate(done, ms), enqueueRate: rate(enqueued, enqueueMs), workerCpuPct }, brokerCpuPct, notes };
      } finally {
        await bench.close();
        await deadline.race(adapter.deleteQueue(queue), 'deleting the queue');
      }
    },
  };
}

// ---- w7: backlog -----------------------------------------------------------------

const w7: CaseDef = {
  id: 'w7',
  workload: 'w7',
  title: 'w7 · backlog: enqueue with no consumer, then drain',
  describe: (s) =>
    `${s.w7.count.toLocaleString('en')} messages stored with no consumer, through each system's fastest confirmed path (5,000 publishes in flight; BullMQ addBulk), in two halves; broker RSS before, at half and with all stored. ` +
    `Berth is then restarted (SIGTERM, same data folder) and the time from spawn until \`berth serve\` logs "broker listening" is taken. Then one consumer (prefetch ${s.w7.drainPrefetch}) drains the queue (or stops at the ${s.w7.drainCapMs / 1000} s cap); headline = drain rate. One round per system.`,
  metrics: [
    { key: 'rate', label: 'drain', unit: 'msgs/s', better: 'higher', digits: 0 },
    { key: 'fillRate', label: 'fill', unit: 'msgs/s', better: 'higher', digits: 0 },
    { key: 'rss0', label: 'RSS empty', unit: 'MB', better: 'lower', digits: 0 },
    { key: 'rssHalf', label: 'RSS half stored', unit: 'MB', better: 'lower', digits: 0 },
    { key: 'rssFull', label: 'RSS all stored', unit: 'MB', better: 'lower', digits: 0 },
    { key: 'readyMs', label: 'ready after restart', unit: 'ms', better: 'lower', digits: 0 },
    { key: 'rssRestarted', label: 'RSS after restart', unit: 'MB', better: 'lower', digits: 0 },
    { key: 'firstDeliveryMs', label: 'restart to first delivery', unit: 'ms', better: 'lower', digits: 0 },
  ],
  rounds: (s) => s.w7.rounds,
  deadlineMs: (s) => 120_000 + s.w7.count * 0.4 + s.w7.drainCapMs,
  queues: () => [q('w7')],
  async run(ctx) {
    const { scale, deadline } = ctx;
    const queue = q('w7');
    const n = scale.w7.count;
    const half = Math.floor(n / 2);
    const settleMs = ctx.mode === 'quick' ? 200 : 1000;
    await ctx.adapter.resetQueue(queue);
    await sleep(settleMs);
    const rssMb = (): number | null => {
      const p = ctx.adapter.brokerPid;
      const b = p === null ? null : rssBytes(p);
      return b === null ? null : b / MB;
    };
    const rss0 = rssMb();
    const t0 = now();
    await deadline.race(ctx.adapter.fill(queue, half), 'filling the first half');
    const rssHalf = rssMb();
    const t1 = now();
    await deadline.race(ctx.adapter.fill(queue, n - half), 'filling the second half');
    const fillMs = now() - t0;
    await sleep(settleMs);
    const rssFull = rssMb();
    const metrics: CellOutcome['metrics'] = { fillRate: rate(n, fillMs), rss0, rssHalf, rssFull, readyMs: null, rssRestarted: null, firstDeliveryMs: null };
    let restartedAt: number | null = null;
    if (ctx.restartBroker !== null) {
      restartedAt = now();
      const { readyMs } = await deadline.race(ctx.restartBroker(), 'restarting the broker');
      metrics.readyMs = readyMs;
      metrics.rssRestarted = rssMb();
    }
    const consumer = await ctx.adapter.session();
    const c = counter(n);
    let firstAt = 0;
    const cpu = cpuMeter(ctx.adapter.brokerPid);
    const t2 = now();
    const sub = await consumer.consume(queue, { prefetch: scale.w7.drainPrefetch }, () => {
      if (firstAt === 0) firstAt = now();
      c.onMessage();
    });
    const got = await waitCapped(c, scale.w7.drainCapMs, deadline, 'draining');
    const drainMs = now() - t2;
    const brokerCpuPct = cpu.stop();
    if (restartedAt !== null && firstAt > 0) metrics.firstDeliveryMs = firstAt - restartedAt;
    metrics.rate = rate(got, drainMs);
    await deadline.race(closeAll([sub], [consumer]), 'closing the consumer');
    await deadline.race(ctx.adapter.deleteQueue(queue), 'deleting the queue');
    return { metrics, brokerCpuPct, notes: capNote(got, n, scale.w7.drainCapMs) };
  },
};

// ---- w8: fan-in and idle connections ---------------------------------------------

const w8fanIn: CaseDef = {
  id: 'w8-fanin',
  workload: 'w8',
  title: 'w8 · fan-in: many queues, many consumers',
  describe: (s) =>
    `${s.w8.queues} queues × ${s.w8.consumersPerQueue} consumers (prefetch ${s.w8.prefetch}; ${s.w8.consumersPerQueue} consumer connections, each consuming every queue), ${s.w8.producers} producer connections publishing ${s.w8.messages.toLocaleString('en')} messages (or ${s.w8.capMs / 1000} s) round-robin over the queues with ${s.w8.inFlight} in flight in total; rate = messages delivered / time from the first publish; peak broker RSS during the run. BullMQ: one Worker (concurrency ${s.w8.prefetch}) per queue and consumer connection; JetStream: one durable consumer per queue pulled by ${s.w8.consumersPerQueue} clients.`,
  metrics: [
    throughput('delivered'),
    { key: 'rssPeak', label: 'broker RSS peak', unit: 'MB', better: 'lower', digits: 0 },
    { key: 'setupS', label: 'consumer set-up', unit: 's', better: 'lower', digits: 1 },
  ],
  rounds: (s) => s.w8.rounds,
  deadlineMs: (s) => 180_000 + s.w8.capMs,
  queues: (s) => Array.from({ length: s.w8.queues }, (_, i) => q(`w8-${i}`)),
  async run({ adapter, scale, deadline }) {
    const cfg = scale.w8;
    const queues = Array.from({ length: cfg.queues }, (_, i) => q(`w8-${i}`));
    for (const name of queues) await adapter.resetQueue(name);
    const c = counter(cfg.messages);
    const subs: Subscription[] = [];
    const sessions: Session[] = [];
    const rssPeak = rssPeakSampler(adapter.brokerPid);
    const tSetup = now();
    await deadline.race(
      Promise.all(
        Array.from({ length: cfg.consumersPerQueue }, async () => {
          const s = await adapter.session();
          sessions.push(s);
          for (const name of queues) subs.push(await s.consume(name, { prefetch: cfg.prefetch, sharedBy: cfg.consumersPerQueue }, c.onMessage));
        }),
      ),
      'starting consumers',
    );
    const setupS = (now() - tSetup) / 1000;
    const producers = await Promise.all(Array.from({ length: cfg.producers }, () => adapter.session()));
    sessions.push(...producers);
    const body = makeBody(0);
    const perProducer = Math.ceil(cfg.messages / cfg.producers);
    const cap = timeCap(cfg.capMs);
    const cpu = cpuMeter(adapter.brokerPid);
    const t0 = now();
    const publishing = Promise.all(
      producers.map((p, k) => {
        const from = k * perProducer;
        const count = Math.max(0, Math.min(perProducer, cfg.messages - from));
        const window = Math.ceil(cfg.inFlight / cfg.producers);
        return publishWindowed(count, window, (i) => p.publish(queues[(from + i) % queues.length]!, body), { stop: () => cap.reached });
      }),
    );
    publishing.catch(() => {});
    await deadline.race(Promise.race([Promise.all([publishing, c.done]), cap.wait]), `fan-in (${c.received} of ${cfg.messages} received)`);
    const got = c.received;
    const ms = now() - t0;
    const brokerCpuPct = cpu.stop();
    cap.clear();
    await deadline.race(publishing, 'stopping the producers');
    const peak = rssPeak.stop();
    await deadline.race(closeAll(subs, sessions), 'closing consumers');
    for (const name of queues) await adapter.deleteQueue(name);
    return { metrics: { rate: rate(got, ms), rssPeak: peak === null ? null : peak / MB, setupS }, brokerCpuPct, notes: capNote(got, cfg.messages, cfg.capMs) };
  },
};

/** Share of a broker's open-file limit the idle-connection test may use. */
const FD_SHARE = 0.5;
const IDLE_WORKER = fileURLToPath(new URL('./idle-conns.js', import.meta.url));

/** Messages between the cell and an idle-connection helper process. */
export type IdleMessage =
  | { type: 'open'; system: SystemId; endpoints: Endpoints; count: number }
  | { type: 'opened'; opened: number; failed: number; firstError: string }
  | { type: 'close' };

const w8idle: CaseDef = {
  id: 'w8-idle',
  workload: 'w8',
  // A fresh Berth broker: the fan-in run's heap would blur the baseline.
  brokerGroup: 'w8-idle',
  title: 'w8 · idle connections',
  describe: (s) =>
    `${s.w8.idleConnections.toLocaleString('en')} idle client connections opened from ${s.w8.idleProcesses} client processes (Berth: connection with heartbeats; RabbitMQ: connection + confirm channel; BullMQ: a connected Queue; JetStream: a connection). Per-connection memory = (broker RSS ${s.w8.idleSettleMs / 1000} s after the last one opened − the lower of the RSS before opening and ${s.w8.idleSettleMs / 1000} s after closing them) / connections opened; broker CPU over the idle wait. ${s.w8.idleRounds} round${s.w8.idleRounds === 1 ? '' : 's'}.`,
  metrics: [
    { key: 'perConnKb', label: 'KB per idle connection', unit: 'KB', better: 'lower', digits: 1 },
    { key: 'opened', label: 'connections opened', unit: '', better: 'higher', digits: 0 },
    { key: 'rss', label: 'broker RSS', unit: 'MB', better: 'lower', digits: 0 },
    { key: 'openS', label: 'time to open all', unit: 's', better: 'lower', digits: 1 },
  ],
  rounds: (s) => s.w8.idleRounds,
  deadlineMs: (s) => 90_000 + s.w8.idleConnections * 20,
  queues: () => [],
  async run({ adapter, scale, deadline, system, endpoints }) {
    const cfg = scale.w8;
    const pid = adapter.brokerPid;
    if (pid === null) throw new Error('broker pid unknown: per-connection memory cannot be measured');
    // Never run a broker out of file descriptors: RabbitMQ 3.10 at its limit (1024 by default for a
    // service) loses its memory monitor to EMFILE and can no longer declare classic queues.
    const fdLimit = openFilesLimit(pid);
    const target = fdLimit === null ? cfg.idleConnections : Math.min(cfg.idleConnections, Math.floor(fdLimit * FD_SHARE));
    await sleep(cfg.idleSettleMs);
    const rss0 = rssBytes(pid) ?? 0;
    const per = Math.ceil(target / cfg.idleProcesses);
    const children = Array.from({ length: cfg.idleProcesses }, (_, k) => {
      const count = Math.max(0, Math.min(per, target - k * per));
      const child = fork(IDLE_WORKER, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      child.stderr?.resume();
      const opened = new Promise<Extract<IdleMessage, { type: 'opened' }>>((resolve, reject) => {
        child.on('message', (m: IdleMessage) => {
          if (m.type === 'opened') resolve(m);
        });
        child.on('exit', (code) => reject(new Error(`idle-connection helper exited with ${code}`)));
      });
      opened.catch(() => {});
      child.send({ type: 'open', system, endpoints, count } satisfies IdleMessage);
      return { child, opened };
    });
    const closeChildren = (): Promise<unknown> =>
      Promise.all(
        children.map(async ({ child }) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          child.send({ type: 'close' } satisfies IdleMessage);
          const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
          await exited;
          clearTimeout(timer);
        }),
      );
    try {
      const t0 = now();
      const reports = await deadline.race(Promise.all(children.map((c) => c.opened)), 'opening idle connections');
      const openS = (now() - t0) / 1000;
      const opened = reports.reduce((a, r) => a + r.opened, 0);
      const failed = reports.reduce((a, r) => a + r.failed, 0);
      const cpu = cpuMeter(pid);
      await sleep(cfg.idleSettleMs);
      const brokerCpuPct = cpu.stop();
      const rss1 = rssBytes(pid) ?? 0;
      await deadline.race(closeChildren(), 'closing idle connections');
      await sleep(cfg.idleSettleMs);
      // A broker that returned garbage to the OS while the connections were open
      // (Go's and Erlang's collectors do) lowers its own baseline: take the lower one.
      const rssClosed = rssBytes(pid) ?? rss0;
      const base = Math.min(rss0, rssClosed);
      const notes: string[] = [];
      if (target < cfg.idleConnections) notes.push(`${target} connections, not ${cfg.idleConnections}: the broker's open-file limit is ${fdLimit} (the bench uses at most ${FD_SHARE * 100}% of it)`);
      if (failed > 0) notes.push(`${failed} of ${target} connections refused or timed out (${reports.find((r) => r.firstError !== '')?.firstError ?? ''})`);
      const figure = idleConnectionFigure(rss1, base, opened);
      if (figure.note !== undefined) notes.push(figure.note);
      return {
        metrics: { perConnKb: figure.perConnKb, opened, rss: rss1 / MB, openS },
        brokerCpuPct,
        notes,
      };
    } finally {
      await closeChildren();
    }
  },
};

/**
 * KB of broker RSS per idle connection: RSS with the connections open over the baseline without
 * them. A server whose collector returns memory meanwhile can end below its baseline; the figure
 * is then noise, and the note says so.
 */
export function idleConnectionFigure(rssOpenBytes: number, baseBytes: number, opened: number): { perConnKb: number | null; note?: string } {
  const perConnKb = opened > 0 ? (rssOpenBytes - baseBytes) / 1024 / opened : null;
  if (rssOpenBytes >= baseBytes) return { perConnKb };
  const lowerMb = ((baseBytes - rssOpenBytes) / MB).toFixed(1);
  return {
    perConnKb,
    note: `RSS was ${lowerMb} MB lower with the connections open than without: the server returned memory meanwhile, so this figure is below what RSS can resolve`,
  };
}

export const CASES: readonly CaseDef[] = [
  w1,
  w2,
  ...[1, 10, 100, 1000].map(w3),
  w4,
  w5,
  ...[1, 10, 100].flatMap((c) => [w6(c, true), w6(c, false)]),
  w7,
  w8fanIn,
  w8idle,
];

export function casesFor(scale: Scale): CaseDef[] {
  return CASES.filter((c) => {
    if (c.workload === 'w3') return scale.w3.prefetches.includes(Number(c.id.slice(4)));
    if (c.workload === 'w6') return scale.w6.concurrencies.includes(Number(/^w6-c(\d+)-/.exec(c.id)?.[1]));
    return true;
  });
}

export function caseById(id: string): CaseDef | undefined {
  return CASES.find((c) => c.id === id);
}
