/** A delivered message and the calls that settle it. */
import { BrokerError, type FrameOf, type MessageHeaders } from '../protocol/index.js';
import { LazyAbort } from './lazy-abort.js';

/** One settle call on its way to the broker. */
export interface SettleRequest {
  action: 'ack' | 'nack' | 'reject';
  deliveryTag: number;
  requeue?: boolean;
  reason?: string;
  delayMs?: number;
  /** Sent without a ref: resolves once written; the broker answers only a refusal (a consumer with `confirmSettles: false`). */
  unconfirmed?: boolean;
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

/** What a message needs from the connection (session) it came on; one per session, shared by its messages. */
export interface DeliveryPort {
  settle(request: SettleRequest): void;
  extend(deliveryTag: number, ms: number | undefined): Promise<number>;
}

/**
 * A delivered message. A class rather than an object literal with closures: consumers handle
 * tens of thousands per second, and per-message closures were a visible part of their GC time.
 */
class DeliveredMessage implements TrackedMessage {
  readonly queue: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<MessageHeaders>;
  readonly messageId: string | undefined;
  readonly priority: number;
  readonly deliveryCount: number;
  readonly redelivered: boolean;
  readonly publishedAt: number;
  readonly deliveryTag: number;
  #leaseExpiresAt: number;
  #settled = false;
  // Made on the first revoke or the first read of `signal`: most messages never need one.
  #abort: LazyAbort | undefined;
  #revoked: { readonly terminate: boolean } | null = null;
  readonly #port: DeliveryPort;

  constructor(frame: FrameOf<'deliver'>, port: DeliveryPort) {
    this.queue = frame.queue;
    this.body = frame.body;
    this.headers = frame.headers ?? {};
    this.messageId = frame.messageId;
    this.priority = frame.priority ?? 0;
    this.deliveryCount = frame.deliveryCount;
    this.redelivered = frame.redelivered;
    this.publishedAt = frame.publishedAt;
    this.deliveryTag = frame.deliveryTag;
    this.#leaseExpiresAt = frame.leaseExpiresAt ?? Infinity;
    this.#port = port;
  }

  get leaseExpiresAt(): number {
    return this.#leaseExpiresAt;
  }

  get settled(): boolean {
    return this.#settled;
  }

  get signal(): AbortSignal {
    return (this.#abort ??= new LazyAbort()).signal;
  }

  get revoked(): { readonly terminate: boolean } | null {
    return this.#revoked;
  }

  [MARK_REVOKED](terminate: boolean): void {
    // A second revoke may ask for more (terminate), never for less.
    if (this.#revoked !== null && (this.#revoked.terminate || !terminate)) return;
    this.#revoked = Object.freeze({ terminate });
    // The first revoke's reason stays: a signal aborts once.
    (this.#abort ??= new LazyAbort()).abort(new BrokerError('E_TASK_REVOKED', `task ${String(this.headers['task-id'])} was revoked${terminate ? ' (terminate)' : ''}`));
  }

  text(): string {
    return textDecoder.decode(this.body);
  }

  json<T = unknown>(): T {
    return JSON.parse(textDecoder.decode(this.body)) as T;
  }

  ack(): Promise<void> {
    return this.#send('ack', undefined, undefined, undefined);
  }

  nack(options: { requeue?: boolean; delayMs?: number; reason?: string } = {}): Promise<void> {
    return this.#send('nack', options.requeue ?? true, options.reason, options.delayMs);
  }

  reject(options: { reason?: string } = {}): Promise<void> {
    return this.#send('reject', undefined, options.reason, undefined);
  }

  async extend(ms?: number): Promise<void> {
    if (this.#settled) throw new BrokerError('E_DELIVERY_UNKNOWN', `delivery ${this.deliveryTag} was already settled by this client`);
    this.#leaseExpiresAt = await this.#port.extend(this.deliveryTag, ms);
  }

  #send(action: SettleRequest['action'], requeue: boolean | undefined, reason: string | undefined, delayMs: number | undefined): Promise<void> {
    if (this.#settled) {
      return Promise.reject(new BrokerError('E_DELIVERY_UNKNOWN', `delivery ${this.deliveryTag} was already settled by this client`));
    }
    this.#settled = true;
    return new Promise<void>((resolve, reject) => {
      const request: SettleRequest = { action, deliveryTag: this.deliveryTag, resolve, reject };
      if (requeue !== undefined) request.requeue = requeue;
      if (reason !== undefined) request.reason = reason;
      if (delayMs !== undefined) request.delayMs = delayMs;
      this.#port.settle(request);
    });
  }
}

export function createMessage(frame: FrameOf<'deliver'>, port: DeliveryPort): TrackedMessage {
  return new DeliveredMessage(frame, port);
}
