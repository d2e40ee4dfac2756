import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Durability } from '../storage/index.js';
import { DEFAULT_MAX_RESULT_WAITERS, DEFAULT_RESULT_SWEEP_MS, DEFAULT_RESULT_TTL_MS } from './engine/engine.js';

/** Options of {@link startBroker}. Every limit has a finite default. */
export interface BrokerOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host: string;
  /** TCP port for HTTP and WebSocket; 0 picks a free one. Default 7700. */
  port: number;
  /** Folder of the SQLite file `berth.db`; `null` keeps everything in memory (tests only). Default `./data`. */
  dataDir: string | null;
  /** `full` (default): fsync before every confirm. `normal`: survives kill -9, not power loss. */
  durability: Durability;
  /** When set, clients must send this token in `hello`. Default none. */
  token: string | null;
  /** Heartbeat interval; a peer silent for 2 × this is dropped. Default 2500 ms; 0 disables. */
  heartbeatMs: number;
  /** Largest message body. Default 1 MiB. */
  maxBodyBytes: number;
  /** Largest JSON header of one frame. Default 64 KiB. */
  maxHeaderBytes: number;
  /** Largest WebSocket message (one or more frames). Default 2 MiB. */
  maxFrameBytes: number;
  /** Largest WebSocket message before the handshake completes. Default 64 KiB. */
  maxHandshakeBytes: number;
  /** Connections accepted at once; more are refused at upgrade. Default 10,000. */
  maxConnections: number;
  /** Ready messages kept in memory per queue and priority; the rest stay on disk. Default 1024. */
  laneBufferSize: number;
  /** How long a revocation and its REVOKED row last when `task.revoke` names no `ttlMs`. Default 24 h. */
  resultTtlMs: number;
  /** Interval of the sweep that deletes expired task results and forgets expired revocations. Default 60,000 ms. */
  resultSweepMs: number;
  /** `result.get` requests with `waitMs` that may wait at once per connection. Default 1,000. */
  maxResultWaiters: number;
  /**
   * After a connection does work, the event loop polls its sockets instead of sleeping for
   * this long, so a reply that comes back quickly is read without a kernel wake-up. Costs
   * up to one core while traffic arrives less than this apart. Default 100 µs; 0 disables.
   */
  busyPollUs: number;
  /** pino logger; default: JSON to stdout at `info`. */
  logger: Logger | null;
  /** Milliseconds since epoch. Default `Date.now`. */
  clock: () => number;
}

export const DEFAULTS: Readonly<BrokerOptions> = Object.freeze({
  host: '127.0.0.1',
  port: 7700,
  dataDir: './data',
  durability: 'full',
  token: null,
  heartbeatMs: 2500,
  maxBodyBytes: 1024 * 1024,
  maxHeaderBytes: 64 * 1024,
  maxFrameBytes: 2 * 1024 * 1024,
  maxHandshakeBytes: 64 * 1024,
  maxConnections: 10_000,
  laneBufferSize: 1024,
  resultTtlMs: DEFAULT_RESULT_TTL_MS,
  resultSweepMs: DEFAULT_RESULT_SWEEP_MS,
  maxResultWaiters: DEFAULT_MAX_RESULT_WAITERS,
  busyPollUs: 100,
  logger: null,
  clock: Date.now,
});

function positiveInt(name: string, value: number, min = 1): void {
  if (!Number.isSafeInteger(value) || value < min) throw new TypeError(`"${name}" must be an integer ≥ ${min}, got ${String(value)}`);
}

/** Merges `input` over {@link DEFAULTS}, checks every field and cross-field rule, and freezes. */
export function resolveOptions(input: Partial<BrokerOptions> = {}): Readonly<BrokerOptions> {
  const o: BrokerOptions = { ...DEFAULTS };
  for (const [key, value] of Object.entries(input)) if (value !== undefined) (o as unknown as Record<string, unknown>)[key] = value;
  positiveInt('port', o.port, 0);
  if (o.port > 65_535) throw new TypeError(`"port" must be ≤ 65535, got ${o.port}`);
  if (o.durability !== 'full' && o.durability !== 'normal') {
    throw new TypeError(`"durability" must be "full" or "normal", got ${JSON.stringify(o.durability)}`);
  }
  positiveInt('heartbeatMs', o.heartbeatMs, 0);
  if (o.heartbeatMs > 0 && o.heartbeatMs < 100) throw new TypeError(`"heartbeatMs" must be 0 (off) or ≥ 100, got ${o.heartbeatMs}`);
  positiveInt('maxBodyBytes', o.maxBodyBytes);
  positiveInt('maxHeaderBytes', o.maxHeaderBytes, 1024);
  positiveInt('maxFrameBytes', o.maxFrameBytes);
  positiveInt('maxHandshakeBytes', o.maxHandshakeBytes, 1024);
  positiveInt('maxConnections', o.maxConnections);
  positiveInt('laneBufferSize', o.laneBufferSize);
  positiveInt('resultTtlMs', o.resultTtlMs);
  if (o.resultTtlMs > 10 * 365 * 24 * 3600 * 1000) throw new TypeError(`"resultTtlMs" must be ≤ 10 years in ms, got ${o.resultTtlMs}`);
  positiveInt('resultSweepMs', o.resultSweepMs, 10);
  if (o.resultSweepMs > 2 ** 31 - 1) throw new TypeError(`"resultSweepMs" must be ≤ ${2 ** 31 - 1}, got ${o.resultSweepMs}`);
  positiveInt('maxResultWaiters', o.maxResultWaiters);
  positiveInt('busyPollUs', o.busyPollUs, 0);
  if (o.busyPollUs > 100_000) throw new TypeError(`"busyPollUs" must be ≤ 100000 (100 ms), got ${o.busyPollUs}`);
  if (o.maxFrameBytes < o.maxBodyBytes + o.maxHeaderBytes + 9) {
    throw new TypeError(`"maxFrameBytes" must be ≥ maxBodyBytes + maxHeaderBytes + 9 (${o.maxBodyBytes + o.maxHeaderBytes + 9}), got ${o.maxFrameBytes}`);
  }
  if (o.token !== null && o.token.length === 0) throw new TypeError('"token" must be a non-empty string or null');
  return Object.freeze(o);
}

/** The SQLite file inside the data folder. */
export function databasePath(dataDir: string): string {
  return join(dataDir, 'berth.db');
}
