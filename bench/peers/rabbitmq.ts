/**
 * RabbitMQ through amqplib: a durable queue of the given type, persistent
 * messages, publisher confirms, consumers with manual acks and per-consumer prefetch.
 */
import amqp from 'amqplib';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { closeWithin, fillThroughSession } from './common.js';
import type { Adapter, ConsumeOptions, OnMessage, Session, Subscription } from './types.js';

export type QueueType = 'classic' | 'quorum';

async function open(url: string): Promise<ChannelModel> {
  const conn = await amqp.connect(url, { timeout: 5000 });
  // A broker-side close must not crash the bench with an unhandled 'error' event.
  conn.on('error', () => {});
  return conn;
}

class RabbitSession implements Session {
  readonly #conn: ChannelModel;
  readonly #confirm: ConfirmChannel;
  constructor(conn: ChannelModel, confirm: ConfirmChannel) {
    this.#conn = conn;
    this.#confirm = confirm;
  }
  publish(queue: string, body: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#confirm.sendToQueue(queue, body, { persistent: true }, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(`nacked: ${String(err)}`)) : resolve()));
    });
  }
  async consume(queue: string, options: ConsumeOptions, onMessage: OnMessage): Promise<Subscription> {
    // One channel per consumer, as an application would have: prefetch is per consumer.
    const ch = await this.#conn.createChannel();
    ch.on('error', () => {});
    await ch.prefetch(options.prefetch);
    const { consumerTag } = await ch.consume(
      queue,
      (m) => {
        if (m === null) return;
        onMessage(m.content);
        ch.ack(m);
      },
      { noAck: false },
    );
    return {
      cancel: async () => {
        await ch.cancel(consumerTag);
        await ch.close();
      },
    };
  }
  close(): Promise<void> {
    return closeWithin(5000, () => this.#conn.close());
  }
}

export function rabbitAdapter(id: 'rabbitmq-classic' | 'rabbitmq-quorum', url: string, pid: number | null): Adapter {
  const queueType: QueueType = id === 'rabbitmq-classic' ? 'classic' : 'quorum';
  let admin: ChannelModel | null = null;
  /** Runs `fn` on a fresh channel: a refused operation closes its channel, never the admin connection. */
  const withChannel = async <T>(fn: (ch: amqp.Channel) => Promise<T>): Promise<T> => {
    if (admin === null) throw new Error('rabbitmq adapter used before open()');
    const ch = await admin.createChannel();
    ch.on('error', () => {});
    try {
      return await fn(ch);
    } finally {
      await closeWithin(2000, () => ch.close());
    }
  };
  const adapter: Adapter = {
    id,
    brokerPid: pid,
    async open() {
      admin = await open(url);
    },
    async version() {
      const props = (admin?.connection.serverProperties ?? {}) as { product?: string; version?: string };
      return `${props.product ?? 'RabbitMQ'} ${props.version ?? '?'}`;
    },
    async resetQueue(queue) {
      await adapter.deleteQueue(queue);
      await withChannel((ch) => ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': queueType } }));
    },
    async deleteQueue(queue) {
      // Deleting a queue that does not exist is not an error in AMQP 0-9-1 on RabbitMQ.
      await withChannel((ch) => ch.deleteQueue(queue));
    },
    async session() {
      const conn = await open(url);
      try {
        const confirm = await conn.createConfirmChannel();
        confirm.on('error', () => {});
        return new RabbitSession(conn, confirm);
      } catch (err) {
        await closeWithin(2000, () => conn.close());
        throw err;
      }
    },
    idleConnection: () => adapter.session(),
    fill: (queue, count) => fillThroughSession(() => adapter.session(), queue, count),
    async cleanupAll(queues) {
      for (const q of queues) await adapter.deleteQueue(q);
    },
    async close() {
      if (admin !== null) await closeWithin(5000, () => admin!.close());
      admin = null;
    },
  };
  return adapter;
}
