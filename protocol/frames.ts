/**
 * Frame types of the Berth wire protocol, version 1 [PROTO §3].
 *
 * Every frame is `{ type, ...fields }`, discriminated on `type`. Frames that
 * carry a message body (`publish`, `deliver`) have `body: Uint8Array`; the body
 * travels as raw bytes after the JSON header, never inside it.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** The protocol version this code speaks; sent in `hello` and `welcome`. */
export const PROTOCOL_VERSION = 1;

/**
 * The feature a client offers in `hello.features` to be told, on a delivery, that the queue holds
 * more for a consumer whose credit that delivery used up (`deliver.backlog`, [PROTO §5.5]).
 */
export const BACKLOG_HINT = 'backlog-hint';

/** Wire op codes, one byte per frame [PROTO §3]. Never reuse a retired number. */
export const Op = {
  hello: 1,
  welcome: 2,
  heartbeat: 3,
  ok: 4,
  error: 5,
  'queue.declare': 10,
  'queue.delete': 11,
  'queue.purge': 12,
  'queue.redrive': 13,
  publish: 20,
  confirm: 21,
  'publish.nack': 22,
  consume: 30,
  cancel: 31,
  ack: 32,
  nack: 33,
  reject: 34,
  extend: 35,
  'consumer.update': 36,
  pull: 37,
  deliver: 40,
  cancelled: 41,
  revoked: 42,
  'result.put': 50,
  'result.get': 51,
  result: 52,
  'task.revoke': 53,
} as const;

export type FrameType = keyof typeof Op;

const opNames = new Map<number, FrameType>(
  (Object.entries(Op) as Array<[FrameType, number]>).map(([name, code]) => [code, name]),
);

/** The frame type of a wire op code, or undefined for an unknown one. */
export function frameTypeOf(op: number): FrameType | undefined {
  return opNames.get(op);
}

/** What a queue name may hold [PROTO §3.2]; names are 1–{@link MAX_NAME_LENGTH} characters. */
export const QUEUE_NAME_PATTERN = '^[A-Za-z0-9_.:@/-]+$';
/** Longest queue name and consumer tag, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 200;
/** Longest duration a frame may carry (*Ms*, *TtlMs*): 10 years, in ms. */
export const MAX_MS = 10 * 365 * 24 * 3600 * 1000;
/** Latest `publish.notBefore`: the last time a JavaScript Date can hold, in ms since the epoch. */
export const MAX_TIME = 8.64e15;

const QueueName = Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH, pattern: QUEUE_NAME_PATTERN });
const ConsumerTag = Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH });
const Ref = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Ms = Type.Integer({ minimum: 0, maximum: MAX_MS });
const HeaderValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
/** Message headers [PROTO §3.2]: flat string keys, JSON scalar values. */
export const HeadersSchema = Type.Record(Type.String({ maxLength: 200 }), HeaderValue);
const Headers = HeadersSchema;
const DeliveryTags = Type.Array(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), {
  minItems: 1,
  maxItems: 100_000,
});

/**
 * States of a task as the broker stores them [PROTO §5.18]:
 * - `PENDING`: published with `resultTtlMs`, not started yet (written by the broker at publish).
 * - `STARTED`: a worker took it. `RETRY`: it failed and will run again.
 * - `SUCCESS`, `FAILURE`: it finished. `REVOKED`: `task.revoke` cancelled it.
 *
 * The last three are terminal: once a task's row is terminal, later puts for it are ignored.
 * `NOT_FOUND` is never stored: `result.get` answers it for an id with no row (none yet, or expired).
 */
export const TASK_STATES = ['PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED', 'NOT_FOUND'] as const;

/** One of {@link TASK_STATES}. */
export type TaskState = (typeof TASK_STATES)[number];

/** The states a row can hold (every state but `NOT_FOUND`). */
export type StoredTaskState = Exclude<TaskState, 'NOT_FOUND'>;

/** States after which a task's row no longer changes [PROTO §5.18]. */
export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set<TaskState>(['SUCCESS', 'FAILURE', 'REVOKED']);

/** True for `SUCCESS`, `FAILURE` and `REVOKED`. */
export function isTerminalTaskState(state: TaskState): boolean {
  return TERMINAL_TASK_STATES.has(state);
}

/** The message header that names the task a message runs [PROTO §5.18]. */
export const TASK_ID_HEADER = 'task-id';

/** Longest `result.get` wait the broker accepts, in ms (5 min). */
export const MAX_RESULT_WAIT_MS = 300_000;

/** Longest task id, in the task frames and in the `task-id` header of a publish with `resultTtlMs`. */
export const MAX_TASK_ID_LENGTH = 200;

const TaskId = Type.String({ minLength: 1, maxLength: MAX_TASK_ID_LENGTH });
const StoredTaskStateSchema = Type.Union(TASK_STATES.filter((s) => s !== 'NOT_FOUND').map((s) => Type.Literal(s)));
const TaskStateSchema = Type.Union(TASK_STATES.map((s) => Type.Literal(s)));
/** A time to live of at least 1 ms. */
const TtlMs = Type.Integer({ minimum: 1, maximum: MAX_MS });

/** Queue options as declared over the wire; the broker fills in defaults. */
export const QueueOptionsSchema = Type.Object(
  {
    /** How long a delivery may stay unacked before it returns to ready. */
    visibilityTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 7 * 24 * 3600 * 1000 })),
    /** Deliveries after which an unacked message is dead-lettered; 0 means no limit. */
    maxDeliveries: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    /** Queue that receives rejected and dead messages. */
    deadLetterQueue: Type.Optional(QueueName),
    /** Default time to live of a message, from its publish (or its delay's end); 0 means none. */
    messageTtlMs: Type.Optional(Ms),
    /** Most messages the queue holds (ready, delayed and unacked); 0 means no limit. */
    maxLength: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    /** Most body bytes the queue holds; 0 means no limit. */
    maxBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    /** What a full queue does with a new publish. */
    overflow: Type.Optional(Type.Union([Type.Literal('reject-publish'), Type.Literal('drop-oldest')])),
    /** How long a messageId is remembered for deduplication; 0 turns deduplication off. */
    dedupWindowMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 24 * 3600 * 1000 })),
    /** Deliveries allowed across all consumers, like "100/s", "60/m" or "1000/h". */
    rateLimit: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?/(s|m|h)$', maxLength: 32 })),
    /** With `rateLimit`: apply it per value of this header (e.g. a tenant key) instead of per queue. */
    rateLimitKey: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type QueueOptions = Static<typeof QueueOptionsSchema>;

/** Message headers: flat string keys, JSON scalar values. */
export type MessageHeaders = Static<typeof Headers>;

/**
 * JSON header schema of each frame type, without `type` and `body`.
 * `additionalProperties` is allowed so newer peers can add optional fields.
 */
export const HeaderSchemas = {
  hello: Type.Object({
    version: Type.Integer({ minimum: 1, maximum: 255 }),
    token: Type.Optional(Type.String({ maxLength: 4096 })),
    heartbeatMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    client: Type.Optional(Type.String({ maxLength: 200 })),
    /** Optional features the client can use [PROTO §4.1]: `compact-frames` (§2.5), `backlog-hint` (§5.5). */
    features: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 64 })),
  }),
  welcome: Type.Object({
    version: Type.Integer(),
    connectionId: Type.String(),
    heartbeatMs: Type.Integer({ minimum: 0 }),
    maxFrameBytes: Type.Integer({ minimum: 1 }),
    maxBodyBytes: Type.Integer({ minimum: 1 }),
    /** Largest JSON header of one frame; optional for brokers that predate it. */
    maxHeaderBytes: Type.Optional(Type.Integer({ minimum: 1 })),
    /** The features of `hello.features` this session uses; absent from brokers that predate it. */
    features: Type.Optional(Type.Array(Type.String())),
  }),
  heartbeat: Type.Object({}),
  ok: Type.Object({
    ref: Ref,
    /** Queue frames: messages stored (ready + unacked + delayed) and consumers. */
    messages: Type.Optional(Type.Integer({ minimum: 0 })),
    consumers: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Reply to `extend`: when the renewed leases run out (ms since epoch). */
    leaseExpiresAt: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Reply to `result.put` and `task.revoke`: whether the row was written (false: it was already terminal). */
    stored: Type.Optional(Type.Boolean()),
  }),
  error: Type.Object({
    ref: Type.Optional(Ref),
    code: Type.String({ maxLength: 100 }),
    message: Type.String({ maxLength: 4096 }),
    retryable: Type.Optional(Type.Boolean()),
    /** For a refused ack/nack/reject: the delivery tags that were unknown or already settled. */
    deliveryTags: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }))),
    /** The subset of `deliveryTags` refused because their lease expired (the rest were unknown). */
    expiredTags: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }))),
  }),
  'queue.declare': Type.Object({ ref: Ref, queue: QueueName, options: Type.Optional(QueueOptionsSchema) }),
  'queue.delete': Type.Object({
    ref: Ref,
    queue: QueueName,
    ifEmpty: Type.Optional(Type.Boolean()),
    ifUnused: Type.Optional(Type.Boolean()),
  }),
  'queue.purge': Type.Object({ ref: Ref, queue: QueueName }),
  publish: Type.Object({
    seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    queue: QueueName,
    messageId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    headers: Type.Optional(Headers),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 9 })),
    /** Deliver no sooner than this many ms from now. */
    delayMs: Type.Optional(Ms),
    /** Deliver no sooner than this time (ms since epoch); the later of this and `delayMs` wins. */
    notBefore: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIME })),
    /** Expire this long after becoming ready; overrides the queue's `messageTtlMs`. */
    ttlMs: Type.Optional(Ms),
    /** With a string `task-id` header: store a PENDING result row for it that lives this long. */
    resultTtlMs: Type.Optional(TtlMs),
  }),
  confirm: Type.Object({
    upTo: Type.Integer({ minimum: 1 }),
    /** Seqs (≤ upTo) whose messageId was seen within the queue's dedup window: confirmed, not stored again. */
    duplicates: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }))),
  }),
  'publish.nack': Type.Object({
    seq: Type.Integer({ minimum: 1 }),
    code: Type.String(),
    message: Type.String(),
    retryAfterMs: Type.Optional(Ms),
  }),
  consume: Type.Object({
    ref: Ref,
    queue: QueueName,
    consumerTag: ConsumerTag,
    /** Most unacked deliveries at once; 0 means none until `pull` grants credit. */
    prefetch: Type.Integer({ minimum: 0, maximum: 65_535 }),
  }),
  cancel: Type.Object({ ref: Ref, consumerTag: ConsumerTag }),
  ack: Type.Object({ ref: Type.Optional(Ref), deliveryTags: DeliveryTags }),
  nack: Type.Object({
    ref: Type.Optional(Ref),
    deliveryTags: DeliveryTags,
    requeue: Type.Optional(Type.Boolean()),
    /** With requeue: ready again only after this long (retry with backoff). */
    delayMs: Type.Optional(Ms),
    /** Why it failed; kept as `x-death-error` if the message is dead-lettered. */
    reason: Type.Optional(Type.String({ maxLength: 4096 })),
  }),
  reject: Type.Object({
    ref: Type.Optional(Ref),
    deliveryTags: DeliveryTags,
    reason: Type.Optional(Type.String({ maxLength: 4096 })),
  }),
  extend: Type.Object({
    ref: Type.Optional(Ref),
    deliveryTags: DeliveryTags,
    /** New lease length from now; default the queue's visibility timeout. */
    ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600 * 1000 })),
  }),
  'consumer.update': Type.Object({ ref: Ref, consumerTag: ConsumerTag, prefetch: Type.Integer({ minimum: 0, maximum: 65_535 }) }),
  pull: Type.Object({ ref: Type.Optional(Ref), consumerTag: ConsumerTag, count: Type.Integer({ minimum: 1, maximum: 65_535 }) }),
  'queue.redrive': Type.Object({
    ref: Ref,
    /** The dead-letter queue to empty. */
    queue: QueueName,
    /** Target queue; default each message's `x-death-queue`. */
    to: Type.Optional(QueueName),
    /** Most messages to move in this call. Default 100,000. */
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  }),
  deliver: Type.Object({
    consumerTag: ConsumerTag,
    deliveryTag: Type.Integer({ minimum: 1 }),
    queue: QueueName,
    messageId: Type.Optional(Type.String()),
    headers: Type.Optional(Headers),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 9 })),
    deliveryCount: Type.Integer({ minimum: 1 }),
    redelivered: Type.Boolean(),
    publishedAt: Type.Integer({ minimum: 0 }),
    /** When this delivery's lease runs out (ms since epoch): unacked by then, it is redelivered. */
    leaseExpiresAt: Type.Optional(Type.Integer({ minimum: 0 })),
    /**
     * Only `true`, only to a client that offered `backlog-hint` [PROTO §5.5]: this delivery used the
     * consumer's last credit and the queue has more ready, which it sends once the consumer settles.
     */
    backlog: Type.Optional(Type.Literal(true)),
  }),
  cancelled: Type.Object({ consumerTag: ConsumerTag, reason: Type.String() }),
  revoked: Type.Object({
    /** With `deliveryTag`: the consumer holding it. Both absent: a notice to every consuming connection [PROTO §5.20]. */
    consumerTag: Type.Optional(ConsumerTag),
    deliveryTag: Type.Optional(Type.Integer({ minimum: 1 })),
    taskId: TaskId,
    /** The revoker asked for the running task to be stopped, not only skipped. */
    terminate: Type.Boolean(),
  }),
  'result.put': Type.Object({
    ref: Ref,
    taskId: TaskId,
    state: StoredTaskStateSchema,
    /** How long the row is kept from this put. */
    ttlMs: TtlMs,
    /** No `ok` after the commit; a refusal is still answered with an `error` naming `ref` [PROTO §5.18]. */
    noReply: Type.Optional(Type.Boolean()),
  }),
  'result.get': Type.Object({
    ref: Ref,
    taskId: TaskId,
    /** Hold the reply until the state is terminal, at most this long. */
    waitMs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_RESULT_WAIT_MS })),
  }),
  result: Type.Object({
    ref: Ref,
    taskId: TaskId,
    state: TaskStateSchema,
    updatedAt: Type.Optional(Type.Integer({ minimum: 0 })),
    expiresAt: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
  'task.revoke': Type.Object({
    ref: Ref,
    taskId: TaskId,
    /** How long the revocation (and its REVOKED row) lasts; default the broker's `resultTtlMs`. */
    ttlMs: Type.Optional(TtlMs),
    terminate: Type.Optional(Type.Boolean()),
  }),
} satisfies Record<FrameType, TSchema>;

type HeaderOf<T extends FrameType> = Static<(typeof HeaderSchemas)[T]>;
/** Frame types that carry a body after the JSON header [PROTO §2.2]. */
export type BodyFrameType = 'publish' | 'deliver' | 'result.put' | 'result';
export const BODY_FRAME_TYPES: ReadonlySet<FrameType> = new Set<FrameType>(['publish', 'deliver', 'result.put', 'result']);
type WithBody<T extends FrameType> = T extends BodyFrameType ? { body: Uint8Array } : unknown;

/** A decoded frame of type `T`. */
export type FrameOf<T extends FrameType> = { type: T } & HeaderOf<T> & WithBody<T>;

/** Any frame: a union discriminated on `type`. */
export type Frame = { [T in FrameType]: FrameOf<T> }[FrameType];

export type HelloFrame = FrameOf<'hello'>;
export type WelcomeFrame = FrameOf<'welcome'>;
export type PublishFrame = FrameOf<'publish'>;
export type DeliverFrame = FrameOf<'deliver'>;
export type ConsumeFrame = FrameOf<'consume'>;

/** Frames a client may send; the rest only come from the broker. */
export const CLIENT_FRAME_TYPES: ReadonlySet<FrameType> = new Set<FrameType>([
  'hello',
  'heartbeat',
  'queue.declare',
  'queue.delete',
  'queue.purge',
  'queue.redrive',
  'publish',
  'consume',
  'cancel',
  'ack',
  'nack',
  'reject',
  'extend',
  'consumer.update',
  'pull',
  'result.put',
  'result.get',
  'task.revoke',
]);
