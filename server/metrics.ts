/**
 * Prometheus metrics, one Registry per broker so tests can run several.
 * Queue figures are read from the engine at scrape time: nothing is counted twice
 * and the hot path pays nothing for metrics.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { BusyPoll } from './busy-poll.js';
import type { Engine, QueueStats } from './engine/engine.js';

const COUNTERS: Array<[keyof QueueStats, string, string]> = [
  ['published', 'berth_messages_published_total', 'Messages published to the queue and committed.'],
  ['duplicates', 'berth_messages_duplicate_total', 'Publishes confirmed without storing: their messageId was seen within the dedup window.'],
  ['expired', 'berth_messages_expired_total', 'Messages whose TTL ran out before delivery.'],
  ['leaseExpired', 'berth_leases_expired_total', 'Deliveries whose lease (visibility timeout) ran out unacked.'],
  ['dropped', 'berth_messages_dropped_total', 'Messages dropped: rejected, expired or over a length limit with no dead-letter queue.'],
  ['delivered', 'berth_messages_delivered_total', 'Deliveries made to consumers, redeliveries included.'],
  ['redelivered', 'berth_messages_redelivered_total', 'Deliveries of messages delivered before.'],
  ['acked', 'berth_messages_acked_total', 'Deliveries acked.'],
  ['nacked', 'berth_messages_nacked_total', 'Deliveries nacked with requeue.'],
  ['rejected', 'berth_messages_rejected_total', 'Deliveries rejected, or nacked without requeue.'],
  ['deadLettered', 'berth_messages_dead_lettered_total', 'Messages moved to a dead-letter queue.'],
  ['revoked', 'berth_messages_revoked_total', 'Messages removed without delivery because their task was revoked.'],
];

export function createMetrics(engine: Engine, connections: () => number, busyPoll: BusyPoll): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const gauge = (name: string, help: string, read: (q: ReturnType<Engine['queueStats']>[number]) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['queue'],
      registers: [registry],
      collect() {
        this.reset();
        for (const q of engine.queueStats()) this.set({ queue: q.name }, read(q));
      },
    });
  };
  gauge('berth_queue_messages_ready', 'Messages ready for delivery (in memory or on disk).', (q) => q.ready);
  gauge('berth_queue_messages_delayed', 'Messages waiting for their delay or ETA.', (q) => q.delayed);
  gauge('berth_queue_bytes', 'Body bytes of all messages of the queue.', (q) => q.bytes);
  gauge('berth_queue_messages_unacked', 'Messages delivered and not yet settled.', (q) => q.unacked);
  gauge('berth_queue_consumers', 'Consumers attached to the queue.', (q) => q.consumers);
  for (const [key, name, help] of COUNTERS) {
    new Counter({
      name,
      help,
      labelNames: ['queue'],
      registers: [registry],
      collect() {
        this.reset();
        for (const q of engine.queueStats()) this.inc({ queue: q.name }, q.stats[key]);
      },
    });
  }
  new Gauge({
    name: 'berth_revoked_tasks',
    help: 'Task revocations held in memory (expired ones go at the next sweep).',
    registers: [registry],
    collect() {
      this.set(engine.revokedCount);
    },
  });
  new Gauge({
    name: 'berth_result_waiters',
    help: 'result.get requests waiting for a terminal task state.',
    registers: [registry],
    collect() {
      this.set(engine.resultWaiterCount);
    },
  });
  new Gauge({
    name: 'berth_connections',
    help: 'Open client connections.',
    registers: [registry],
    collect() {
      this.set(connections());
    },
  });
  new Counter({
    name: 'berth_busy_poll_seconds_total',
    help: 'Wall time the event loop spent polling sockets instead of sleeping after work (busyPollUs), in ended runs.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(busyPoll.polledSeconds);
    },
  });
  return registry;
}
