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
} as const;

export type FrameType = keyof typeof Op;

const opNames = new Map<number, FrameType>(
  (Object.entries(Op) as Array<[FrameType, number]>).map(([name, code]) => [code, name]),
);

/** The frame type of a wire op code, or undefined for an unknown one. */
export function frameTypeOf(op: number): FrameType | undefined {
  return opNames.get(op);
}

const QueueName = Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_.:@/-]+$' });
const ConsumerTag = Type.String({ minLength: 1, maxLength: 200 });
const Ref = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Ms = Type.Integer({ minimum: 0, maximum: 10 * 365 * 24 * 3600 * 1000 });
const HeaderValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
const Headers = Type.Record(Type.String({ maxLength: 200 }), HeaderValue);
const DeliveryTags = Type.Array(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), {
  minItems: 1,
  maxItems: 100_000,
});

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
  }),
  welcome: Type.Object({
    version: Type.Integer(),
    connectionId: Type.String(),
    heartbeatMs: Type.Integer({ minimum: 0 }),
    maxFrameBytes: Type.Integer({ minimum: 1 }),
    maxBodyBytes: Type.Integer({ minimum: 1 }),
    /** Largest JSON header of one frame; optional for brokers that predate it. */
    maxHeaderBytes: Type.Optional(Type.Integer({ minimum: 1 })),
  }),
  heartbeat: Type.Object({}),
  ok: Type.Object({
    ref: Ref,
    /** Queue frames: messages stored (ready + unacked + delayed) and consumers. */
    messages: Type.Optional(Type.Integer({ minimum: 0 })),
    consumers: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Reply to `extend`: when the renewed leases run out (ms since epoch). */
    leaseExpiresAt: Type.Optional(Type.Integer({ minimum: 0 })),
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
    notBefore: Type.Optional(Type.Integer({ minimum: 0, maximum: 8.64e15 })),
    /** Expire this long after becoming ready; overrides the queue's `messageTtlMs`. */
    ttlMs: Type.Optional(Ms),
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
  }),
  cancelled: Type.Object({ consumerTag: ConsumerTag, reason: Type.String() }),
} satisfies Record<FrameType, TSchema>;

type HeaderOf<T extends FrameType> = Static<(typeof HeaderSchemas)[T]>;
type WithBody<T extends FrameType> = T extends 'publish' | 'deliver' ? { body: Uint8Array } : unknown;

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
]);
