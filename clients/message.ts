/** A delivered message and the calls that settle it. */
import { BrokerError, type FrameOf, type MessageHeaders } from '../protocol/index.js';

/** One settle call on its way to the broker. */
export interface SettleRequest {
  action: 'ack' | 'nack' | 'reject';
  deliveryTag: number;
  requeue?: boolean;
  reason?: string;
  delayMs?: number;
  resolve(): void;
  reject(error: Error): void;
}

export interface Message {
  readonly queue: string;
  /** Raw body bytes. */
  readonly body: Uint8Array;
  readonly headers: Readonly<MessageHeaders>;
  readonly messageId: string | undefined;
  readonly priority: number;
  /** 1 on the first delivery. */
  readonly deliveryCount: number;
  /** True when this message was delivered before (to this or another consumer). */
  readonly redelivered: boolean;
  /** Broker time of the publish, ms since epoch. */
  readonly publishedAt: number;
  /** Tag of this delivery on this connection; a redelivery always gets a new one (the lease token). */
  readonly deliveryTag: number;
  /** When the lease runs out (ms since epoch, broker clock): unacked by then, the message is redelivered. */
  readonly leaseExpiresAt: number;
  /** True once ack, nack or reject was called. */
  readonly settled: boolean;
  /**
   * Aborts when the broker says the task this message runs (its `task-id` header) was revoked
   * while the message was held here ([PROTO §5.20]); `signal.reason` is a `BrokerError` with code
   * `E_TASK_REVOKED`. Pass it to fetch, timers and child calls. Never aborts for other reasons.
   */
  readonly signal: AbortSignal;
  /** `{ terminate }` as sent by the revoker once this message's task was revoked; null until then. */
  readonly revoked: { readonly terminate: boolean } | null;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
  /**
   * Settles the delivery as done. Rejects with `E_DELIVERY_UNKNOWN` if the broker no longer holds it for us,
   * and with `E_CONNECTION_CLOSED` if the connection it came on was lost (even if it has reconnected since:
   * delivery tags belong to one connection, and the broker delivers the message again). The same holds for
   * `nack`, `reject` and `extend`.
   */
  ack(): Promise<void>;
  /**
   * Gives the message back: to the queue's head by default, after `delayMs` if given
   * (retry with backoff), or to the dead-letter queue with `requeue: false`.
   * `reason` is kept as `x-death-error` if the message ends up dead-lettered.
   */
  nack(options?: { requeue?: boolean; delayMs?: number; reason?: string }): Promise<void>;
  /**
   * Renews the lease: the message stays ours for `ms` more (default: the queue's
   * visibility timeout). Rejects with `E_LEASE_EXPIRED` if it already ran out.
   */
  extend(ms?: number): Promise<void>;
  /** Sends the message to the queue's dead-letter queue (or drops it when there is none). */
  reject(options?: { reason?: string }): Promise<void>;
}

const textDecoder = new TextDecoder();

/** Internal hook the connection calls when a `revoked` frame names this delivery. Not public API. */
export const MARK_REVOKED: unique symbol = Symbol('berth.markRevoked');

/** A message as the connection holds it: with the hook to mark it revoked. */
export interface TrackedMessage extends Message {
  [MARK_REVOKED](terminate: boolean): void;
}

export function createMessage(
  frame: FrameOf<'deliver'>,
  settle: (request: SettleRequest) => void,
  extend: (deliveryTag: number, ms: number | undefined) => Promise<number>,
): TrackedMessage {
  let leaseExpiresAt = frame.leaseExpiresAt ?? Infinity;
  let settled = false;
  // Messages are a hot path: the AbortController exists only once someone asks for the signal.
  let controller: AbortController | undefined;
  let revoked: { readonly terminate: boolean } | null = null;
  const revokedReason = (): BrokerError =>
    new BrokerError('E_TASK_REVOKED', `task ${String(frame.headers?.['task-id'])} was revoked${revoked?.terminate === true ? ' (terminate)' : ''}`);
  const send = (action: SettleRequest['action'], extra: Partial<Pick<SettleRequest, 'requeue' | 'reason' | 'delayMs'>>): Promise<void> => {
    if (settled) {
      return Promise.reject(new BrokerError('E_DELIVERY_UNKNOWN', `delivery ${frame.deliveryTag} was already settled by this client`));
    }
    settled = true;
    return new Promise<void>((resolve, reject) => settle({ action, deliveryTag: frame.deliveryTag, ...extra, resolve, reject }));
  };
  return {
    queue: frame.queue,
    body: frame.body,
    headers: frame.headers ?? {},
    messageId: frame.messageId,
    priority: frame.priority ?? 0,
    deliveryCount: frame.deliveryCount,
    redelivered: frame.redelivered,
    publishedAt: frame.publishedAt,
    deliveryTag: frame.deliveryTag,
    get leaseExpiresAt() {
      return leaseExpiresAt;
    },
    get settled() {
      return settled;
    },
    get signal() {
      if (controller === undefined) {
        controller = new AbortController();
        if (revoked !== null) controller.abort(revokedReason());
      }
      return controller.signal;
    },
    get revoked() {
      return revoked;
    },
    [MARK_REVOKED](terminate: boolean) {
      // A second revoke may ask for more (terminate), never for less.
      if (revoked !== null && (revoked.terminate || !terminate)) return;
      revoked = Object.freeze({ terminate });
      if (controller !== undefined && !controller.signal.aborted) controller.abort(revokedReason());
    },
    text: () => textDecoder.decode(frame.body),
    json: <T>() => JSON.parse(textDecoder.decode(frame.body)) as T,
    ack: () => send('ack', {}),
    nack: (options = {}) => {
      const extra: Partial<SettleRequest> = { requeue: options.requeue ?? true };
      if (options.delayMs !== undefined) extra.delayMs = options.delayMs;
      if (options.reason !== undefined) extra.reason = options.reason;
      return send('nack', extra);
    },
    extend: async (ms) => {
      if (settled) throw new BrokerError('E_DELIVERY_UNKNOWN', `delivery ${frame.deliveryTag} was already settled by this client`);
      leaseExpiresAt = await extend(frame.deliveryTag, ms);
    },
    reject: (options = {}) => send('reject', options.reason === undefined ? {} : { reason: options.reason }),
  };
}
