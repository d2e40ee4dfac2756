/**
 * Berth through its public SDK (`dist/clients/index.js`). The broker itself is
 * a `berth serve` child process of the orchestrator.
 */
import { BrokerError, connect, type Connection } from '../../clients/index.js';
import { closeWithin, fillThroughSession } from './common.js';
import type { Adapter, ConsumeOptions, OnMessage, Session, Subscription } from './types.js';

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
