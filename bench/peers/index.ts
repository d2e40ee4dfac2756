/** Builds the adapter of one system; peer client libraries are loaded only when used. */
import { findBrokerPid } from '../lib/proc.js';
import type { Adapter, Endpoints, SystemId } from './types.js';

export class SkipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SkipError';
  }
}

export async function createAdapter(id: SystemId, ep: Endpoints): Promise<Adapter> {
  switch (id) {
    case 'berth': {
      if (ep.berthUrl === null) throw new SkipError('the Berth broker did not start');
      const { berthAdapter } = await import('./berth.js');
      return berthAdapter(ep.berthUrl, ep.berthPid);
    }
    case 'rabbitmq-classic':
    case 'rabbitmq-quorum': {
      const { rabbitAdapter } = await import('./rabbitmq.js');
      return rabbitAdapter(id, ep.amqpUrl, findBrokerPid(Number(new URL(ep.amqpUrl).port || 5672), 'beam.smp'));
    }
    case 'bullmq': {
      const { bullmqAdapter } = await import('./bullmq.js');
      return bullmqAdapter(id, ep.redisPort, findBrokerPid(ep.redisPort, 'redis-server'));
    }
    case 'bullmq-durable': {
      if (ep.durableRedisPort === null) throw new SkipError('the bench could not start its own redis-server');
      const { bullmqAdapter } = await import('./bullmq.js');
      return bullmqAdapter(id, ep.durableRedisPort, ep.durableRedisPid);
    }
    case 'jetstream': {
      const { jetstreamAdapter } = await import('./jetstream.js');
      const port = Number(/:(\d+)$/.exec(ep.natsServers)?.[1] ?? 4222);
      return jetstreamAdapter(ep.natsServers, findBrokerPid(port, 'nats-server'));
    }
  }
}
