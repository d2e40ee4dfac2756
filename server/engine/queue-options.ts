import type { QueueOptions } from '../../protocol/index.js';

/** Queue options with every default filled in. */
export interface ResolvedQueueOptions {
  /** Default 30 minutes: how long a delivery may stay unacked before it returns to ready. */
  visibilityTimeoutMs: number;
  /** Default 0 (no limit): deliveries after which an unacked message is dead-lettered. */
  maxDeliveries: number;
  /** Default none: rejected and dead messages are dropped. */
  deadLetterQueue: string | null;
}

export const DEFAULT_QUEUE_OPTIONS: Readonly<ResolvedQueueOptions> = Object.freeze({
  visibilityTimeoutMs: 30 * 60 * 1000,
  maxDeliveries: 0,
  deadLetterQueue: null,
});

/** Merges declared options over the defaults. Field rules are checked by the protocol schema. */
export function resolveQueueOptions(input: QueueOptions | undefined): Readonly<ResolvedQueueOptions> {
  return Object.freeze({
    visibilityTimeoutMs: input?.visibilityTimeoutMs ?? DEFAULT_QUEUE_OPTIONS.visibilityTimeoutMs,
    maxDeliveries: input?.maxDeliveries ?? DEFAULT_QUEUE_OPTIONS.maxDeliveries,
    deadLetterQueue: input?.deadLetterQueue ?? DEFAULT_QUEUE_OPTIONS.deadLetterQueue,
  });
}

/** Reads options back from the store, tolerating fields added by later versions. */
export function queueOptionsFromStore(stored: Record<string, unknown>): Readonly<ResolvedQueueOptions> {
  return resolveQueueOptions(stored as QueueOptions);
}

/** Names the first option whose value differs, for a clear mismatch error. */
export function firstDifference(a: ResolvedQueueOptions, b: ResolvedQueueOptions): string | undefined {
  for (const key of Object.keys(a) as Array<keyof ResolvedQueueOptions>) {
    if (a[key] !== b[key]) return `${key}: existing ${JSON.stringify(a[key])}, declared ${JSON.stringify(b[key])}`;
  }
  return undefined;
}
