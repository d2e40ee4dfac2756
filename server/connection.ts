/**
 * One WebSocket connection: decodes frames, runs their handlers against the
 * engine, and turns engine events into frames. Outbound frames of one turn
 * leave in one WebSocket message [PROTO §2].
 */
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import {
  BACKLOG_HINT,
  BrokerError,
  CLIENT_FRAME_TYPES,
  COMPACT_FRAMES,
  compactDeliverNames,
  decodeFrames,
  ErrorCodes,
  FrameWriter,
  jsonString,
  PROTOCOL_VERSION,
  type CompactDeliverFields,
  type DecodeError,
  type DecodeLimits,
  type ErrorCode,
  type Frame,
  type FrameOf,
} from '../protocol/index.js';
import type { BusyPoll } from './busy-poll.js';
import type { Delivery, Engine, EngineSession, SessionSink } from './engine/engine.js';
import { handlers } from './handlers/index.js';
import type { BrokerOptions } from './options.js';

/** WebSocket close codes we use, with the error code each carries in its reason [PROTO §6]. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  tooLarge: 1009,
  authFailed: 4001,
  heartbeatTimeout: 4002,
  handshake: 4003,
} as const;

/** Shortest heartbeat a client may ask for (the broker ticks every 250 ms at most). */
const MIN_HEARTBEAT_MS = 500;

/** Outbound bytes buffered before a message is sent early, within one turn. */
const SEND_CHUNK_BYTES = 256 * 1024;

/** Optional fields of an `ok` reply [PROTO §3.3]. */
export type OkFields = Omit<FrameOf<'ok'>, 'type' | 'ref'>;

/** What a frame handler may use. */
export interface ConnectionContext {
  readonly engine: Engine;
  /** Highest publish seq accepted on this connection. */
  lastPublishSeq: number;
  readonly session: EngineSession;
  readonly log: Logger;
  send(frame: Frame): void;
  replyOk(ref: number, fields?: OkFields): void;
  replyError(ref: number | undefined, error: unknown): void;
}

export class Connection implements ConnectionContext, SessionSink {
  readonly id: string;
  readonly log: Logger;
  readonly engine: Engine;
  #session: EngineSession | null = null;
  readonly #ws: WebSocket;
  readonly #options: Readonly<BrokerOptions>;
  readonly #busyPoll: BusyPoll;
  readonly #limits: DecodeLimits;
  readonly #writer = new FrameWriter();
  #flushQueued = false;
  readonly #consumerNames = new Map<string, { queue: string; prefix: string; names: Uint8Array | null }>();
  /** The client offered `compact-frames` in its hello: deliveries go with compact headers [PROTO §2.5]. */
  #compact = false;
  /** The client offered `backlog-hint`: deliveries say when the queue holds more for a consumer out of credit [PROTO §5.5]. */
  #backlogHint = false;
  /** Filled for each compact delivery, so that none makes an object of its own. */
  readonly #deliverFields: CompactDeliverFields = {
    names: new Uint8Array(0),
    deliveryTag: 0,
    deliveryCount: 0,
    redelivered: false,
    backlog: false,
    publishedAt: 0,
    leaseExpiresAt: undefined,
    priority: 0,
    messageId: null,
    headersJson: null,
  };
  #closed = false;
  #heartbeatMs: number;
  /** Highest publish seq accepted on this connection: seqs must increase [PROTO §5.4]. */
  lastPublishSeq = 0;
  lastReceivedAt: number;
  lastSentAt: number;

  constructor(params: { id: string; ws: WebSocket; engine: Engine; options: Readonly<BrokerOptions>; busyPoll: BusyPoll; log: Logger }) {
    this.id = params.id;
    this.#ws = params.ws;
    this.engine = params.engine;
    this.#options = params.options;
    this.#busyPoll = params.busyPoll;
    this.log = params.log;
    this.#limits = { maxBodyBytes: params.options.maxBodyBytes, maxHeaderBytes: params.options.maxHeaderBytes };
    this.lastReceivedAt = this.lastSentAt = params.options.clock();
    this.#heartbeatMs = params.options.heartbeatMs;
    params.ws.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    params.ws.on('close', (code) => this.#onClose(code));
    params.ws.on('error', (err) => this.log.warn({ err }, 'connection error'));
  }

  get session(): EngineSession {
    if (this.#session === null) throw new Error('session used before handshake');
    return this.#session;
  }

  get isOpen(): boolean {
    return !this.#closed;
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.lastReceivedAt = this.#options.clock();
    if (this.#session === null && data.length > this.#options.maxHandshakeBytes) {
      this.close(CloseCode.tooLarge, 'E_FRAME_TOO_LARGE', `message of ${data.length} bytes before the handshake, limit ${this.#options.maxHandshakeBytes}`);
      return;
    }
    if (!isBinary) {
      if (this.#session === null) {
        this.close(CloseCode.handshake, 'E_HANDSHAKE_REQUIRED', 'the first frame must be a binary hello frame');
        return;
      }
      this.#sendError(undefined, 'E_FRAME_MALFORMED', 'text messages are not part of the protocol; send binary frames');
      return;
    }
    decodeFrames(
      data,
      this.#limits,
      (frame) => this.#onFrame(frame),
      (error) => this.#onDecodeError(error),
    );
  }

  #onFrame(frame: Frame): void {
    if (this.#closed) return;
    if (this.#session === null) {
      if (frame.type !== 'hello') {
        this.close(CloseCode.handshake, 'E_HANDSHAKE_REQUIRED', `the first frame must be hello, got ${frame.type}`);
        return;
      }
      this.#handshake(frame);
      return;
    }
    if (frame.type === 'heartbeat') return;
    // A client that sent work is likely to send more soon: poll for it rather than sleep.
    this.#busyPoll.touch();
    if (!CLIENT_FRAME_TYPES.has(frame.type) || frame.type === 'hello') {
      this.#sendError(refOf(frame), 'E_FRAME_UNEXPECTED', `${frame.type} is not accepted from a client here`);
      return;
    }
    try {
      const handler = handlers[frame.type as keyof typeof handlers] as ((ctx: ConnectionContext, f: Frame) => void) | undefined;
      handler?.(this, frame);
    } catch (err) {
      this.replyError(refOf(frame), err);
    }
  }

  #handshake(hello: FrameOf<'hello'>): void {
    if (hello.version !== PROTOCOL_VERSION) {
      this.close(CloseCode.handshake, 'E_PROTOCOL_VERSION', `protocol version ${hello.version} is not supported; this broker speaks ${PROTOCOL_VERSION}`);
      return;
    }
    if (this.#options.token !== null && !tokensEqual(hello.token, this.#options.token)) {
      this.log.warn('authentication failed');
      this.close(CloseCode.authFailed, 'E_AUTH_FAILED', 'the token is missing or wrong');
      return;
    }
    // Like AMQP, the lower interval wins (bounded below); a broker with heartbeats off keeps them off.
    const asked = hello.heartbeatMs;
    if (asked !== undefined && asked > 0 && this.#heartbeatMs > 0) {
      this.#heartbeatMs = Math.max(Math.min(MIN_HEARTBEAT_MS, this.#heartbeatMs), Math.min(asked, this.#heartbeatMs));
    }
    this.#session = this.engine.openSession(this.id, this);
    this.#compact = hello.features?.includes(COMPACT_FRAMES) === true;
    this.#backlogHint = hello.features?.includes(BACKLOG_HINT) === true;
    this.send({
      type: 'welcome',
      version: PROTOCOL_VERSION,
      connectionId: this.id,
      heartbeatMs: this.#heartbeatMs,
      maxFrameBytes: this.#options.maxFrameBytes,
      maxBodyBytes: this.#options.maxBodyBytes,
      maxHeaderBytes: this.#options.maxHeaderBytes,
      features: [...(this.#compact ? [COMPACT_FRAMES] : []), ...(this.#backlogHint ? [BACKLOG_HINT] : [])],
    });
    this.log.info({ client: hello.client }, 'connection ready');
  }

  #onDecodeError(error: DecodeError): void {
    if (this.#session === null) {
      this.close(CloseCode.handshake, error.code, error.message);
      return;
    }
    this.log.debug({ code: error.code, type: error.type }, 'bad frame');
    // A publish is answered with a nack so the producer's pending publish settles.
    if (error.type === 'publish' && error.seq !== undefined) {
      this.send({ type: 'publish.nack', seq: error.seq, code: error.code, message: error.message });
      return;
    }
    this.#sendError(error.ref, error.code, error.message);
  }

  // ---- ConnectionContext ---------------------------------------------------

  send(frame: Frame): void {
    if (this.#closed) return;
    this.#writer.push(frame);
    this.#afterPush();
  }

  #afterPush(): void {
    if (this.#writer.length >= SEND_CHUNK_BYTES) {
      this.#flush();
      return;
    }
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      if (!this.engine.afterDispatch(this.#flushQueuedFrames)) queueMicrotask(this.#flushQueuedFrames);
    }
  }

  replyOk(ref: number, fields: OkFields = {}): void {
    this.send({ type: 'ok', ref, ...fields });
  }

  replyError(ref: number | undefined, error: unknown): void {
    if (error instanceof BrokerError) {
      this.#sendError(ref, error.code, error.message);
      return;
    }
    this.log.error({ err: error }, 'handler failed');
    this.#sendError(ref, 'E_INTERNAL', 'internal error; see the broker log');
  }

  #sendError(ref: number | undefined, code: ErrorCode, message: string): void {
    const frame: FrameOf<'error'> = { type: 'error', code, message, retryable: ErrorCodes[code].retryable };
    if (ref !== undefined) frame.ref = ref;
    this.send(frame);
  }

  readonly #flushQueuedFrames = (): void => this.#flush();

  #flush(): void {
    this.#flushQueued = false;
    if (this.#writer.count === 0 || this.#closed) return;
    this.lastSentAt = this.#options.clock();
    this.#ws.send(this.#writer.take(), { binary: true });
  }

  // ---- SessionSink ---------------------------------------------------------

  deliver(d: Delivery): void {
    if (this.#closed) return;
    const m = d.message;
    const consumer = this.#deliverNames(d.consumerTag, d.queue);
    const headersJson = m.headers === null ? null : JSON.stringify(m.headers);
    if (!this.#compact || consumer.names === null || !this.#pushCompactDeliver(d, consumer.names, headersJson)) {
      // The hottest JSON frame: its header is written by hand, the strings of its consumer once.
      // Every number here is an integer the engine made, so String() writes what JSON.stringify would.
      let json = `${consumer.prefix}"deliveryTag":${d.deliveryTag},"deliveryCount":${d.deliveryCount},"redelivered":${d.redelivered},"publishedAt":${m.publishedAt},"leaseExpiresAt":${d.leaseExpiresAt}`;
      if (m.messageId !== null) json += `,"messageId":${jsonString(m.messageId)}`;
      if (headersJson !== null) json += `,"headers":${headersJson}`;
      if (m.priority !== 0) json += `,"priority":${m.priority}`;
      if (d.backlog && this.#backlogHint) json += ',"backlog":true';
      this.#writer.pushJson('deliver', `${json}}`, m.body);
    }
    this.#afterPush();
    // An ack, or the next pull, answers a delivery: poll for it rather than sleep.
    this.#busyPoll.touch();
  }

  #pushCompactDeliver(d: Delivery, names: Uint8Array, headersJson: string | null): boolean {
    const fields = this.#deliverFields;
    const m = d.message;
    fields.names = names;
    fields.deliveryTag = d.deliveryTag;
    fields.deliveryCount = d.deliveryCount;
    fields.redelivered = d.redelivered;
    fields.backlog = d.backlog && this.#backlogHint;
    fields.publishedAt = m.publishedAt;
    fields.leaseExpiresAt = d.leaseExpiresAt;
    fields.priority = m.priority;
    fields.messageId = m.messageId;
    fields.headersJson = headersJson;
    const written = this.#writer.pushCompactDeliver(fields, m.body);
    // Let the strings go with the delivery.
    fields.messageId = fields.headersJson = null;
    return written;
  }

  /**
   * A consumer's tag and queue as its deliveries write them, made once while its tag names the same
   * queue: `prefix` starts the JSON header (`{"consumerTag":…,"queue":…,`), `names` are the bytes of
   * the compact one (null if they do not fit it).
   */
  #deliverNames(consumerTag: string, queue: string): { prefix: string; names: Uint8Array | null } {
    const cached = this.#consumerNames.get(consumerTag);
    if (cached?.queue === queue) return cached;
    const prefix = `{"consumerTag":${JSON.stringify(consumerTag)},"queue":${JSON.stringify(queue)},`;
    const entry = { queue, prefix, names: compactDeliverNames(consumerTag, queue) };
    // Tags of cancelled consumers are not forgotten one by one: a connection that made many starts over.
    if (this.#consumerNames.size >= 1024) this.#consumerNames.clear();
    this.#consumerNames.set(consumerTag, entry);
    return entry;
  }

  confirm(upTo: number, duplicates: number[]): void {
    this.send(duplicates.length === 0 ? { type: 'confirm', upTo } : { type: 'confirm', upTo, duplicates });
    // A producer waiting for this confirm publishes next.
    this.#busyPoll.touch();
  }

  publishFailed(seq: number, error: BrokerError): void {
    const nack: FrameOf<'publish.nack'> = { type: 'publish.nack', seq, code: error.code, message: error.message };
    if (error.retryAfterMs !== undefined) nack.retryAfterMs = error.retryAfterMs;
    this.send(nack);
  }

  consumerCancelled(consumerTag: string, reason: string): void {
    this.send({ type: 'cancelled', consumerTag, reason });
  }

  revoked(event: { consumerTag?: string; deliveryTag?: number; taskId: string; terminate: boolean }): void {
    this.send({ type: 'revoked', ...event });
  }

  // ---- lifecycle -----------------------------------------------------------

  /** Sends a heartbeat when idle; drops the peer when it has been silent too long. */
  tick(now: number): void {
    const hb = this.#heartbeatMs;
    if (hb === 0 || this.#closed) return;
    if (now - this.lastReceivedAt > 2 * hb) {
      this.log.info({ silentMs: now - this.lastReceivedAt }, 'heartbeat timeout');
      this.close(CloseCode.heartbeatTimeout, 'E_HEARTBEAT_TIMEOUT', `nothing received for ${now - this.lastReceivedAt} ms`);
      this.#ws.terminate();
      return;
    }
    if (this.#session !== null && now - this.lastSentAt >= hb / 2) this.send({ type: 'heartbeat' });
  }

  /** Sends an error frame (when the code is not `normal`) and closes the socket with `closeCode`. */
  close(closeCode: number, code?: ErrorCode, message?: string): void {
    if (this.#closed) return;
    if (code !== undefined && message !== undefined) this.#sendError(undefined, code, message);
    this.#flush();
    this.#closed = true;
    // The close reason is limited to 123 bytes; it carries the code, the error frame the detail.
    this.#ws.close(closeCode, code ?? '');
    this.#release();
  }

  #onClose(code: number): void {
    this.#closed = true;
    this.#release();
    this.log.info({ code }, 'connection closed');
  }

  #release(): void {
    if (this.#session !== null) {
      this.engine.closeSession(this.#session);
    }
  }
}

function refOf(frame: Frame): number | undefined {
  return 'ref' in frame ? frame.ref : undefined;
}

function tokensEqual(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
