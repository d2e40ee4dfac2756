/**
 * NATS JetStream: one file-storage stream per queue (work-queue retention), one
 * durable pull consumer with explicit acks, pulled by every client of the queue.
 *
 * JetStream's default (sync_interval 2 min) does not fsync before it acknowledges
 * a publish, so its publish figures are not durable ones.
 */
import { AckPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { closeWithin } from './common.js';
import { publishWindowed, makeBody } from '../lib/util.js';
import { QUEUE_PREFIX, type Adapter, type ConsumeOptions, type OnMessage, type Session, type Subscription } from './types.js';

const DURABLE = 'bench';

function streamName(queue: string): string {
  return queue.replace(/[^A-Za-z0-9_-]/g, '_').toUpperCase();
}

function subject(queue: string): string {
  return `berthbench.${queue.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}

async function open(servers: string): Promise<NatsConnection> {
  return connect({ servers, timeout: 5000, maxReconnectAttempts: 0 });
}

class JetStreamSession implements Session {
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #js;
  constructor(nc: NatsConnection, jsm: JetStreamManager) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#js = jetstream(nc);
  }
  async publish(queue: string, body: Buffer): Promise<void> {
    await this.#js.publish(subject(queue), body, { timeout: 30_000 });
  }
  async consume(queue: string, options: ConsumeOptions, onMessage: OnMessage): Promise<Subscription> {
    const stream = streamName(queue);
    const maxAckPending = options.prefetch * (options.sharedBy ?? 1);
    try {
      await this.#jsm.consumers.add(stream, {
        durable_name: DURABLE,
        ack_policy: AckPolicy.Explicit,
        max_ack_pending: maxAckPending,
        ack_wait: 60_000_000_000,
      });
    } catch (err) {
      // Another client of the same queue created it first, with the same config.
      if (!(err instanceof Error && /already (exists|in use)/i.test(err.message))) throw err;
    }
    const consumer = await this.#js.consumers.get(stream, DURABLE);
    const messages = await consumer.consume({
      max_messages: options.prefetch,
      callback: (m) => {
        onMessage(m.data);
        m.ack();
      },
    });
    return {
      cancel: async () => {
        await closeWithin(5000, () => messages.close());
      },
    };
  }
  close(): Promise<void> {
    return closeWithin(5000, () => this.#nc.close());
  }
}

export function jetstreamAdapter(servers: string, pid: number | null): Adapter {
  let nc: NatsConnection | null = null;
  let jsm: JetStreamManager | null = null;
  const need = (): JetStreamManager => {
    if (jsm === null) throw new Error('jetstream adapter used before open()');
    return jsm;
  };
  const adapter: Adapter = {
    id: 'jetstream',
    brokerPid: pid,
    async open() {
      nc = await open(servers);
      jsm = await jetstreamManager(nc); // fails when JetStream is not enabled
      await jsm.getAccountInfo();
    },
    async version() {
      return `nats-server ${nc?.info?.version ?? '?'}`;
    },
    async resetQueue(queue) {
      await adapter.deleteQueue(queue);
      await need().streams.add({
        name: streamName(queue),
        subjects: [subject(queue)],
        storage: StorageType.File,
        retention: RetentionPolicy.Workqueue,
        discard: DiscardPolicy.Old,
        num_replicas: 1,
      });
    },
    async deleteQueue(queue) {
      try {
        await need().streams.delete(streamName(queue));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
    async session() {
      const conn = await open(servers);
      return new JetStreamSession(conn, await jetstreamManager(conn));
    },
    idleConnection: () => adapter.session(),
    async fill(queue, count) {
      // Async publishes in a wide window; each still waits for its PubAck.
      const conn = await open(servers);
      try {
        const js = jetstream(conn);
        const body = makeBody(0);
        await publishWindowed(count, 5000, async () => {
          await js.publish(subject(queue), body, { timeout: 60_000 });
        });
      } finally {
        await closeWithin(5000, () => conn.close());
      }
    },
    async cleanupAll() {
      const prefix = streamName(QUEUE_PREFIX);
      const names: string[] = [];
      for await (const name of need().streams.names()) if (name.startsWith(prefix)) names.push(name);
      for (const name of names) await need().streams.delete(name);
    },
    async close() {
      if (nc !== null) await closeWithin(5000, () => nc!.close());
      nc = null;
      jsm = null;
    },
  };
  return adapter;
}
