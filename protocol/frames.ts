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
  publish: 20,
  confirm: 21,
  'publish.nack': 22,
  consume: 30,
  cancel: 31,
  ack: 32,
  nack: 33,
  reject: 34,
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
  }),
  error: Type.Object({
    ref: Type.Optional(Ref),
    code: Type.String({ maxLength: 100 }),
    message: Type.String({ maxLength: 4096 }),
    retryable: Type.Optional(Type.Boolean()),
    /** For a refused ack/nack/reject: the delivery tags that were unknown or already settled. */
    deliveryTags: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }))),
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
  }),
  confirm: Type.Object({ upTo: Type.Integer({ minimum: 1 }) }),
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
    prefetch: Type.Integer({ minimum: 1, maximum: 65_535 }),
  }),
  cancel: Type.Object({ ref: Ref, consumerTag: ConsumerTag }),
  ack: Type.Object({ ref: Type.Optional(Ref), deliveryTags: DeliveryTags }),
  nack: Type.Object({ ref: Type.Optional(Ref), deliveryTags: DeliveryTags, requeue: Type.Optional(Type.Boolean()) }),
  reject: Type.Object({
    ref: Type.Optional(Ref),
    deliveryTags: DeliveryTags,
    reason: Type.Optional(Type.String({ maxLength: 4096 })),
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
  'publish',
  'consume',
  'cancel',
  'ack',
  'nack',
  'reject',
]);
