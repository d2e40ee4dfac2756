/** A delivered message and the calls that settle it. */
import { BrokerError, type FrameOf, type MessageHeaders } from '../protocol/index.js';

/** One settle call on its way to the broker. */
export interface SettleRequest {
  action: 'ack' | 'nack' | 'reject';
  deliveryTag: number;
  requeue?: boolean;
  reason?: string;
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
  /** Tag of this delivery on this connection. */
  readonly deliveryTag: number;
  /** True once ack, nack or reject was called. */
  readonly settled: boolean;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
  /** Settles the delivery as done. Rejects with `E_DELIVERY_UNKNOWN` if the broker no longer holds it for us. */
  ack(): Promise<void>;
  /** Gives the message back: to the queue's head by default, or dead-letters it with `requeue: false`. */
  nack(options?: { requeue?: boolean }): Promise<void>;
  /** Sends the message to the queue's dead-letter queue (or drops it when there is none). */
  reject(options?: { reason?: string }): Promise<void>;
}

const textDecoder = new TextDecoder();

export function createMessage(frame: FrameOf<'deliver'>, settle: (request: SettleRequest) => void): Message {
  let settled = false;
  const send = (action: SettleRequest['action'], extra: Partial<Pick<SettleRequest, 'requeue' | 'reason'>>): Promise<void> => {
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
    get settled() {
      return settled;
    },
    text: () => textDecoder.decode(frame.body),
    json: <T>() => JSON.parse(textDecoder.decode(frame.body)) as T,
    ack: () => send('ack', {}),
    nack: (options = {}) => send('nack', { requeue: options.requeue ?? true }),
    reject: (options = {}) => send('reject', options.reason === undefined ? {} : { reason: options.reason }),
  };
}
