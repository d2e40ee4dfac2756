/**
 * The common face of every system under test. A workload only speaks these
 * verbs, so Berth and each peer run the same code path with the same
 * durability asked for (durable queue, persistent messages, confirms, manual acks).
 */

/** Systems in report order. */
export const SYSTEM_IDS = ['berth', 'rabbitmq-classic', 'rabbitmq-quorum', 'bullmq', 'bullmq-durable', 'jetstream'] as const;
export type SystemId = (typeof SYSTEM_IDS)[number];

export const SYSTEM_LABELS: Readonly<Record<SystemId, string>> = {
  berth: 'Berth',
  'rabbitmq-classic': 'RabbitMQ classic',
  'rabbitmq-quorum': 'RabbitMQ quorum',
  bullmq: 'BullMQ (Redis :6379)',
  'bullmq-durable': 'BullMQ durable redis',
  jetstream: 'JetStream',
};

/** What each system's figures mean for durability; printed under every table. */
export const SYSTEM_NOTES: Readonly<Record<SystemId, string>> = {
  berth: 'SQLite WAL: the log fdatasync\'d before every confirm (group commit; deliveries may leave before it).',
  'rabbitmq-classic': 'durable classic queue, persistent messages, publisher confirms (fsync before confirm).',
  'rabbitmq-quorum': 'quorum queue (single node), publisher confirms after the Raft log is fsynced.',
  bullmq: "the machine's Redis as configured (appendonly no): an acknowledged add is in memory only, not durable.",
  'bullmq-durable': 'a Redis started by the bench with appendonly yes, appendfsync everysec (BullMQ\'s recommended setting): up to ~1 s of acknowledged jobs can be lost.',
  jetstream:
    "file-storage stream (work-queue retention), durable pull consumer, explicit acks. JetStream's default does not fsync before acknowledging a publish, so its publish figures are not durable ones.",
};

/** Where the systems are; filled in by the orchestrator. */
export interface Endpoints {
  berthUrl: string | null;
  berthPid: number | null;
  amqpUrl: string;
  /** The machine's Redis (BullMQ as deployed by default). */
  redisPort: number;
  /** The Redis the bench started with AOF, or null when it could not start. */
  durableRedisPort: number | null;
  durableRedisPid: number | null;
  natsServers: string;
}

export interface ConsumeOptions {
  /** Unacked deliveries this consumer may hold (BullMQ: worker concurrency). */
  prefetch: number;
  /**
   * How many consumers share this queue. JetStream has one durable consumer per
   * queue pulled by several clients, and its `max_ack_pending` is prefetch × sharedBy.
   */
  sharedBy?: number;
}

export interface Subscription {
  cancel(): Promise<void>;
}

/** Called once per delivered message with its 256 body bytes; the adapter acks after it returns. */
export type OnMessage = (body: Uint8Array) => void;

/** One client connection (AMQP: a connection with a confirm channel; BullMQ: its Redis connections). */
export interface Session {
  /** Publishes one persistent message; resolves on the broker's confirm. */
  publish(queue: string, body: Buffer): Promise<void>;
  /** Starts a consumer with manual acks. */
  consume(queue: string, options: ConsumeOptions, onMessage: OnMessage): Promise<Subscription>;
  close(): Promise<void>;
}

/** What w6 asks of a system's task layer: a producer and a worker of no-op tasks on one queue. */
export interface TaskBenchOptions {
  queue: string;
  /** Keep each task's result (Berth: the default; BullMQ: default job retention). false: Berth `ignoreResult`, BullMQ `removeOnComplete: true`. */
  keepResults: boolean;
}

export interface TaskBench {
  /** Sends `n` no-op tasks with at most `inFlight` not yet stored; stops starting new ones once `stop()`. Resolves with how many were stored. */
  enqueue(n: number, inFlight: number, stop: () => boolean): Promise<number>;
  /** Starts one worker (in this process) with `concurrency`; `onDone` is called once per task that finished successfully. */
  startWorker(concurrency: number, onDone: () => void, onError: (err: unknown) => void): Promise<void>;
  /** After every task ran: checks that results are there (or absent when not kept); returns what is off, as notes. */
  check(processed: number): Promise<string[]>;
  /** Closes the worker and the producer. */
  close(): Promise<void>;
}

export interface Adapter {
  readonly id: SystemId;
  /** The broker process (beam.smp, nats-server, redis-server, berth), for CPU and RSS. */
  readonly brokerPid: number | null;
  /** Opens the admin connection; rejects when the system is not reachable. */
  open(): Promise<void>;
  /** Server version, for the report header. */
  version(): Promise<string>;
  /** Deletes the queue if it exists and declares it again, empty. */
  resetQueue(queue: string): Promise<void>;
  deleteQueue(queue: string): Promise<void>;
  /** Opens a new client connection. */
  session(): Promise<Session>;
  /** Opens what an idle client of this system holds (AMQP: connection + channel; BullMQ: a Queue's Redis connection). */
  idleConnection(): Promise<{ close(): Promise<void> }>;
  /** Pre-fills a queue as fast as the system allows (not a measured figure). */
  fill(queue: string, count: number): Promise<void>;
  /** The task layer (w6); absent on systems without one. */
  taskBench?(options: TaskBenchOptions): Promise<TaskBench>;
  /** Removes every queue, stream or key the bench may have created on this system. */
  cleanupAll(queues: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** Prefix of every queue, stream and key the bench creates, so clean-up never touches anything else. */
export const QUEUE_PREFIX = 'berthbench-';
