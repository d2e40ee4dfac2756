/**
 * Task ids: UUID version 7 (RFC 9562 §5.7), 48 bits of Unix time in milliseconds followed by 74
 * random bits (with the version and variant bits, 128 in all). They are as unique as random
 * (version 4) ids, and ids made close in time sort close together. That matters to the broker:
 * its results table is a b-tree keyed by task id, so the states of tasks sent together land in a
 * few neighbouring pages instead of one page per task, and each commit writes that much less.
 */

import { formatUuid } from '../uuid.js';

/** Random bytes drawn 1 KiB at a time: one Web Crypto call per 64 ids. */
const pool = new Uint8Array(1024);
let poolAt = pool.length;

function randomBytes(into: Uint8Array, from: number, count: number): void {
  if (poolAt + count > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  into.set(pool.subarray(poolAt, poolAt + count), from);
  poolAt += count;
}

const bytes = new Uint8Array(16);

/** A new task id: a lowercase, hyphenated UUID v7 for the time `nowMs` (default now). */
export function newTaskId(nowMs: number = Date.now()): string {
  // 48-bit big-endian milliseconds. `x & 0xff` keeps the low 8 bits even above 2^32 (ToInt32 wraps).
  bytes[0] = (nowMs / 2 ** 40) & 0xff;
  bytes[1] = (nowMs / 2 ** 32) & 0xff;
  bytes[2] = (nowMs / 2 ** 24) & 0xff;
  bytes[3] = (nowMs / 2 ** 16) & 0xff;
  bytes[4] = (nowMs / 2 ** 8) & 0xff;
  bytes[5] = nowMs & 0xff;
  randomBytes(bytes, 6, 10);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70; // version 7
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // variant 10
  return formatUuid(bytes);
}
