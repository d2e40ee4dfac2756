/**
 * A connection to a Berth broker: queues, confirmed publishes, consumers.
 *
 * Frames produced in one turn leave in one WebSocket message; publishes are
 * pipelined (many unconfirmed at once, bounded by `maxUnconfirmed`), and acks
 * of one turn go out as one frame.
 */
import {
  BrokerError,
  decodeFrames,
  DEFAULT_DECODE_LIMITS,
  FRAME_OVERHEAD_BYTES,
  FrameWriter,
  isErrorCode,
  PROTOCOL_VERSION,
  type DecodeError,
  type Frame,
  type FrameOf,
  type MessageHeaders,
  type QueueOptions,
} from '../protocol/index.js';
import { createMessage, type Message, type SettleRequest } from './message.js';
import { openTransport, type Transport, type WebSocketConstructor } from './transport.js';

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Token the broker requires, if any. */
  token?: string;
  /** Name shown in the broker's logs. */
  clientName?: string;
  /** Heartbeat interval to ask for; the broker uses the lower of its own and this. Default: the broker's. */
  heartbeatMs?: number;
  /** Give up connecting after this long. Default 10,000 ms. */
  connectTimeoutMs?: number;
  /** Request (declare, consume, …) timeout. Default 30,000 ms. */
  requestTimeoutMs?: number;
  /** Unconfirmed publishes before `publish` waits for confirms. Default 10,000. */
  maxUnconfirmed?: number;
  /** Called for broker errors that belong to no call (e.g. a refused frame). Default: ignored. */
  onError?: (error: BrokerError) => void;
  /** A WebSocket constructor to use instead of the global one or `ws`. */
  WebSocket?: WebSocketConstructor;
}

/** Options of one publish. */
export interface PublishOptions {
  /** Producer-chosen id, delivered with the message. */
  messageId?: string;
  headers?: MessageHeaders;
  /** 0–9, higher is delivered first. Default 0. */
  priority?: number;
  /** Deliver no sooner than this many ms from now (held by the broker, not by a consumer). */
  delayMs?: number;
  /** Deliver no sooner than this time (a Date or ms since epoch). */
  notBefore?: Date | number;
  /** Expire (dead-letter or drop) if not delivered within this many ms of becoming ready. */
  ttlMs?: number;
}

/** What a confirmed publish tells. */
export interface PublishResult {
  /** True when the queue had seen this `messageId` within its dedup window: nothing new was stored. */
  duplicate: boolean;
}

/** Options of {@link Connection.consume}. */
export interface ConsumeOptions {
  /** Most unacked deliveries this consumer holds at once. Default 10; 0 = pull mode (see `Subscription.pull`). */
  prefetch?: number;
  /** Tag naming the consumer on this connection. Default generated. */
  consumerTag?: string;
}

/** A message handler. Return without settling → acked; throw → nacked with requeue. */
export type MessageHandler = (message: Message) => void | Promise<void>;

export interface Subscription {
  readonly consumerTag: string;
  readonly queue: string;
  /** Stops deliveries; unacked messages may still be settled. */
  cancel(): Promise<void>;
  /** Changes the prefetch window while consuming; 0 switches to pull mode. */
  setPrefetch(prefetch: number): Promise<void>;
  /** In pull mode: asks for `count` more messages (default 1). */
  pull(count?: number): Promise<void>;
}

export interface QueueInfo {
  /** Messages stored: ready plus unacked. */
  messages: number;
  consumers: number;
}

export interface Connection {
  /** Declares a queue (idempotent). With options, an existing queue must match them. */
  assertQueue(name: string, options?: QueueOptions): Promise<QueueInfo>;
  /** Deletes a queue and its messages; resolves with how many messages went. */
  deleteQueue(name: string, options?: { ifEmpty?: boolean; ifUnused?: boolean }): Promise<number>;
  /** Drops the queue's ready messages; resolves with how many went. */
  purgeQueue(name: string): Promise<number>;
  /**
   * Publishes a message; resolves once the broker has made it durable, rejects
   * with a {@link BrokerError} when it is refused. `Uint8Array` bodies travel as
   * they are, strings as UTF-8, anything else as JSON.
   */
  publish(queue: string, body: unknown, options?: PublishOptions): Promise<PublishResult>;
  /**
   * Moves messages of a dead-letter queue back to the queue each came from
   * (`x-death-queue`), or to `to`; resolves with how many moved.
   */
  redrive(queue: string, options?: { to?: string; limit?: number }): Promise<number>;
  consume(queue: string, handler: MessageHandler, options?: ConsumeOptions): Promise<Subscription>;
  /** Publishes not yet confirmed. */
  readonly unconfirmed: number;
  /** Resolves when the connection has closed, with the reason if it was not `close()`. */
  readonly closed: Promise<BrokerError | undefined>;
  /** Closes the connection; pending publishes reject with `E_CONNECTION_CLOSED`. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxUnconfirmed: 10_000,
  prefetch: 10,
} as const;

/** Delivery tags per ack/nack/reject frame: keeps its JSON header far below the 64 KiB limit. */
const MAX_TAGS_PER_SETTLE = 4000;
/** Bytes after which an outbound message is sent within the same turn. */
const SEND_CHUNK_BYTES = 256 * 1024;
/** Our inbound limit until the broker's welcome says otherwise. */
const MAX_INBOUND_BYTES = 64 * 1024 * 1024;

const textEncoder = new TextEncoder();
const STORED: PublishResult = Object.freeze({ duplicate: false });
const DUPLICATE: PublishResult = Object.freeze({ duplicate: true });

function encodeBody(body: unknown, headers: MessageHeaders | undefined): { bytes: Uint8Array; headers: MessageHeaders | undefined } {
  if (body instanceof Uint8Array) return { bytes: body, headers };
  if (typeof body === 'string') return { bytes: textEncoder.encode(body), headers: { 'content-type': 'text/plain', ...headers } };
  const json = JSON.stringify(body);
  if (json === undefined) throw new BrokerError('E_INVALID_ARGUMENT', 'message body must be bytes, a string or JSON-serialisable');
  return { bytes: textEncoder.encode(json), headers: { 'content-type': 'application/json', ...headers } };
}

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

interface ConsumerEntry {
  queue: string;
  handler: MessageHandler;
}

class ClientConnection implements Connection {
  readonly #options: ConnectOptions;
  #transport!: Transport;
  readonly #writer = new FrameWriter();
  #flushQueued = false;
  /** Until the welcome says otherwise, the smallest limit a broker may have. */
  #maxFrameBytes = 64 * 1024;
  #maxBodyBytes = 0;
  #maxHeaderBytes = DEFAULT_DECODE_LIMITS.maxHeaderBytes;
  #heartbeatMs = 0;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #lastReceivedAt = Date.now();
  #lastSentAt = Date.now();

  #nextRef = 1;
  readonly #requests = new Map<number, Pending<FrameOf<'ok'>> & { timer: ReturnType<typeof setTimeout> }>();
  #nextSeq = 1;
  readonly #unconfirmed = new Map<number, Pending<PublishResult>>();
  #capacityWaiters: Array<() => void> = [];
  /** Waiters woken for a freed slot that have not published yet. */
  #reservedSlots = 0;
  readonly #consumers = new Map<string, ConsumerEntry>();
  #nextConsumer = 1;
  readonly #settleQueue: SettleRequest[] = [];
  #closedError: BrokerError | undefined;
  #isClosed = false;
  #closedByUser = false;
  #resolveClosed!: (reason: BrokerError | undefined) => void;
  readonly closed: Promise<BrokerError | undefined>;
  #welcome: Pending<void> | undefined;

  constructor(options: ConnectOptions) {
    this.#options = options;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  async open(url: string): Promise<void> {
    const timeoutMs = this.#options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    const openOptions: Parameters<typeof openTransport>[2] = { maxPayloadBytes: MAX_INBOUND_BYTES, timeoutMs };
    if (this.#options.WebSocket !== undefined) openOptions.WebSocket = this.#options.WebSocket;
    this.#transport = await openTransport(
      url,
      { onMessage: (data) => this.#onMessage(data), onClose: (code, reason) => this.#onTransportClose(code, reason) },
      openOptions,
    );
    const welcomed = new Promise<void>((resolve, reject) => (this.#welcome = { resolve, reject }));
    const hello: FrameOf<'hello'> = { type: 'hello', version: PROTOCOL_VERSION };
    if (this.#options.token !== undefined) hello.token = this.#options.token;
    if (this.#options.clientName !== undefined) hello.client = this.#options.clientName;
    if (this.#options.heartbeatMs !== undefined) hello.heartbeatMs = this.#options.heartbeatMs;
    this.#send(hello);
    const timer = setTimeout(
      () => this.#fail(new BrokerError('E_TIMEOUT', `no welcome from ${url} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      await welcomed;
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- inbound -------------------------------------------------------------

  #onMessage(data: Uint8Array): void {
    this.#lastReceivedAt = Date.now();
    decodeFrames(
      data,
      { maxBodyBytes: MAX_INBOUND_BYTES, maxHeaderBytes: MAX_INBOUND_BYTES },
      (frame) => this.#onFrame(frame),
      (error: DecodeError) => this.#emitError(new BrokerError(error.code, `from broker: ${error.message}`)),
    );
  }

  #onFrame(frame: Frame): void {
    switch (frame.type) {
      case 'welcome':
        this.#maxFrameBytes = frame.maxFrameBytes;
        this.#maxBodyBytes = frame.maxBodyBytes;
        this.#maxHeaderBytes = frame.maxHeaderBytes ?? this.#maxHeaderBytes;
        this.#heartbeatMs = frame.heartbeatMs;
        this.#startHeartbeat();
        this.#welcome?.resolve();
        this.#welcome = undefined;
        return;
      case 'heartbeat':
        return;
      case 'ok': {
        const req = this.#requests.get(frame.ref);
        if (req === undefined) return;
        this.#requests.delete(frame.ref);
        clearTimeout(req.timer);
        req.resolve(frame);
        return;
      }
      case 'error':
        this.#onError(frame);
        return;
      case 'confirm': {
        const duplicates = frame.duplicates === undefined ? undefined : new Set(frame.duplicates);
        for (const [seq, pending] of this.#unconfirmed) {
          if (seq > frame.upTo) break;
          this.#unconfirmed.delete(seq);
          pending.resolve(duplicates?.has(seq) === true ? DUPLICATE : STORED);
        }
        this.#releaseCapacity();
        return;
      }
      case 'publish.nack': {
        const pending = this.#unconfirmed.get(frame.seq);
        if (pending === undefined) return;
        this.#unconfirmed.delete(frame.seq);
        const opts = frame.retryAfterMs === undefined ? undefined : { retryAfterMs: frame.retryAfterMs };
        pending.reject(new BrokerError(isErrorCode(frame.code) ? frame.code : 'E_INTERNAL', frame.message, opts));
        this.#releaseCapacity();
        return;
      }
      case 'deliver':
        this.#onDeliver(frame);
        return;
      case 'cancelled':
        this.#consumers.delete(frame.consumerTag);
        this.#emitError(new BrokerError('E_QUEUE_NOT_FOUND', `consumer ${frame.consumerTag} cancelled by the broker: ${frame.reason}`));
        return;
      default:
        this.#emitError(new BrokerError('E_FRAME_UNEXPECTED', `unexpected ${frame.type} frame from the broker`));
    }
  }

  #onError(frame: FrameOf<'error'>): void {
    const error = new BrokerError(isErrorCode(frame.code) ? frame.code : 'E_INTERNAL', frame.message);
    // A refused ack/nack/reject names its tags, so only those messages' promises reject.
    if (frame.deliveryTags !== undefined) Object.assign(error, { deliveryTags: frame.deliveryTags, expiredTags: frame.expiredTags ?? [] });
    if (this.#welcome !== undefined) {
      this.#welcome.reject(error);
      this.#welcome = undefined;
      this.#closedError ??= error;
      return;
    }
    if (frame.ref !== undefined) {
      const req = this.#requests.get(frame.ref);
      if (req !== undefined) {
        this.#requests.delete(frame.ref);
        clearTimeout(req.timer);
        req.reject(error);
        return;
      }
    }
    this.#emitError(error);
  }

  #emitError(error: BrokerError): void {
    this.#options.onError?.(error);
  }

  #onDeliver(frame: FrameOf<'deliver'>): void {
    const consumer = this.#consumers.get(frame.consumerTag);
    const message = createMessage(
      frame,
      (request) => this.#queueSettle(request),
      async (deliveryTag, ms) => {
        const extend: FrameOf<'extend'> = { type: 'extend', ref: this.#nextRef++, deliveryTags: [deliveryTag] };
        if (ms !== undefined) extend.ms = ms;
        const ok = await this.#request(extend as Frame & { ref: number });
        return ok.leaseExpiresAt ?? Infinity;
      },
    );
    if (consumer === undefined) {
      // Cancelled while this delivery was on the wire: hand it back.
      void message.nack({ requeue: true }).catch(() => {});
      return;
    }
    void this.#runHandler(consumer.handler, message);
  }

  async #runHandler(handler: MessageHandler, message: Message): Promise<void> {
    try {
      await handler(message);
      if (!message.settled) await message.ack();
    } catch (err) {
      if (!message.settled) {
        await message.nack({ requeue: true }).catch(() => {});
      }
      if (!(err instanceof BrokerError && err.code === 'E_DELIVERY_UNKNOWN')) {
        this.#emitError(
          err instanceof BrokerError ? err : new BrokerError('E_INTERNAL', `message handler failed: ${(err as Error)?.message ?? String(err)}`, { cause: err }),
        );
      }
    }
  }

  // ---- outbound ------------------------------------------------------------

  #send(frame: Frame): void {
    if (this.#isClosed) throw this.#closedErrorOrDefault();
    // Never let one WebSocket message outgrow the broker's limit: an upper bound of this frame's size.
    const bound = ('body' in frame ? frame.body.length : 0) + this.#maxHeaderBytes + FRAME_OVERHEAD_BYTES;
    if (this.#writer.count > 0 && this.#writer.length + bound > this.#maxFrameBytes) this.#flush();
    this.#writer.push(frame);
    if (this.#writer.length >= SEND_CHUNK_BYTES) {
      this.#flush();
    } else if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushQueued = false;
    this.#flushSettles();
    if (this.#writer.count === 0 || this.#isClosed) return;
    this.#lastSentAt = Date.now();
    this.#transport.send(this.#writer.take());
  }

  #request(frame: Frame & { ref: number }): Promise<FrameOf<'ok'>> {
    const timeoutMs = this.#options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(frame.ref);
        reject(new BrokerError('E_TIMEOUT', `${frame.type} got no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#requests.set(frame.ref, { resolve, reject, timer });
      try {
        this.#send(frame);
      } catch (err) {
        clearTimeout(timer);
        this.#requests.delete(frame.ref);
        reject(err as Error);
      }
    });
  }

  #queueSettle(request: SettleRequest): void {
    if (this.#isClosed) {
      request.reject(this.#closedErrorOrDefault());
      return;
    }
    this.#settleQueue.push(request);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Turns the settles of this turn into one frame per kind, each with a ref so the broker answers. */
  #flushSettles(): void {
    if (this.#settleQueue.length === 0) return;
    const requests = this.#settleQueue.splice(0);
    const groups = new Map<string, SettleRequest[]>();
    for (const r of requests) {
      const key = `${r.action}|${r.requeue ?? ''}|${r.delayMs ?? ''}|${r.reason ?? ''}`;
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = []));
      group.push(r);
    }
    const chunks: SettleRequest[][] = [];
    for (const group of groups.values()) {
      for (let i = 0; i < group.length; i += MAX_TAGS_PER_SETTLE) chunks.push(group.slice(i, i + MAX_TAGS_PER_SETTLE));
    }
    for (const group of chunks) {
      const first = group[0]!;
      const ref = this.#nextRef++;
      const deliveryTags = group.map((r) => r.deliveryTag);
      const frame =
        first.action === 'ack'
          ? ({ type: 'ack', ref, deliveryTags } as const)
          : first.action === 'nack'
            ? ({
                type: 'nack',
                ref,
                deliveryTags,
                requeue: first.requeue ?? true,
                ...(first.delayMs === undefined ? {} : { delayMs: first.delayMs }),
                ...(first.reason === undefined ? {} : { reason: first.reason }),
              } as const)
            : ({ type: 'reject', ref, deliveryTags, ...(first.reason === undefined ? {} : { reason: first.reason }) } as const);
      const timeoutMs = this.#options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
      const timer = setTimeout(() => {
        this.#requests.delete(ref);
        for (const r of group) r.reject(new BrokerError('E_TIMEOUT', `${first.action} got no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#requests.set(ref, {
        timer,
        resolve: () => {
          for (const r of group) r.resolve();
        },
        reject: (error) => {
          const detail = error as BrokerError & { deliveryTags?: number[]; expiredTags?: number[] };
          const refused = new Set(detail.deliveryTags ?? []);
          const expired = new Set(detail.expiredTags ?? []);
          for (const r of group) {
            if (refused.size > 0 && !refused.has(r.deliveryTag)) r.resolve();
            else if (expired.has(r.deliveryTag)) r.reject(new BrokerError('E_LEASE_EXPIRED', error.message));
            else if (expired.size > 0) r.reject(new BrokerError('E_DELIVERY_UNKNOWN', error.message));
            else r.reject(error);
          }
        },
      });
      this.#writer.push(frame);
    }
  }

  // ---- API -----------------------------------------------------------------

  get unconfirmed(): number {
    return this.#unconfirmed.size;
  }

  async assertQueue(name: string, options?: QueueOptions): Promise<QueueInfo> {
    const frame: FrameOf<'queue.declare'> = { type: 'queue.declare', ref: this.#nextRef++, queue: name };
    if (options !== undefined) frame.options = options;
    const ok = await this.#request(frame);
    return { messages: ok.messages ?? 0, consumers: ok.consumers ?? 0 };
  }

  async deleteQueue(name: string, options: { ifEmpty?: boolean; ifUnused?: boolean } = {}): Promise<number> {
    const ok = await this.#request({ type: 'queue.delete', ref: this.#nextRef++, queue: name, ...options });
    return ok.messages ?? 0;
  }

  async purgeQueue(name: string): Promise<number> {
    const ok = await this.#request({ type: 'queue.purge', ref: this.#nextRef++, queue: name });
    return ok.messages ?? 0;
  }

  async publish(queue: string, body: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    const encoded = encodeBody(body, options.headers);
    if (encoded.bytes.length > this.#maxBodyBytes) {
      throw new BrokerError('E_MESSAGE_TOO_LARGE', `body is ${encoded.bytes.length} bytes, the broker's limit is ${this.#maxBodyBytes}`);
    }
    if (encoded.headers !== undefined && options.headers !== undefined) {
      // Only user headers can be large; check them here so the broker never has to refuse an unnamed frame.
      const headerBytes = textEncoder.encode(JSON.stringify(encoded.headers)).length;
      if (headerBytes > this.#maxHeaderBytes - 1024) {
        throw new BrokerError('E_FRAME_TOO_LARGE', `headers are ${headerBytes} bytes as JSON; the broker's header limit is ${this.#maxHeaderBytes} bytes per frame`);
      }
    }
    const limit = this.#options.maxUnconfirmed ?? DEFAULTS.maxUnconfirmed;
    if (this.#unconfirmed.size + this.#reservedSlots >= limit || this.#capacityWaiters.length > 0) {
      // Bounded memory: wait, in arrival order, for a slot freed by a confirm.
      await new Promise<void>((resolve) => this.#capacityWaiters.push(resolve));
      this.#reservedSlots--;
    }
    const frame: FrameOf<'publish'> = { type: 'publish', seq: this.#nextSeq++, queue, body: encoded.bytes };
    if (options.messageId !== undefined) frame.messageId = options.messageId;
    if (encoded.headers !== undefined) frame.headers = encoded.headers;
    if (options.priority !== undefined) frame.priority = options.priority;
    if (options.delayMs !== undefined) frame.delayMs = options.delayMs;
    if (options.notBefore !== undefined) frame.notBefore = options.notBefore instanceof Date ? options.notBefore.getTime() : options.notBefore;
    if (options.ttlMs !== undefined) frame.ttlMs = options.ttlMs;
    return new Promise<PublishResult>((resolve, reject) => {
      this.#send(frame);
      this.#unconfirmed.set(frame.seq, { resolve, reject });
    });
  }

  #releaseCapacity(): void {
    const limit = this.#options.maxUnconfirmed ?? DEFAULTS.maxUnconfirmed;
    const free = limit - this.#unconfirmed.size - this.#reservedSlots;
    if (free <= 0 || this.#capacityWaiters.length === 0) return;
    const woken = this.#capacityWaiters.splice(0, free);
    this.#reservedSlots += woken.length;
    for (const wake of woken) wake();
  }

  async redrive(queue: string, options: { to?: string; limit?: number } = {}): Promise<number> {
    const ok = await this.#request({ type: 'queue.redrive', ref: this.#nextRef++, queue, ...options });
    return ok.messages ?? 0;
  }

  async consume(queue: string, handler: MessageHandler, options: ConsumeOptions = {}): Promise<Subscription> {
    const consumerTag = options.consumerTag ?? `c${this.#nextConsumer++}`;
    const prefetch = options.prefetch ?? DEFAULTS.prefetch;
    this.#consumers.set(consumerTag, { queue, handler });
    try {
      await this.#request({ type: 'consume', ref: this.#nextRef++, queue, consumerTag, prefetch });
    } catch (err) {
      this.#consumers.delete(consumerTag);
      throw err;
    }
    return {
      consumerTag,
      queue,
      cancel: async () => {
        if (!this.#consumers.has(consumerTag)) return;
        await this.#request({ type: 'cancel', ref: this.#nextRef++, consumerTag });
        this.#consumers.delete(consumerTag);
      },
      setPrefetch: async (next) => {
        await this.#request({ type: 'consumer.update', ref: this.#nextRef++, consumerTag, prefetch: next });
      },
      pull: async (count = 1) => {
        await this.#request({ type: 'pull', ref: this.#nextRef++, consumerTag, count });
      },
    };
  }

  // ---- lifecycle -----------------------------------------------------------

  #startHeartbeat(): void {
    if (this.#heartbeatMs === 0) return;
    this.#heartbeatTimer = setInterval(() => {
      const now = Date.now();
      if (now - this.#lastReceivedAt > 2 * this.#heartbeatMs) {
        this.#fail(new BrokerError('E_HEARTBEAT_TIMEOUT', `nothing received from the broker for ${now - this.#lastReceivedAt} ms`));
        return;
      }
      if (now - this.#lastSentAt >= this.#heartbeatMs / 2) this.#send({ type: 'heartbeat' });
    }, Math.max(50, this.#heartbeatMs / 2));
    // The heartbeat alone must not keep a process alive.
    (this.#heartbeatTimer as { unref?: () => void }).unref?.();
  }

  #closedErrorOrDefault(): BrokerError {
    return this.#closedError ?? new BrokerError('E_CONNECTION_CLOSED', 'connection is closed');
  }

  /** Closes the socket and settles everything pending with `error`. */
  #fail(error: BrokerError): void {
    if (this.#isClosed) return;
    this.#closedError ??= error;
    try {
      this.#transport.close(1000, '');
    } catch {
      // already closing
    }
    this.#onTransportClose(1006, error.message);
  }

  #onTransportClose(code: number, reason: string): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    clearInterval(this.#heartbeatTimer);
    if (this.#closedError === undefined && code !== 1000) {
      // The broker puts the error code in the close reason; ws closes an oversized message with 1009 and none.
      const wireCode = code === 1009 && reason === '' ? 'E_FRAME_TOO_LARGE' : (reason.split(':')[0] ?? '');
      this.#closedError = new BrokerError(
        isErrorCode(wireCode) ? wireCode : 'E_CONNECTION_CLOSED',
        `connection closed by the broker (code ${code}${reason === '' ? '' : `, ${reason}`})`,
      );
    }
    const error = this.#closedErrorOrDefault();
    this.#welcome?.reject(error);
    this.#welcome = undefined;
    for (const req of this.#requests.values()) {
      clearTimeout(req.timer);
      req.reject(error);
    }
    this.#requests.clear();
    for (const pending of this.#unconfirmed.values()) pending.reject(error);
    this.#unconfirmed.clear();
    for (const r of this.#settleQueue.splice(0)) r.reject(error);
    const waiting = this.#capacityWaiters.splice(0);
    this.#reservedSlots += waiting.length;
    for (const wake of waiting) wake(); // each then fails with the close error
    this.#consumers.clear();
    this.#resolveClosed(this.#closedByUser ? undefined : error);
  }

  async close(): Promise<void> {
    if (this.#isClosed) return;
    this.#flush();
    this.#closedByUser = true;
    this.#closedError ??= new BrokerError('E_CONNECTION_CLOSED', 'connection was closed by the client');
    const closed = this.closed;
    this.#transport.close(1000, '');
    // The socket's close event settles everything; don't wait on a peer that is gone.
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1000))]);
    this.#onTransportClose(1000, '');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Connects to a broker and completes the handshake.
 * Rejects with `E_AUTH_FAILED`, `E_PROTOCOL_VERSION`, `E_TIMEOUT` or a socket error.
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<Connection> {
  const conn = new ClientConnection(options);
  await conn.open(url);
  return conn;
}
