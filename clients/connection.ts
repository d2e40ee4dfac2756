/**
 * A connection to a Berth broker: queues, confirmed publishes, consumers.
 *
 * Frames produced in one turn leave in one WebSocket message; publishes are
 * pipelined (many unconfirmed at once, bounded by `maxUnconfirmed`), and acks
 * of one turn go out as one frame.
 *
 * States of a connection ({@link Connection.state}), and what moves it:
 * - `open`: a session is up (handshake done, [PROTO §4.1]). Publishes and requests go out at once.
 *   A lost socket, a heartbeat timeout ([PROTO §4.2]) or a broker shutdown moves it to
 *   `reconnecting` when reconnecting is on and the cause is retryable, else to `closed`.
 * - `reconnecting`: waiting out a backoff delay or redoing the handshake. Unconfirmed and new
 *   publishes are held (at most `maxUnconfirmed`); new requests wait (within `requestTimeoutMs`);
 *   settling a delivery of the lost session is refused. A handshake moves it back to `open`
 *   (consumers are resumed, held publishes resent); a refused handshake (`E_AUTH_FAILED`,
 *   `E_PROTOCOL_VERSION`, …), `maxAttempts` failed attempts or `close()` move it to `closed`.
 * - `closed`: for good. Everything pending has been rejected and `closed` has resolved.
 *
 * Only protocol/ and Web APIs (WebSocket, crypto, timers) are used here, so this runs in browsers too.
 */
import {
  BACKLOG_HINT,
  BrokerError,
  COMPACT_FRAMES,
  decodeFrames,
  DEFAULT_DECODE_LIMITS,
  FRAME_OVERHEAD_BYTES,
  FrameWriter,
  isErrorCode,
  MAX_RESULT_WAIT_MS,
  PROTOCOL_VERSION,
  TASK_ID_HEADER,
  type DecodeError,
  type Frame,
  type FrameOf,
  type FrameType,
  type MessageHeaders,
  type QueueOptions,
  type StoredTaskState,
  type TaskState,
} from '../protocol/index.js';
import { pollForBacklog } from './backlog-poll.js';
import { createMessage, MARK_REVOKED, type Message, type DeliveryPort, type SettleRequest, type TrackedMessage } from './message.js';
import { openTransport, type Transport, type WebSocketConstructor } from './transport.js';
import { publishHeader } from './publish-header.js';
import { formatUuid } from './uuid.js';

/**
 * How a connection reconnects after it lost the broker (see {@link ConnectOptions.reconnect}).
 *
 * Attempt *n* waits a random time between 0 and min(`maxDelayMs`, `initialDelayMs` × 2^(n−1))
 * ("full jitter", so a fleet of clients does not reconnect in lockstep), then opens a socket
 * and redoes the handshake. With the defaults the caps are 100, 200, 400, … ms up to 5 s, and
 * the connection gives up after 10 failed attempts in a row, on average about 13 s (at most
 * about 26 s, plus `connectTimeoutMs` per attempt that hangs) after the loss.
 */
export interface ReconnectOptions {
  /** Cap of the first delay, in ms; doubles with every failed attempt. Default 100. Must be > 0. */
  initialDelayMs?: number;
  /** Largest cap of a delay, in ms. Default 5,000. Must be ≥ `initialDelayMs`. */
  maxDelayMs?: number;
  /**
   * Failed attempts in a row before the connection closes for good (`closed` resolves with
   * `E_CONNECTION_CLOSED`, pending publishes reject). Default 10. `Infinity`: never give up.
   * An attempt refused by the broker's handshake with a non-retryable code (`E_AUTH_FAILED`,
   * `E_PROTOCOL_VERSION`) ends the connection at once, whatever this says.
   */
  maxAttempts?: number;
}

/**
 * What happened to a connection, as told to {@link ConnectOptions.onStatus}:
 * - `disconnected`: the session was lost with `error`; reconnecting starts. Requests and settles
 *   in flight were rejected with `E_CONNECTION_CLOSED`; unconfirmed publishes are kept.
 * - `reconnecting`: attempt `attempt` starts after `delayMs`; `error` is why the previous one failed
 *   (or why the session was lost, for attempt 1).
 * - `reconnected`: the handshake succeeded after `attempts` attempts; consumers were resumed and held
 *   publishes resent. Pull-mode consumers (`prefetch: 0`) must `pull` again: credit does not survive.
 * - `closed`: closed for good, with the reason unless `close()` was called. Same value as `closed`.
 */
export type ConnectionStatus =
  | { type: 'disconnected'; error: BrokerError }
  | { type: 'reconnecting'; attempt: number; delayMs: number; error: Error }
  | { type: 'reconnected'; attempts: number }
  | { type: 'closed'; error: BrokerError | undefined };

/** See the states in this module's comment. */
export type ConnectionState = 'open' | 'reconnecting' | 'closed';

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Token the broker requires, if any. A wrong one fails with `E_AUTH_FAILED`, never retried. */
  token?: string;
  /** Name shown in the broker's logs. */
  clientName?: string;
  /**
   * Heartbeat interval to ask for, in ms; the broker uses the lower of its own and this, but not
   * less than 500 ms unless its own is lower ([PROTO §4.2]). Silence for more than twice the
   * interval counts as a lost connection (`E_HEARTBEAT_TIMEOUT`). Default: the broker's (2,500 ms
   * unless configured).
   */
  heartbeatMs?: number;
  /** Give up one connection attempt (socket open and handshake) after this long, in ms. Default 10,000. Must be > 0. */
  connectTimeoutMs?: number;
  /**
   * Request (declare, consume, settle, …) timeout in ms, counted from the call, so time spent
   * waiting for a reconnect counts too. Rejects with `E_TIMEOUT`. Default 30,000. Must be > 0.
   */
  requestTimeoutMs?: number;
  /**
   * Unconfirmed publishes (sent, or held while reconnecting) before `publish` waits, in call order,
   * for confirms: memory stays bounded however fast the producer is. Default 10,000. Integer ≥ 1.
   */
  maxUnconfirmed?: number;
  /**
   * A publish that is not confirmed within this many ms of the `publish` call (waiting for capacity,
   * reconnects and resends included) rejects with `E_TIMEOUT`. The message may or may not have been
   * stored: publishing it again with the same `messageId` is deduplicated by the broker within the
   * queue's dedup window (5 min by default, [PROTO §5.15]). Default 30,000. Must be > 0; `Infinity`
   * waits until the publish is confirmed or the connection closes for good.
   */
  publishDeadlineMs?: number;
  /**
   * Reconnect by itself when the connection is lost (socket error or close, heartbeat timeout,
   * broker shutdown or crash). Default `true`, with the defaults of {@link ReconnectOptions};
   * `false` closes the connection for good at the first loss (pending publishes reject).
   * Only losses after `connect()` resolved are retried: `connect()` itself makes one attempt.
   *
   * On reconnect, nothing is declared again (queues are durable in the broker); consumers are
   * consumed again with the same tag, handler and prefetch; unconfirmed publishes are sent again in
   * order, with new seqs and their `messageId`, so the broker's dedup keeps each one stored once.
   * Requests and settles that were in flight at the loss reject with `E_CONNECTION_CLOSED`
   * (retryable): their outcome is unknown. Unsettled deliveries of the lost session are
   * redelivered by the broker; settling them rejects with `E_CONNECTION_CLOSED`.
   */
  reconnect?: boolean | ReconnectOptions;
  /** Called for broker errors that belong to no call (e.g. a refused frame, a consumer that could not be resumed). Default: ignored. */
  onError?: (error: BrokerError) => void;
  /** Called when the connection is lost, reconnects, or closes for good; see {@link ConnectionStatus}. Default: ignored. */
  onStatus?: (status: ConnectionStatus) => void;
  /** A WebSocket constructor to use instead of the global one or `ws`. */
  WebSocket?: WebSocketConstructor;
  /**
   * `false` sends every frame masked with an all-zero key, which the `ws` package and the broker
   * then skip XORing and copying: w1 (publish with confirms) +15% and w4 +5% in this repository's
   * bench on Node 20 (medians of 6 alternating pairs). Default `true`: a fresh random key per frame,
   * as RFC 6455 requires of clients, so that an HTTP proxy or cache between client and broker cannot
   * be fed bytes an attacker chose. Set `false` only where no such intermediary sees the traffic
   * (loopback, your own network, `wss://` end to end). Needs the `ws` package (Node): it is used
   * even where a global `WebSocket` exists, and cannot be combined with the `WebSocket` option.
   */
  maskFrames?: boolean;
  /**
   * When frames written by the app leave as one WebSocket message.
   * - `'microtask'` (default): at the end of the current microtask queue, for the least latency.
   * - `'turn'`: at the end of the event-loop turn (`setImmediate`), so everything a turn produced
   *   (say, the results and acks of a batch of deliveries that all finished in it) leaves together:
   *   fewer, larger messages, and fewer turns of the broker. Task workers use it.
   *
   * Either way a message is sent early once it holds 256 KiB, and with `'turn'` once it holds 128
   * frames, or settles for half the largest prefetch of the connection's consumers (at least 16)
   * with nothing else but task states sent with `noReply`.
   */
  writeBatching?: 'microtask' | 'turn';
  /**
   * Offer the broker compact headers for publish and deliver frames ([PROTO §2.5]): their fields in
   * a fixed binary layout instead of JSON, used only if the broker's welcome accepts them (brokers
   * before 2026-12-07 do not, and get JSON). Default `true`. Each side spends fewer cycles per
   * message; `false` keeps every frame JSON, for a reader of the traffic or a test of that path.
   */
  compactFrames?: boolean;
  /**
   * Once this connection has settled every delivery it was given, while the broker holds more
   * messages back for a consumer's credit (it says so on the delivery, [PROTO §5.5]), keep the
   * process's event loop polling its sockets for this many µs instead of sleeping: the next delivery
   * is one round trip away, and on a virtual machine waking a sleeping process is the slowest part
   * of that trip. A consumer at prefetch 1 of a backlog went from 6.5k to 12k messages/s in this
   * repository's bench, for no more CPU per message. Only an announced backlog starts it, so a
   * consumer of an empty queue, or one still working on deliveries, never polls. Default 200; 0
   * turns it off (and stops asking the broker for the hint).
   */
  busyPollUs?: number;
}

/** Options of one publish. */
export interface PublishOptions {
  /**
   * Producer-chosen id, delivered with the message, and the broker's deduplication key
   * ([PROTO §5.15]). Default: a random UUID generated by the SDK, so that a publish sent again
   * after a lost confirm is stored once. Give your own to deduplicate across producers or restarts.
   */
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
  /**
   * With a string `task-id` header: the broker stores a `PENDING` result for that task, kept this
   * many ms, in the same commit as the message, unless the task has a result already ([PROTO §5.19]).
   * Integer ≥ 1. Without a `task-id` header it does nothing.
   */
  resultTtlMs?: number;
}

/** A task's state and result as the broker stores them ({@link Connection.getResult}). */
export interface TaskResult {
  taskId: string;
  /** `NOT_FOUND` when the broker has no row for the id (never stored, or expired). */
  state: TaskState;
  /** The bytes of the last `putResult` that was stored; null for none. */
  payload: Uint8Array | null;
  /** Broker time of the last stored write (ms since epoch); absent with `NOT_FOUND`. */
  updatedAt?: number;
  /** Broker time after which the row is deleted (ms since epoch); absent with `NOT_FOUND`. */
  expiresAt?: number;
}

/** What a confirmed publish tells. */
export interface PublishResult {
  /**
   * True when the queue had seen this `messageId` within its dedup window: nothing new was stored.
   * A publish sent again after a reconnect may resolve with `true`: its first send was stored.
   */
  duplicate: boolean;
}

/** Options of {@link Connection.consume}. */
export interface ConsumeOptions {
  /** Most unacked deliveries this consumer holds at once. Default 10; 0 = pull mode (see `Subscription.pull`). */
  prefetch?: number;
  /**
   * Called when the broker revokes the task of a message this consumer holds ([PROTO §5.20]),
   * after `message.revoked` is set and its `signal` aborted. The same news as the signal, without
   * an AbortController per message (for consumers that handle many).
   */
  onRevoked?: (message: Message) => void;
  /**
   * Default true: a handler that returns without settling acks the message, one that throws nacks
   * it. false: the handler only receives; the caller settles every message itself, whenever it
   * likes (a worker that buffers and runs messages later). Errors it throws are reported, nothing more.
   */
  autoSettle?: boolean;
  /**
   * Default true: ack, nack and reject are sent with a `ref`, and their promises resolve once the
   * broker has committed them (or reject with why it refused). false: they are sent without one,
   * as AMQP sends acks, and resolve once written to the socket; the broker then answers only a
   * refusal (`E_LEASE_EXPIRED`, `E_DELIVERY_UNKNOWN`), which goes to {@link ConnectOptions.onError}.
   * Saves a reply, a tracked request and a wake-up per batch. An unconfirmed ack lost with a broker
   * crash means the message is delivered again, which at-least-once allows either way.
   */
  confirmSettles?: boolean;
  /** Tag naming the consumer on this connection. Default generated. Kept across reconnects. */
  consumerTag?: string;
}

/** A message handler. Return without settling → acked; throw → nacked with requeue. */
export type MessageHandler = (message: Message) => void | Promise<void>;

export interface Subscription {
  readonly consumerTag: string;
  readonly queue: string;
  /** Stops deliveries (and resuming after a reconnect); unacked messages may still be settled. */
  cancel(): Promise<void>;
  /** Changes the prefetch window while consuming; 0 switches to pull mode. Kept across reconnects. */
  setPrefetch(prefetch: number): Promise<void>;
  /** In pull mode: asks for `count` more messages (default 1). Credit does not survive a reconnect. */
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
   *
   * Waits (bounded memory) while `maxUnconfirmed` publishes are unconfirmed. Survives reconnects:
   * it is sent again with its `messageId` until confirmed, or rejects with `E_TIMEOUT` after
   * `publishDeadlineMs`, or with the close reason when the connection closes for good. Either
   * rejection means the message may or may not have been stored.
   */
  publish(queue: string, body: unknown, options?: PublishOptions): Promise<PublishResult>;
  /**
   * Moves messages of a dead-letter queue back to the queue each came from
   * (`x-death-queue`), or to `to`; resolves with how many moved.
   */
  redrive(queue: string, options?: { to?: string; limit?: number }): Promise<number>;
  /** Starts a consumer. It is resumed (same tag, handler, prefetch) after every reconnect until cancelled. */
  consume(queue: string, handler: MessageHandler, options?: ConsumeOptions): Promise<Subscription>;
  /**
   * Stores a task's state, with an optional opaque `payload` (at most the broker's `maxBodyBytes`; an
   * empty one counts as none), kept `ttlMs` ms from now (integer ≥ 1). Resolves once it is durable
   * with `stored: true`, or with `stored: false` when the task's row was terminal already (`SUCCESS`,
   * `FAILURE`, `REVOKED`): a terminal state is never overwritten ([PROTO §5.18]).
   * Rejects with `E_FRAME_INVALID` (bad id or state), `E_MESSAGE_TOO_LARGE`, `E_INVALID_ARGUMENT`,
   * `E_TIMEOUT` after `requestTimeoutMs`, or `E_CONNECTION_CLOSED` if the connection was lost before
   * the reply (the put may or may not have been stored; putting the same state again is harmless).
   */
  putResult(taskId: string, state: Exclude<TaskState, 'NOT_FOUND'>, options: { payload?: Uint8Array; ttlMs: number }): Promise<{ stored: boolean }>;
  /**
   * {@link putResult} without waiting for, or getting, the broker's reply (`noReply`, [PROTO §5.18]):
   * one frame and nothing tracked per write, for workers that store a state per task. The write
   * commits with whatever else arrived in its turn, so an ack sent after it is answered only once
   * it is durable too. A refusal, or a loss of the connection, is reported to `onError`. While
   * the connection is reconnecting it is held and sent once the session is back, like `putResult`.
   * Throws `E_INVALID_ARGUMENT` or `E_MESSAGE_TOO_LARGE` for a bad payload, and
   * `E_CONNECTION_CLOSED` once the connection is closed for good.
   */
  sendResult(taskId: string, state: Exclude<TaskState, 'NOT_FOUND'>, options: { payload?: Uint8Array; ttlMs: number }): void;
  /**
   * Reads a task's state and payload; `NOT_FOUND` when the broker has none. With `waitMs` (integer,
   * 0–300,000, default 0) and a state that is not terminal, the broker answers when the state turns
   * terminal or after `waitMs` with the state it has then. The request times out after
   * `waitMs + requestTimeoutMs`. A read is safe to repeat, so a connection lost meanwhile does not
   * fail it: it is sent again once reconnected, within the same deadline.
   * Rejects with `E_INVALID_ARGUMENT` (bad `waitMs`), `E_RESULT_WAIT_LIMIT` (too many waiting reads
   * on this connection), `E_FRAME_INVALID` (bad id) or `E_TIMEOUT`.
   */
  getResult(taskId: string, options?: { waitMs?: number }): Promise<TaskResult>;
  /**
   * Revokes a task for `ttlMs` ms (integer ≥ 1; default the broker's `resultTtlMs`, 24 h unless
   * configured), also across broker restarts ([PROTO §5.20]): its messages that are ready or delayed
   * are never delivered, its state becomes `REVOKED` unless it is `SUCCESS` or `FAILURE` already, and
   * consumers holding one of its messages see that message's `signal` abort, with `revoked.terminate`
   * as given here (default false). Resolves once the revocation is durable.
   */
  revoke(taskId: string, options?: { ttlMs?: number; terminate?: boolean }): Promise<void>;
  /**
   * Hears the revocations the broker announces to this connection while it consumes, for tasks it
   * may run after acking their message early ([PROTO §5.20]); a revoked message this connection
   * still holds is told on the message instead (`signal`, `revoked`, consume's `onRevoked`).
   * Returns a function that stops listening.
   */
  onTaskRevoked(listener: (event: { taskId: string; terminate: boolean }) => void): () => void;
  /** Publishes not yet confirmed (sent, or held while reconnecting). */
  readonly unconfirmed: number;
  /** Where the connection is: `open`, `reconnecting` or `closed` (for good). */
  readonly state: ConnectionState;
  /**
   * Resolves when the connection has closed for good: `close()` was called (→ `undefined`), or the
   * connection was lost with reconnecting off or impossible (→ the reason), or reconnecting gave up
   * (→ `E_CONNECTION_CLOSED`, `cause` = the last attempt's error). Not on a loss that is reconnected.
   */
  readonly closed: Promise<BrokerError | undefined>;
  /** Closes the connection for good; pending publishes and requests reject with `E_CONNECTION_CLOSED`. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxUnconfirmed: 10_000,
  publishDeadlineMs: 30_000,
  prefetch: 10,
  busyPollUs: 200,
  reconnect: { initialDelayMs: 100, maxDelayMs: 5_000, maxAttempts: 10 },
} as const;
/** Longest `busyPollUs`: a window is meant to cover one round trip, not to replace sleeping. */
const MAX_BUSY_POLL_US = 100_000;

/** Delivery tags per ack/nack/reject frame: keeps its JSON header far below the 64 KiB limit. */
const MAX_TAGS_PER_SETTLE = 4000;
/** Bytes after which an outbound message is sent within the same turn. */
const SEND_CHUNK_BYTES = 256 * 1024;
/**
 * Frames (settles counted) after which a `writeBatching: 'turn'` message is sent early: the broker
 * starts on the first part of a large batch while this process produces the rest. Measured with a
 * worker at concurrency 100 (400 prefetched): without it, 9% fewer tasks/s than microtask batching.
 */
const TURN_CHUNK_FRAMES = 128;
/**
 * Settles after which a `writeBatching: 'turn'` message of settles is sent early, at least: or half
 * the largest prefetch of the connection's consumers, whichever is more. The acks of the first part
 * of a batch free credit the broker fills while this process runs the rest; without it a worker at
 * concurrency 10 (40 prefetched) and the broker took turns (w6-c10-ignore: +8–15%). Task states
 * sent with `noReply` may ride along: the broker keeps them waiting with the acks [PROTO §5.18]
 * (w6-c10 with results +11–14%, faster in 10 of 10 alternating pairs). Not when any other frame
 * waits (a publish, a request): each such message costs the broker a commit of its own, and when
 * task states still committed on arrival, sending them in two parts was 10% slower.
 */
const TURN_CHUNK_MIN_SETTLES = 16;
/** Our inbound limit until the broker's welcome says otherwise. */
const MAX_INBOUND_BYTES = 64 * 1024 * 1024;
/** Longest delay a timer takes (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long `close()` waits for the broker's side of the close handshake. */
const CLOSE_WAIT_MS = 1000;

type ResolvedReconnect = Readonly<Required<ReconnectOptions>>;
type ResolvedOptions = Readonly<
  Omit<ConnectOptions, 'connectTimeoutMs' | 'requestTimeoutMs' | 'maxUnconfirmed' | 'publishDeadlineMs' | 'reconnect'> & {
    connectTimeoutMs: number;
    requestTimeoutMs: number;
    maxUnconfirmed: number;
    publishDeadlineMs: number;
    busyPollUs: number;
    /** Undefined when reconnecting is off. */
    reconnect: ResolvedReconnect | undefined;
  }
>;

function invalid(message: string): BrokerError {
  return new BrokerError('E_INVALID_ARGUMENT', message);
}

function checkPositive(name: string, value: number, { infinite = false, integer = false } = {}): number {
  const ok = typeof value === 'number' && value > 0 && (Number.isFinite(value) ? !integer || Number.isInteger(value) : infinite && value === Infinity);
  if (!ok) throw invalid(`"${name}" must be ${integer ? 'an integer' : 'a number'} > 0${infinite ? ' or Infinity' : ''}, got ${String(value)}`);
  return value;
}

/** Merges the defaults into `input` and checks it, once, at `connect()`. Throws `E_INVALID_ARGUMENT`. */
function resolveOptions(input: ConnectOptions): ResolvedOptions {
  const { reconnect: reconnectInput, ...rest } = input;
  let reconnect: ResolvedReconnect | undefined;
  if (reconnectInput !== false) {
    const r = { ...DEFAULTS.reconnect, ...(reconnectInput === true || reconnectInput === undefined ? {} : reconnectInput) };
    checkPositive('reconnect.initialDelayMs', r.initialDelayMs);
    checkPositive('reconnect.maxDelayMs', r.maxDelayMs);
    if (r.maxDelayMs < r.initialDelayMs) {
      throw invalid(`"reconnect.maxDelayMs" must be ≥ "reconnect.initialDelayMs" (${r.initialDelayMs}), got ${r.maxDelayMs}`);
    }
    if (!(r.maxAttempts === Infinity || (Number.isInteger(r.maxAttempts) && r.maxAttempts >= 0))) {
      throw invalid(`"reconnect.maxAttempts" must be an integer ≥ 0 or Infinity, got ${String(r.maxAttempts)}`);
    }
    reconnect = Object.freeze(r);
  }
  if (input.writeBatching !== undefined && input.writeBatching !== 'microtask' && input.writeBatching !== 'turn') {
    throw invalid(`"writeBatching" must be 'microtask' or 'turn', got ${JSON.stringify(input.writeBatching)}`);
  }
  if (input.compactFrames !== undefined && typeof input.compactFrames !== 'boolean') {
    throw invalid(`"compactFrames" must be a boolean, got ${JSON.stringify(input.compactFrames)}`);
  }
  const busyPollUs = input.busyPollUs ?? DEFAULTS.busyPollUs;
  if (!(Number.isInteger(busyPollUs) && busyPollUs >= 0 && busyPollUs <= MAX_BUSY_POLL_US)) {
    throw invalid(`"busyPollUs" must be an integer from 0 to ${MAX_BUSY_POLL_US}, got ${String(input.busyPollUs)}`);
  }
  if (input.maskFrames !== undefined && typeof input.maskFrames !== 'boolean') {
    throw invalid(`"maskFrames" must be a boolean, got ${JSON.stringify(input.maskFrames)}`);
  }
  if (input.maskFrames === false && input.WebSocket !== undefined) {
    throw invalid('"maskFrames: false" sends through the ws package and cannot be combined with a "WebSocket" constructor');
  }
  return Object.freeze({
    ...rest,
    connectTimeoutMs: checkPositive('connectTimeoutMs', input.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs),
    requestTimeoutMs: checkPositive('requestTimeoutMs', input.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs),
    maxUnconfirmed: checkPositive('maxUnconfirmed', input.maxUnconfirmed ?? DEFAULTS.maxUnconfirmed, { integer: true }),
    publishDeadlineMs: checkPositive('publishDeadlineMs', input.publishDeadlineMs ?? DEFAULTS.publishDeadlineMs, { infinite: true }),
    busyPollUs,
    reconnect,
  });
}

const textEncoder = new TextEncoder();

/** Runs `fn` at the end of this event-loop turn: `setImmediate` in Node, a 0 ms timer where it is missing (browsers). */
const afterTurn: (fn: () => void) => void =
  typeof globalThis.setImmediate === 'function' ? (fn) => void globalThis.setImmediate(fn) : (fn) => void setTimeout(fn, 0);

/** What a message handler threw, as the error `onError` reports. */
function handlerError(err: unknown): BrokerError {
  return err instanceof BrokerError ? err : new BrokerError('E_INTERNAL', `message handler failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

const EMPTY = new Uint8Array(0);
const STORED: PublishResult = Object.freeze({ duplicate: false });
const DUPLICATE: PublishResult = Object.freeze({ duplicate: true });

function encodeBody(body: unknown, headers: MessageHeaders | undefined): { bytes: Uint8Array; headers: MessageHeaders | undefined } {
  if (body instanceof Uint8Array) return { bytes: body, headers };
  if (typeof body === 'string') return { bytes: textEncoder.encode(body), headers: { 'content-type': 'text/plain', ...headers } };
  const json = JSON.stringify(body);
  if (json === undefined) throw new BrokerError('E_INVALID_ARGUMENT', 'message body must be bytes, a string or JSON-serialisable');
  return { bytes: textEncoder.encode(json), headers: { 'content-type': 'application/json', ...headers } };
}

/** A random UUID (v4) from Web Crypto: Node ≥ 19, browsers, Deno, with no Node-only import. */
function newMessageId(): string {
  const webCrypto = (globalThis as { crypto?: Partial<Crypto> }).crypto;
  if (typeof webCrypto?.randomUUID === 'function') return webCrypto.randomUUID();
  // Browsers offer randomUUID only in secure contexts; getRandomValues everywhere.
  const bytes = new Uint8Array(16);
  if (typeof webCrypto?.getRandomValues === 'function') webCrypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return formatUuid(bytes);
}

/** The error a close code and reason stand for ([PROTO §6]): the reason is the error code when it is one. */
function closeError(code: number, reason: string): BrokerError {
  // ws closes an oversized message with 1009 and no reason.
  const wireCode = code === 1009 && reason === '' ? 'E_FRAME_TOO_LARGE' : (reason.split(':')[0] ?? '');
  return new BrokerError(
    isErrorCode(wireCode) ? wireCode : 'E_CONNECTION_CLOSED',
    `connection closed by the broker (code ${code}${reason === '' ? '' : `, ${reason}`})`,
  );
}

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** A request until its reply: `ok`, or `result` for `result.get`. */
interface RequestEntry extends Pending<FrameOf<'ok'> | FrameOf<'result'>> {
  /** Ms since epoch after which it rejects with `onTimeout()` (checked by one sweep, not a timer each). */
  deadlineAt: number;
  onTimeout(): BrokerError;
}

/** How often pending requests are checked against their deadlines. */
const REQUEST_SWEEP_MS = 100;

type ReplyType = 'ok' | 'result';

/** One publish until it is confirmed or refused: it outlives connections. */
interface PublishEntry extends Pending<PublishResult> {
  /** The frame to send; `seq` is set anew each time it is sent (seqs are per connection, [PROTO §5.4]). */
  readonly frame: FrameOf<'publish'>;
  /** Ms since epoch after which it rejects with `E_TIMEOUT`; Infinity for never. */
  readonly deadlineAt: number;
}

interface ConsumerEntry {
  queue: string;
  handler: MessageHandler;
  /** The prefetch to consume with again after a reconnect; follows `setPrefetch`. */
  prefetch: number;
  /** True once the broker accepted the consume: only such consumers are resumed. */
  active: boolean;
  onRevoked: ((message: Message) => void) | undefined;
  autoSettle: boolean;
  confirmSettles: boolean;
}

class ClientConnection implements Connection {
  readonly #url: string;
  readonly #options: ResolvedOptions;
  #state: ConnectionState | 'connecting' = 'connecting';
  /** Counts sessions; bumped when one starts and when it ends, so callbacks of a dead socket are ignored. */
  #epoch = 0;
  /** The socket of the current session, also during its handshake. */
  #transport: Transport | undefined;
  readonly #writer = new FrameWriter();
  /**
   * Frames in the writer other than task states sent with `noReply`: those the broker acts on as
   * they arrive, so a message holding one is not sent early for its settles (TURN_CHUNK_MIN_SETTLES).
   */
  #framesActedOnArrival = 0;
  #flushQueued = false;
  /** Until the welcome says otherwise, the smallest limit a broker may have. */
  #maxFrameBytes = 64 * 1024;
  #maxBodyBytes = 0;
  #maxHeaderBytes = DEFAULT_DECODE_LIMITS.maxHeaderBytes;
  /** The broker's welcome accepted `compact-frames`: publishes go with compact headers. */
  #compact = false;
  /** The latest delivery said the broker holds more back for its consumer's credit [PROTO §5.5]. */
  #backlogHinted = false;
  /** Deliveries of this session not yet settled: while any is, the app has work and need not poll. */
  #unsettled = 0;
  #heartbeatMs = 0;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #lastReceivedAt = Date.now();
  #lastSentAt = Date.now();
  #welcome: Pending<void> | undefined;

  #nextRef = 1;
  /** Requests sent on the current session, by ref. */
  readonly #requests = new Map<number, RequestEntry>();
  /** Requests made while reconnecting: sent once the session is back. */
  readonly #heldRequests = new Map<number, { frame: Frame & { ref: number }; entry: RequestEntry }>();
  #nextSeq = 1;
  /** Every unconfirmed publish, in publish order (the order they are sent again in). */
  readonly #publishes = new Set<PublishEntry>();
  /** The publishes sent on the current session, by seq (ascending). */
  readonly #bySeq = new Map<number, PublishEntry>();
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #capacityWaiters: Array<() => void> = [];
  /** Waiters woken for a freed slot that have not published yet. */
  #reservedSlots = 0;
  readonly #consumers = new Map<string, ConsumerEntry>();
  #nextConsumer = 1;
  /** Unsettled deliveries of this session that carry a `task-id` header, by tag: what `revoked` may name. */
  readonly #taskDeliveries = new Map<number, TrackedMessage>();
  /** The message ports of the current session: [settles confirmed, settles unconfirmed]. */
  #ports: { epoch: number; confirmed: DeliveryPort; unconfirmed: DeliveryPort } | undefined;
  #requestSweep: ReturnType<typeof setInterval> | undefined;
  readonly #revokeListeners = new Set<(event: { taskId: string; terminate: boolean }) => void>();
  readonly #settleQueue: SettleRequest[] = [];
  /** Settles that send a `turn` message early (see TURN_CHUNK_MIN_SETTLES); 0 until needed, once per message. */
  #settleChunk = 0;

  /** The reconnect attempt in progress (1-based). */
  #attempt = 0;
  #backoffTimer: ReturnType<typeof setTimeout> | undefined;
  #wakeBackoff: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #closedError: BrokerError | undefined;
  #resolveClosed!: (reason: BrokerError | undefined) => void;
  readonly closed: Promise<BrokerError | undefined>;

  constructor(url: string, options: ResolvedOptions) {
    this.#url = url;
    this.#options = options;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  /** The first connection: one attempt, no retry. */
  async open(): Promise<void> {
    try {
      await this.#openSession();
    } catch (err) {
      this.#state = 'closed';
      this.#endSession();
      throw err;
    }
  }

  /** Opens a socket and sends `hello`; resolves once `welcome` has opened the session ([PROTO §4.1]). */
  async #openSession(): Promise<void> {
    const epoch = ++this.#epoch;
    const timeoutMs = this.#options.connectTimeoutMs;
    const openOptions: Parameters<typeof openTransport>[2] = { maxPayloadBytes: MAX_INBOUND_BYTES, timeoutMs };
    if (this.#options.WebSocket !== undefined) openOptions.WebSocket = this.#options.WebSocket;
    if (this.#options.maskFrames !== undefined) openOptions.maskFrames = this.#options.maskFrames;
    const transport = await openTransport(
      this.#url,
      {
        onMessage: (data) => {
          if (epoch === this.#epoch) this.#onMessage(data);
        },
        onClose: (code, reason) => this.#onTransportClose(epoch, code, reason),
      },
      openOptions,
    );
    if (epoch !== this.#epoch || this.#state === 'closed') {
      transport.close(1000, '');
      throw this.#closedErrorOrDefault();
    }
    this.#transport = transport;
    this.#lastReceivedAt = this.#lastSentAt = Date.now();
    const welcomed = new Promise<void>((resolve, reject) => (this.#welcome = { resolve, reject }));
    const hello: FrameOf<'hello'> = { type: 'hello', version: PROTOCOL_VERSION };
    if (this.#options.token !== undefined) hello.token = this.#options.token;
    if (this.#options.clientName !== undefined) hello.client = this.#options.clientName;
    if (this.#options.heartbeatMs !== undefined) hello.heartbeatMs = this.#options.heartbeatMs;
    const features = [...(this.#options.compactFrames !== false ? [COMPACT_FRAMES] : []), ...(this.#options.busyPollUs > 0 ? [BACKLOG_HINT] : [])];
    if (features.length > 0) hello.features = features;
    this.#send(hello);
    const timer = setTimeout(() => {
      const welcome = this.#welcome;
      this.#welcome = undefined;
      welcome?.reject(new BrokerError('E_TIMEOUT', `no welcome from ${this.#url} within ${timeoutMs} ms`));
    }, timeoutMs);
    try {
      await welcomed;
    } catch (err) {
      if (epoch === this.#epoch) this.#endSession();
      else transport.close(1000, '');
      throw err;
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
      case 'welcome': {
        const welcome = this.#welcome;
        if (welcome === undefined) return;
        this.#welcome = undefined;
        this.#maxFrameBytes = frame.maxFrameBytes;
        this.#maxBodyBytes = frame.maxBodyBytes;
        this.#maxHeaderBytes = frame.maxHeaderBytes ?? this.#maxHeaderBytes;
        // Read on every welcome: the broker after a reconnect may be another version.
        this.#compact = frame.features?.includes(COMPACT_FRAMES) === true;
        this.#backlogHinted = false;
        this.#unsettled = 0;
        this.#heartbeatMs = frame.heartbeatMs;
        this.#startHeartbeat();
        const resumed = this.#state === 'reconnecting';
        this.#state = 'open';
        if (resumed) this.#resume();
        welcome.resolve();
        if (resumed) this.#emitStatus({ type: 'reconnected', attempts: this.#attempt });
        return;
      }
      case 'heartbeat':
        return;
      case 'ok':
      case 'result': {
        const req = this.#requests.get(frame.ref);
        if (req === undefined) return;
        this.#requests.delete(frame.ref);
        req.resolve(frame);
        return;
      }
      case 'revoked': {
        if (frame.deliveryTag === undefined) {
          // A notice to every consuming connection, for work already acked [PROTO §5.20].
          const event = { taskId: frame.taskId, terminate: frame.terminate };
          for (const listener of this.#revokeListeners) listener(event);
          return;
        }
        // A delivery already settled here, or of a lost session, is not in the map.
        const revoked = this.#taskDeliveries.get(frame.deliveryTag);
        if (revoked === undefined) return;
        revoked[MARK_REVOKED](frame.terminate);
        if (frame.consumerTag !== undefined) this.#consumers.get(frame.consumerTag)?.onRevoked?.(revoked);
        return;
      }
      case 'error':
        this.#onError(frame);
        return;
      case 'confirm': {
        const duplicates = frame.duplicates === undefined ? undefined : new Set(frame.duplicates);
        for (const [seq, entry] of this.#bySeq) {
          if (seq > frame.upTo) break;
          this.#bySeq.delete(seq);
          this.#publishes.delete(entry);
          entry.resolve(duplicates?.has(seq) === true ? DUPLICATE : STORED);
        }
        this.#releaseCapacity();
        return;
      }
      case 'publish.nack': {
        const entry = this.#bySeq.get(frame.seq);
        if (entry === undefined) return;
        this.#bySeq.delete(frame.seq);
        // The broker is going away and closes next [PROTO §4.5]: send it again on the next connection.
        if (frame.code === 'E_SHUTTING_DOWN' && this.#options.reconnect !== undefined) return;
        this.#publishes.delete(entry);
        const opts = frame.retryAfterMs === undefined ? undefined : { retryAfterMs: frame.retryAfterMs };
        entry.reject(new BrokerError(isErrorCode(frame.code) ? frame.code : 'E_INTERNAL', frame.message, opts));
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
      // The handshake was refused [PROTO §4.1]; the broker closes the socket next.
      const welcome = this.#welcome;
      this.#welcome = undefined;
      welcome.reject(error);
      return;
    }
    if (frame.ref !== undefined) {
      const req = this.#requests.get(frame.ref);
      if (req !== undefined) {
        this.#requests.delete(frame.ref);
        req.reject(error);
        return;
      }
    }
    this.#emitError(error);
  }

  #emitError(error: BrokerError): void {
    this.#options.onError?.(error);
  }

  #emitStatus(status: ConnectionStatus): void {
    try {
      this.#options.onStatus?.(status);
    } catch (err) {
      // Like a throwing event listener: surface it, without breaking our own state changes.
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  /** The error for a call on a delivery of session `epoch` that is no longer the current one. */
  #staleDelivery(epoch: number, deliveryTag: number, what: string): BrokerError | undefined {
    if (epoch === this.#epoch && this.#state === 'open') return undefined;
    if (this.#state === 'closed') return this.#closedErrorOrDefault();
    // Delivery tags are per connection [PROTO §5.5]: never send this one on another.
    return new BrokerError(
      'E_CONNECTION_CLOSED',
      `cannot ${what} delivery ${deliveryTag}: the connection it came on was lost; the broker gives the message back to its queue and delivers it again`,
    );
  }

  /**
   * What messages of session `epoch` settle and extend through: one object per session and settle
   * mode, not two closures per message. `confirmSettles` as the consumer's option says.
   */
  #messagePort(epoch: number, confirmSettles: boolean): DeliveryPort {
    if (this.#ports?.epoch !== epoch) {
      const extend = async (deliveryTag: number, ms: number | undefined): Promise<number> => {
        const stale = this.#staleDelivery(epoch, deliveryTag, 'extend');
        if (stale !== undefined) throw stale;
        const frame: FrameOf<'extend'> = { type: 'extend', ref: this.#nextRef++, deliveryTags: [deliveryTag] };
        if (ms !== undefined) frame.ms = ms;
        const ok = await this.#request(frame as Frame & { ref: number });
        return ok.leaseExpiresAt ?? Infinity;
      };
      this.#ports = {
        epoch,
        confirmed: { settle: (request) => this.#queueSettle(request, epoch), extend },
        unconfirmed: {
          settle: (request) => {
            request.unconfirmed = true;
            this.#queueSettle(request, epoch);
          },
          extend,
        },
      };
    }
    return confirmSettles ? this.#ports.confirmed : this.#ports.unconfirmed;
  }

  onTaskRevoked(listener: (event: { taskId: string; terminate: boolean }) => void): () => void {
    this.#revokeListeners.add(listener);
    return () => this.#revokeListeners.delete(listener);
  }

  #onDeliver(frame: FrameOf<'deliver'>): void {
    this.#backlogHinted = frame.backlog === true;
    this.#unsettled++;
    const epoch = this.#epoch;
    const consumer = this.#consumers.get(frame.consumerTag);
    const message = createMessage(frame, this.#messagePort(epoch, consumer?.confirmSettles ?? true));
    // Only task messages can be revoked: other deliveries pay one header lookup.
    if (typeof frame.headers?.[TASK_ID_HEADER] === 'string') this.#taskDeliveries.set(frame.deliveryTag, message);
    if (consumer === undefined) {
      // Cancelled while this delivery was on the wire: hand it back.
      void message.nack({ requeue: true }).catch(() => {});
      return;
    }
    if (consumer.autoSettle) void this.#runHandler(consumer.handler, message);
    else this.#runReceiver(consumer.handler, message);
  }

  /** `autoSettle: false`: hand the message over; settling is the receiver's business. */
  #runReceiver(handler: MessageHandler, message: Message): void {
    const report = (err: unknown): void => this.#emitError(handlerError(err));
    try {
      const returned = handler(message);
      if (returned instanceof Promise) returned.catch(report);
    } catch (err) {
      report(err);
    }
  }

  async #runHandler(handler: MessageHandler, message: Message): Promise<void> {
    try {
      await handler(message);
      if (!message.settled) await message.ack();
    } catch (err) {
      if (!message.settled) {
        await message.nack({ requeue: true }).catch(() => {});
      }
      // Unknown or lost deliveries are redelivered by the broker: nothing to report.
      if (!(err instanceof BrokerError && (err.code === 'E_DELIVERY_UNKNOWN' || err.code === 'E_CONNECTION_CLOSED'))) {
        this.#emitError(handlerError(err));
      }
    }
  }

  // ---- outbound ------------------------------------------------------------

  #send(frame: Frame): void {
    const { type, body, ...fields } = frame as Frame & { body?: Uint8Array };
    this.#sendJson(type, JSON.stringify(fields), body, type !== 'result.put' || (frame as FrameOf<'result.put'>).noReply !== true);
  }

  /**
   * Writes one frame from its JSON header (without `type` and `body`) and body, and sends what
   * the writer holds once it is a chunk. `actedOnArrival`: the broker acts on the frame when it
   * reads it (all but task states sent with `noReply`).
   */
  #sendJson(type: FrameType, json: string, body: Uint8Array | undefined, actedOnArrival: boolean): void {
    this.#beforeFrame(body?.length ?? 0);
    this.#writer.pushJson(type, json, body);
    this.#afterFrame(actedOnArrival);
  }

  /** Makes room for a frame with a body of `bodyLength` bytes in the message being written. */
  #beforeFrame(bodyLength: number): void {
    if (this.#transport === undefined) {
      throw this.#state === 'closed' ? this.#closedErrorOrDefault() : new BrokerError('E_CONNECTION_CLOSED', 'not connected to the broker');
    }
    // Never let one WebSocket message outgrow the broker's limit: an upper bound of this frame's size.
    const bound = bodyLength + this.#maxHeaderBytes + FRAME_OVERHEAD_BYTES;
    if (this.#writer.count > 0 && this.#writer.length + bound > this.#maxFrameBytes) this.#flush();
  }

  /** Counts a frame just written and sends, or schedules, the message. */
  #afterFrame(actedOnArrival: boolean): void {
    if (actedOnArrival) this.#framesActedOnArrival++;
    if (this.#writer.length >= SEND_CHUNK_BYTES) this.#flush();
    else this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#options.writeBatching === 'turn' && this.#chunkFull()) {
      this.#flush();
      return;
    }
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    if (this.#options.writeBatching === 'turn') afterTurn(this.#flushNow);
    else queueMicrotask(this.#flushNow);
  }

  /** True when a `turn` message holds enough to be sent before the turn ends. */
  #chunkFull(): boolean {
    const settles = this.#settleQueue.length;
    if (this.#writer.count + settles >= TURN_CHUNK_FRAMES) return true;
    if (settles < TURN_CHUNK_MIN_SETTLES || this.#framesActedOnArrival > 0) return false;
    if (this.#settleChunk === 0) {
      let prefetch = 0;
      for (const consumer of this.#consumers.values()) prefetch = Math.max(prefetch, consumer.prefetch);
      this.#settleChunk = Math.max(TURN_CHUNK_MIN_SETTLES, Math.ceil(prefetch / 2));
    }
    return settles >= this.#settleChunk;
  }

  // Bound once: scheduled for every batch of frames.
  readonly #flushNow = (): void => this.#flush();

  #flush(): void {
    this.#flushQueued = false;
    this.#settleChunk = 0;
    if (this.#transport === undefined) return;
    const settles = this.#settleQueue.length > 0;
    this.#flushSettles();
    if (this.#writer.count === 0) return;
    this.#lastSentAt = Date.now();
    this.#transport.send(this.#takeWritten());
    // The broker answers these settles with the deliveries it held back, and the app has nothing
    // else delivered to work on: wait for them awake.
    if (settles && this.#backlogHinted && this.#unsettled === 0) pollForBacklog(this.#options.busyPollUs);
  }

  /** Empties the writer, and with it the count of what it held. */
  #takeWritten(): Uint8Array {
    this.#framesActedOnArrival = 0;
    return this.#writer.take();
  }

  /**
   * Sends a request now, or once the session is back; rejects with `E_TIMEOUT` after `timeoutMs`
   * (default `requestTimeoutMs`) either way. Resolves with the reply frame, `ok` unless told otherwise.
   */
  #request<T extends ReplyType = 'ok'>(frame: Frame & { ref: number }, timeoutMs = this.#options.requestTimeoutMs): Promise<FrameOf<T>> {
    if (this.#state === 'closed') return Promise.reject(this.#closedErrorOrDefault());
    return new Promise<FrameOf<T>>((resolveReply, reject) => {
      const resolve = resolveReply as (reply: FrameOf<'ok'> | FrameOf<'result'>) => void;
      const entry: RequestEntry = {
        resolve,
        reject,
        deadlineAt: Date.now() + timeoutMs,
        onTimeout: () => {
          const held = this.#heldRequests.has(frame.ref);
          return new BrokerError('E_TIMEOUT', `${frame.type} got no reply within ${timeoutMs} ms${held ? ' (the connection was not back in time)' : ''}`);
        },
      };
      if (this.#state === 'open') this.#sendRequest(frame, entry);
      else this.#heldRequests.set(frame.ref, { frame, entry });
      this.#armRequestSweep();
    });
  }

  /** One interval checks every pending request's deadline, while any is pending: no timer per request. */
  #armRequestSweep(): void {
    if (this.#requestSweep !== undefined) return;
    this.#requestSweep = setInterval(() => {
      const now = Date.now();
      for (const [ref, entry] of this.#requests) {
        if (entry.deadlineAt > now) continue;
        this.#requests.delete(ref);
        entry.reject(entry.onTimeout());
      }
      for (const [ref, { entry }] of this.#heldRequests) {
        if (entry.deadlineAt > now) continue;
        const error = entry.onTimeout();
        this.#heldRequests.delete(ref);
        entry.reject(error);
      }
      if (this.#requests.size === 0 && this.#heldRequests.size === 0) {
        clearInterval(this.#requestSweep);
        this.#requestSweep = undefined;
      }
    }, REQUEST_SWEEP_MS);
  }

  #sendRequest(frame: Frame & { ref: number }, entry: RequestEntry): void {
    this.#requests.set(frame.ref, entry);
    try {
      this.#send(frame);
    } catch (err) {
      this.#requests.delete(frame.ref);
      entry.reject(err as Error);
    }
  }

  #queueSettle(request: SettleRequest, epoch: number): void {
    if (epoch === this.#epoch) this.#taskDeliveries.delete(request.deliveryTag);
    const stale = this.#staleDelivery(epoch, request.deliveryTag, request.action);
    if (stale !== undefined) {
      request.reject(stale);
      return;
    }
    this.#unsettled--;
    this.#settleQueue.push(request);
    this.#scheduleFlush();
  }

  /**
   * Turns the settles of this turn into one frame per kind. A confirmed one gets a ref, so the broker
   * answers it; an unconfirmed one goes without, and its promises resolve as it is written.
   */
  #flushSettles(): void {
    if (this.#settleQueue.length === 0) return;
    const requests = this.#settleQueue.splice(0);
    const groups = new Map<string, SettleRequest[]>();
    for (const r of requests) {
      const key = `${r.action}|${r.requeue ?? ''}|${r.delayMs ?? ''}|${r.reason ?? ''}|${r.unconfirmed === true}`;
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
      const deliveryTags = group.map((r) => r.deliveryTag);
      const frame: FrameOf<'ack'> | FrameOf<'nack'> | FrameOf<'reject'> =
        first.action === 'ack'
          ? { type: 'ack', deliveryTags }
          : first.action === 'nack'
            ? {
                type: 'nack',
                deliveryTags,
                requeue: first.requeue ?? true,
                ...(first.delayMs === undefined ? {} : { delayMs: first.delayMs }),
                ...(first.reason === undefined ? {} : { reason: first.reason }),
              }
            : { type: 'reject', deliveryTags, ...(first.reason === undefined ? {} : { reason: first.reason }) };
      if (first.unconfirmed === true) {
        this.#writer.push(frame);
        for (const r of group) r.resolve();
        continue;
      }
      const ref = (frame.ref = this.#nextRef++);
      const timeoutMs = this.#options.requestTimeoutMs;
      this.#armRequestSweep();
      this.#requests.set(ref, {
        deadlineAt: Date.now() + timeoutMs,
        onTimeout: () => new BrokerError('E_TIMEOUT', `${first.action} got no reply within ${timeoutMs} ms`),
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
    return this.#publishes.size;
  }

  get state(): ConnectionState {
    return this.#state === 'connecting' ? 'reconnecting' : this.#state;
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
    // The deadline counts from the call: waiting for capacity is part of it.
    const deadlineAt = Date.now() + this.#options.publishDeadlineMs;
    if (this.#state === 'closed') throw this.#closedErrorOrDefault();
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
    if (this.#publishes.size + this.#reservedSlots >= this.#options.maxUnconfirmed || this.#capacityWaiters.length > 0) {
      // Bounded memory: wait, in arrival order, for a slot freed by a confirm, a refusal or a deadline.
      await new Promise<void>((resolve) => this.#capacityWaiters.push(resolve));
      this.#reservedSlots--;
      if (this.#isClosed()) throw this.#closedErrorOrDefault();
      if (Date.now() >= deadlineAt) {
        this.#releaseCapacity(); // the slot this call was woken for goes to the next waiter
        throw new BrokerError(
          'E_TIMEOUT',
          `publish to "${queue}" waited for capacity (maxUnconfirmed ${this.#options.maxUnconfirmed}) beyond publishDeadlineMs (${this.#options.publishDeadlineMs} ms); it was not sent`,
        );
      }
    }
    // Every publish has an id, so the broker can tell a resend after a lost confirm [PROTO §5.15].
    const frame: FrameOf<'publish'> = { type: 'publish', seq: 0, queue, body: encoded.bytes, messageId: options.messageId ?? newMessageId() };
    if (encoded.headers !== undefined) frame.headers = encoded.headers;
    if (options.priority !== undefined) frame.priority = options.priority;
    if (options.delayMs !== undefined) frame.delayMs = options.delayMs;
    if (options.notBefore !== undefined) frame.notBefore = options.notBefore instanceof Date ? options.notBefore.getTime() : options.notBefore;
    if (options.ttlMs !== undefined) frame.ttlMs = options.ttlMs;
    if (options.resultTtlMs !== undefined) frame.resultTtlMs = options.resultTtlMs;
    return new Promise<PublishResult>((resolve, reject) => {
      const entry: PublishEntry = { frame, deadlineAt, resolve, reject };
      this.#publishes.add(entry);
      if (this.#state === 'open') this.#sendPublish(entry);
      this.#armDeadline();
    });
  }

  #sendPublish(entry: PublishEntry): void {
    // A new seq on every send: seqs must increase on each connection [PROTO §5.4].
    entry.frame.seq = this.#nextSeq++;
    this.#bySeq.set(entry.frame.seq, entry);
    const { frame } = entry;
    if (this.#compact) {
      this.#beforeFrame(frame.body.length);
      if (this.#writer.pushCompactPublish(frame, frame.headers === undefined ? null : JSON.stringify(frame.headers))) {
        this.#afterFrame(true);
        return;
      }
    }
    // JSON: the session has no compact headers, or the frame is one they cannot carry, which the
    // broker then answers by its usual rules.
    this.#sendJson('publish', publishHeader(frame), frame.body, true);
  }

  /** Keeps one timer, due when the oldest publish's deadline passes. */
  #armDeadline(): void {
    if (this.#deadlineTimer !== undefined || this.#state === 'closed') return;
    const oldest = this.#publishes.values().next();
    if (oldest.done === true || oldest.value.deadlineAt === Infinity) return;
    const delayMs = Math.min(Math.max(0, oldest.value.deadlineAt - Date.now()), MAX_TIMER_MS);
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      this.#expirePublishes();
      this.#armDeadline();
    }, delayMs);
  }

  /** Rejects the publishes whose deadline passed. Deadlines grow in publish order, so only the oldest can be due. */
  #expirePublishes(): void {
    const now = Date.now();
    let expired = 0;
    for (const entry of this.#publishes) {
      if (entry.deadlineAt > now) break;
      this.#publishes.delete(entry);
      if (this.#bySeq.get(entry.frame.seq) === entry) this.#bySeq.delete(entry.frame.seq);
      expired++;
      entry.reject(
        new BrokerError(
          'E_TIMEOUT',
          `publish to "${entry.frame.queue}" (messageId ${entry.frame.messageId}) was not confirmed within publishDeadlineMs (${this.#options.publishDeadlineMs} ms)` +
            `${this.#state === 'open' ? '' : ', the broker being unreachable'}; it may or may not have been stored. ` +
            `Publishing it again with the same messageId is deduplicated within the queue's dedup window`,
        ),
      );
    }
    if (expired > 0) this.#releaseCapacity();
  }

  #releaseCapacity(): void {
    if (this.#publishes.size === 0) {
      // Nothing left to time out.
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
    }
    const free = this.#options.maxUnconfirmed - this.#publishes.size - this.#reservedSlots;
    if (free <= 0 || this.#capacityWaiters.length === 0) return;
    const woken = this.#capacityWaiters.splice(0, free);
    this.#reservedSlots += woken.length;
    for (const wake of woken) wake();
  }

  async redrive(queue: string, options: { to?: string; limit?: number } = {}): Promise<number> {
    const ok = await this.#request({ type: 'queue.redrive', ref: this.#nextRef++, queue, ...options });
    return ok.messages ?? 0;
  }

  // ---- task results [PROTO §5.18] ------------------------------------------

  async putResult(taskId: string, state: StoredTaskState, options: { payload?: Uint8Array; ttlMs: number }): Promise<{ stored: boolean }> {
    const payload = this.#resultPayload(options.payload);
    // Task id, state and ttlMs are checked by the broker, which names the field (E_FRAME_INVALID).
    const ok = await this.#request({ type: 'result.put', ref: this.#nextRef++, taskId, state, ttlMs: options.ttlMs, body: payload });
    return { stored: ok.stored ?? false };
  }

  sendResult(taskId: string, state: StoredTaskState, options: { payload?: Uint8Array; ttlMs: number }): void {
    const payload = this.#resultPayload(options.payload);
    if (this.#state === 'closed') throw this.#closedErrorOrDefault();
    if (this.#state !== 'open') {
      this.putResult(taskId, state, { payload, ttlMs: options.ttlMs }).catch((err: unknown) => this.#emitError(err as BrokerError));
      return;
    }
    // The ref is not tracked: an `error` naming it finds no request and goes to onError.
    this.#send({ type: 'result.put', ref: this.#nextRef++, taskId, state, ttlMs: options.ttlMs, noReply: true, body: payload });
  }

  #resultPayload(payload: Uint8Array = EMPTY): Uint8Array {
    if (!(payload instanceof Uint8Array)) throw invalid('"payload" must be a Uint8Array');
    // Checked here: an oversized frame would make the broker close the whole connection [PROTO §7].
    if (payload.length > this.#maxBodyBytes) {
      throw new BrokerError('E_MESSAGE_TOO_LARGE', `result payload is ${payload.length} bytes, the broker's limit is ${this.#maxBodyBytes}`);
    }
    return payload;
  }

  async getResult(taskId: string, options: { waitMs?: number } = {}): Promise<TaskResult> {
    const waitMs = options.waitMs ?? 0;
    if (!(Number.isInteger(waitMs) && waitMs >= 0 && waitMs <= MAX_RESULT_WAIT_MS)) {
      throw invalid(`"waitMs" must be an integer from 0 to ${MAX_RESULT_WAIT_MS}, got ${String(waitMs)}`);
    }
    const startedAt = Date.now();
    const deadline = startedAt + waitMs + this.#options.requestTimeoutMs;
    for (;;) {
      const now = Date.now();
      const frame: FrameOf<'result.get'> = { type: 'result.get', ref: this.#nextRef++, taskId };
      const waitLeft = Math.max(0, startedAt + waitMs - now);
      if (waitLeft > 0) frame.waitMs = waitLeft;
      try {
        const reply = await this.#request<'result'>(frame, Math.max(1, deadline - now));
        const result: TaskResult = { taskId: reply.taskId, state: reply.state, payload: reply.body.length === 0 ? null : reply.body };
        if (reply.updatedAt !== undefined) result.updatedAt = reply.updatedAt;
        if (reply.expiresAt !== undefined) result.expiresAt = reply.expiresAt;
        return result;
      } catch (err) {
        // Lost before the reply: a read is safe to send again on the next session, within the deadline.
        const lost = err instanceof BrokerError && err.code === 'E_CONNECTION_CLOSED' && this.#state === 'reconnecting';
        if (!lost || Date.now() >= deadline) throw err;
      }
    }
  }

  async revoke(taskId: string, options: { ttlMs?: number; terminate?: boolean } = {}): Promise<void> {
    const frame: FrameOf<'task.revoke'> = { type: 'task.revoke', ref: this.#nextRef++, taskId };
    if (options.ttlMs !== undefined) frame.ttlMs = options.ttlMs;
    if (options.terminate !== undefined) frame.terminate = options.terminate;
    await this.#request(frame);
  }

  async consume(queue: string, handler: MessageHandler, options: ConsumeOptions = {}): Promise<Subscription> {
    const consumerTag = options.consumerTag ?? `c${this.#nextConsumer++}`;
    const prefetch = options.prefetch ?? DEFAULTS.prefetch;
    if (this.#consumers.has(consumerTag)) {
      throw new BrokerError('E_CONSUMER_TAG_IN_USE', `consumer tag ${consumerTag} is already in use on this connection`);
    }
    const consumer: ConsumerEntry = {
      queue,
      handler,
      prefetch,
      active: false,
      onRevoked: options.onRevoked,
      autoSettle: options.autoSettle ?? true,
      confirmSettles: options.confirmSettles ?? true,
    };
    this.#consumers.set(consumerTag, consumer);
    try {
      await this.#request({ type: 'consume', ref: this.#nextRef++, queue, consumerTag, prefetch });
    } catch (err) {
      if (this.#consumers.get(consumerTag) === consumer) this.#consumers.delete(consumerTag);
      throw err;
    }
    consumer.active = true;
    const current = (): boolean => this.#consumers.get(consumerTag) === consumer;
    return {
      consumerTag,
      queue,
      cancel: async () => {
        if (!current()) return;
        // While reconnecting the broker holds no consumer of ours: just don't resume it.
        if (this.#state === 'reconnecting') {
          this.#consumers.delete(consumerTag);
          return;
        }
        try {
          await this.#request({ type: 'cancel', ref: this.#nextRef++, consumerTag });
        } catch (err) {
          // A lost connection took the broker's consumer with it.
          if (!(err instanceof BrokerError && err.code === 'E_CONNECTION_CLOSED')) throw err;
        }
        if (current()) this.#consumers.delete(consumerTag);
      },
      setPrefetch: async (next) => {
        if (this.#state === 'reconnecting' && current()) {
          consumer.prefetch = next; // used when it is resumed
          return;
        }
        await this.#request({ type: 'consumer.update', ref: this.#nextRef++, consumerTag, prefetch: next });
        consumer.prefetch = next;
      },
      pull: async (count = 1) => {
        await this.#request({ type: 'pull', ref: this.#nextRef++, consumerTag, count });
      },
    };
  }

  // ---- lifecycle -----------------------------------------------------------

  #startHeartbeat(): void {
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    if (this.#heartbeatMs === 0) return;
    this.#heartbeatTimer = setInterval(() => {
      if (this.#transport === undefined) return;
      const now = Date.now();
      if (now - this.#lastReceivedAt > 2 * this.#heartbeatMs) {
        this.#lose(new BrokerError('E_HEARTBEAT_TIMEOUT', `nothing received from the broker for ${now - this.#lastReceivedAt} ms`));
        return;
      }
      if (now - this.#lastSentAt >= this.#heartbeatMs / 2) this.#send({ type: 'heartbeat' });
    }, Math.max(50, this.#heartbeatMs / 2));
    // The heartbeat alone must not keep a process alive.
    (this.#heartbeatTimer as { unref?: () => void }).unref?.();
  }

  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #closedErrorOrDefault(): BrokerError {
    return this.#closedError ?? new BrokerError('E_CONNECTION_CLOSED', 'connection is closed');
  }

  #onTransportClose(epoch: number, code: number, reason: string): void {
    if (epoch !== this.#epoch) return;
    const error = code === 1000 ? new BrokerError('E_CONNECTION_CLOSED', 'connection closed (code 1000)') : closeError(code, reason);
    if (this.#welcome !== undefined) {
      // During the handshake: #openSession fails with it.
      const welcome = this.#welcome;
      this.#welcome = undefined;
      welcome.reject(error);
      return;
    }
    this.#lose(error);
  }

  /** Drops the current session's socket and per-session state (not publishes or consumers). */
  #endSession(): void {
    this.#epoch++;
    this.#taskDeliveries.clear();
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    const transport = this.#transport;
    this.#transport = undefined;
    if (this.#writer.count > 0) this.#takeWritten();
    try {
      transport?.close(1000, '');
    } catch {
      // already closing
    }
  }

  /** The open session is gone: reconnect if we may, else close for good. */
  #lose(error: BrokerError): void {
    if (this.#state !== 'open') return;
    if (this.#closing !== undefined) {
      this.#shutdown(new BrokerError('E_CONNECTION_CLOSED', 'connection was closed by the client'), true);
      return;
    }
    // A non-retryable close (a frame the broker could not take, a refused handshake) would repeat.
    if (this.#options.reconnect === undefined || !error.retryable) {
      this.#shutdown(error);
      return;
    }
    this.#endSession();
    this.#state = 'reconnecting';
    const lost = new BrokerError('E_CONNECTION_CLOSED', `connection to the broker lost before the reply came (${error.message}); it may or may not have been carried out`, {
      cause: error,
    });
    for (const req of this.#requests.values()) req.reject(lost);
    this.#requests.clear();
    for (const r of this.#settleQueue.splice(0)) r.reject(lost);
    // Kept in #publishes, they are sent again, with new seqs, once reconnected.
    this.#bySeq.clear();
    this.#emitStatus({ type: 'disconnected', error });
    void this.#reconnectLoop(error);
  }

  async #reconnectLoop(cause: BrokerError): Promise<void> {
    const policy = this.#options.reconnect!;
    let lastError: Error = cause;
    for (let attempt = 1; attempt <= policy.maxAttempts; attempt++) {
      // Exponential backoff with full jitter.
      const capMs = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(attempt - 1, 40));
      const delayMs = Math.floor(Math.random() * capMs);
      this.#attempt = attempt;
      this.#emitStatus({ type: 'reconnecting', attempt, delayMs, error: lastError });
      await this.#sleep(delayMs);
      if (this.#state !== 'reconnecting') return;
      try {
        await this.#openSession();
        return; // the welcome resumed the session
      } catch (err) {
        if (this.#state !== 'reconnecting') return;
        lastError = err instanceof Error ? err : new Error(String(err));
        // A refused handshake (bad token, protocol version) does not get better by retrying [PROTO §4.1].
        if (err instanceof BrokerError && !err.retryable) {
          this.#shutdown(err);
          return;
        }
      }
    }
    this.#shutdown(
      new BrokerError('E_CONNECTION_CLOSED', `gave up reconnecting to ${this.#url} after ${policy.maxAttempts} failed attempts; last error: ${lastError.message}`, {
        cause: lastError,
      }),
    );
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeBackoff = resolve;
      // Not unref'd: like an open socket, a connection that is reconnecting keeps the process alive.
      this.#backoffTimer = setTimeout(() => {
        this.#backoffTimer = undefined;
        this.#wakeBackoff = undefined;
        resolve();
      }, ms);
    });
  }

  /** After a reconnect: consumers again, then held publishes in order, then requests made meanwhile. */
  #resume(): void {
    // The broker removed our consumers with the old connection [PROTO §5.9]: consume again, same tags.
    for (const [consumerTag, consumer] of this.#consumers) {
      if (!consumer.active) continue;
      this.#request({ type: 'consume', ref: this.#nextRef++, queue: consumer.queue, consumerTag, prefetch: consumer.prefetch }).catch((err: unknown) => {
        if (this.#state === 'closed' || this.#consumers.get(consumerTag) !== consumer) return;
        // Lost again or no answer: tried again with the next session.
        if (err instanceof BrokerError && (err.code === 'E_CONNECTION_CLOSED' || err.code === 'E_TIMEOUT')) return;
        this.#consumers.delete(consumerTag);
        const code = err instanceof BrokerError ? err.code : 'E_INTERNAL';
        this.#emitError(
          new BrokerError(code, `consumer ${consumerTag} of queue "${consumer.queue}" could not be resumed after reconnecting: ${(err as Error)?.message ?? String(err)}`, {
            cause: err,
          }),
        );
      });
    }
    // Outcome unknown [PROTO §4.5]: publish again with the same messageId; dedup keeps one [PROTO §5.15].
    for (const entry of this.#publishes) this.#sendPublish(entry);
    for (const [ref, held] of this.#heldRequests) {
      this.#heldRequests.delete(ref);
      this.#sendRequest(held.frame, held.entry);
    }
  }

  /** Closes for good and settles everything pending with `error`. */
  #shutdown(error: BrokerError, byUser = false): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closedError = error;
    this.#endSession();
    clearTimeout(this.#backoffTimer);
    this.#backoffTimer = undefined;
    this.#wakeBackoff?.();
    this.#wakeBackoff = undefined;
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    const welcome = this.#welcome;
    this.#welcome = undefined;
    welcome?.reject(error);
    for (const req of this.#requests.values()) req.reject(error);
    this.#requests.clear();
    for (const { entry } of this.#heldRequests.values()) entry.reject(error);
    this.#heldRequests.clear();
    clearInterval(this.#requestSweep);
    this.#requestSweep = undefined;
    for (const r of this.#settleQueue.splice(0)) r.reject(error);
    if (this.#publishes.size > 0) {
      const unconfirmed = byUser
        ? new BrokerError('E_CONNECTION_CLOSED', 'connection was closed by the client before the broker confirmed this publish; it may or may not have been stored')
        : new BrokerError(error.code, `${error.message}; the publish was not confirmed, so it may or may not have been stored`, { cause: error });
      for (const entry of this.#publishes) entry.reject(unconfirmed);
      this.#publishes.clear();
      this.#bySeq.clear();
    }
    const waiting = this.#capacityWaiters.splice(0);
    this.#reservedSlots += waiting.length;
    for (const wake of waiting) wake(); // each then fails with the close error
    this.#consumers.clear();
    const reason = byUser ? undefined : error;
    this.#resolveClosed(reason);
    this.#emitStatus({ type: 'closed', error: reason });
  }

  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const transport = this.#transport;
    if (this.#state === 'open' && transport !== undefined) {
      this.#flush();
      transport.close(1000, '');
      // The socket's close event settles everything; don't wait on a peer that is gone.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.closed, new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    this.#shutdown(new BrokerError('E_CONNECTION_CLOSED', 'connection was closed by the client'), true);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Connects to a broker and completes the handshake: one attempt, not retried.
 * Rejects with `E_AUTH_FAILED`, `E_PROTOCOL_VERSION`, `E_TIMEOUT` (no welcome within
 * `connectTimeoutMs`), a socket error, or `E_INVALID_ARGUMENT` for bad options.
 * Once connected, the connection reconnects by itself (see {@link ConnectOptions.reconnect}).
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<Connection> {
  const conn = new ClientConnection(url, resolveOptions(options));
  await conn.open();
  return conn;
}
