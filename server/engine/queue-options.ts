import { BrokerError, type QueueOptions } from '../../protocol/index.js';
import { parseRate, type Rate } from './rate-limiter.js';

/** What a full queue does with a new publish. */
export type Overflow = 'reject-publish' | 'drop-oldest';

/** Queue options with every default filled in. */
export interface ResolvedQueueOptions {
  /** Default 30 minutes: how long a delivery may stay unacked before it returns to ready. */
  visibilityTimeoutMs: number;
  /** Default 0 (no limit): deliveries after which an unacked message is dead-lettered. */
  maxDeliveries: number;
  /** Default none: rejected, expired and dead messages are dropped. */
  deadLetterQueue: string | null;
  /** Default 0 (none): time to live of a message that sets no `ttlMs`. */
  messageTtlMs: number;
  /** Default 0 (no limit): most messages held (ready, delayed and unacked). */
  maxLength: number;
  /** Default 0 (no limit): most body bytes held. */
  maxBytes: number;
  /** Default `reject-publish`: a full queue nacks the publish (`E_QUEUE_FULL`, with `retryAfterMs`). */
  overflow: Overflow;
  /** Default 5 minutes: how long a `messageId` is remembered; 0 turns deduplication off. */
  dedupWindowMs: number;
  /** Default none: deliveries allowed per interval across all consumers, e.g. `100/s`. */
  rateLimit: string | null;
  /** Default none: apply `rateLimit` per value of this header instead of per queue. */
  rateLimitKey: string | null;
}

export const DEFAULT_QUEUE_OPTIONS: Readonly<ResolvedQueueOptions> = Object.freeze({
  visibilityTimeoutMs: 30 * 60 * 1000,
  maxDeliveries: 0,
  deadLetterQueue: null,
  messageTtlMs: 0,
  maxLength: 0,
  maxBytes: 0,
  overflow: 'reject-publish',
  dedupWindowMs: 5 * 60 * 1000,
  rateLimit: null,
  rateLimitKey: null,
});

/**
 * Merges declared options over the defaults and checks the rules the schema
 * cannot: the rate must parse, and a rate key needs a rate.
 */
export function resolveQueueOptions(input: QueueOptions | undefined): Readonly<ResolvedQueueOptions> {
  const o: ResolvedQueueOptions = { ...DEFAULT_QUEUE_OPTIONS };
  for (const [key, value] of Object.entries(input ?? {})) {
    if (value !== undefined && key in o) (o as unknown as Record<string, unknown>)[key] = value;
  }
  if (o.rateLimit !== null) parseRate(o.rateLimit);
  if (o.rateLimitKey !== null && o.rateLimit === null) {
    throw new BrokerError('E_INVALID_ARGUMENT', '"rateLimitKey" needs "rateLimit" too');
  }
  return Object.freeze(o);
}

/** Reads options back from the store, tolerating fields added by later versions. */
export function queueOptionsFromStore(stored: Record<string, unknown>): Readonly<ResolvedQueueOptions> {
  return resolveQueueOptions(stored as QueueOptions);
}

/** The parsed rate limit of a queue, or null. */
export function rateOf(options: ResolvedQueueOptions): Rate | null {
  return options.rateLimit === null ? null : parseRate(options.rateLimit);
}

/** Names the first option whose value differs, for a clear mismatch error. */
export function firstDifference(a: ResolvedQueueOptions, b: ResolvedQueueOptions): string | undefined {
  for (const key of Object.keys(a) as Array<keyof ResolvedQueueOptions>) {
    if (a[key] !== b[key]) return `${key}: existing ${JSON.stringify(a[key])}, declared ${JSON.stringify(b[key])}`;
  }
  return undefined;
}
