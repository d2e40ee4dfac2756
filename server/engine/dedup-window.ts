import { randomBytes } from 'node:crypto';

/**
 * The (queue, messageId) pairs the broker remembers for deduplication [PROTO §5.15]: up to
 * `capacity` of them, oldest first, each with the time it is remembered until.
 *
 * Why not a `Map<string, number>`: every publish carries an id (the SDK makes one up), so the
 * map allocated a key string, a map entry and an order record per publish. They lived for
 * 50,000 publishes, long enough to be promoted, and then died in the old generation. In a
 * 1M-message fill that garbage set the broker's RSS: 168–208 MB, against 129–131 MB with
 * deduplication off and 139 MB with this window, which also fills 20% faster than the map did.
 *
 * Here the entries live in typed arrays allocated once: a ring of slots in arrival order, and
 * an open-addressing index over it (linear probing, backward-shift deletion, so no tombstones).
 * Ids of up to {@link INLINE_CHARS} UTF-16 units are copied into the slot; longer ones (the
 * protocol allows 200) are kept as strings beside it.
 */
export class DedupWindow {
  readonly #capacity: number;
  /** Per slot: the queue id, or FORGOTTEN once the slot no longer counts. */
  readonly #queueIds: Float64Array;
  readonly #until: Float64Array;
  readonly #hashes: Int32Array;
  readonly #lengths: Int32Array;
  readonly #chars: Uint16Array;
  readonly #longIds: Array<string | undefined>;
  /** Bucket → slot + 1; 0 is an empty bucket. */
  readonly #index: Int32Array;
  readonly #mask: number;
  /** A per-process seed, so ids chosen to collide in one broker do not collide in another. */
  readonly #seed: number;
  /** The oldest slot of the ring. */
  #head = 0;
  /** Slots in the ring, forgotten ones included. */
  #used = 0;
  #size = 0;

  /** `seed` is for tests that need ids whose hashes collide; brokers take a random one. */
  constructor(capacity: number, seed: number = randomBytes(4).readInt32LE(0)) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.#capacity = capacity;
    this.#queueIds = new Float64Array(capacity).fill(FORGOTTEN);
    this.#until = new Float64Array(capacity);
    this.#hashes = new Int32Array(capacity);
    this.#lengths = new Int32Array(capacity);
    this.#chars = new Uint16Array(capacity * INLINE_CHARS);
    this.#longIds = new Array<string | undefined>(capacity);
    // At most half full, so probe runs stay short.
    let buckets = 2;
    while (buckets < capacity * 2) buckets *= 2;
    this.#index = new Int32Array(buckets);
    this.#mask = buckets - 1;
    this.#seed = seed | 0;
  }

  /** How many pairs are remembered, expired ones that were not evicted yet included. */
  get size(): number {
    return this.#size;
  }

  /** The time `messageId` is remembered until for `queueId`, or undefined. */
  get(queueId: number, messageId: string): number | undefined {
    const slot = this.#find(queueId, messageId, hashPair(this.#seed, queueId, messageId));
    return slot < 0 ? undefined : this.#until[slot];
  }

  /**
   * Remembers `messageId` for `queueId` until `until`, replacing an earlier entry for the pair.
   * Then evicts from the oldest end what has expired by `now`, and what is over capacity;
   * eviction stops at the first live entry, so an entry with a long window may keep expired
   * ones behind it until capacity pushes them out (lookups check the time anyway).
   */
  remember(queueId: number, messageId: string, until: number, now: number): void {
    const hash = hashPair(this.#seed, queueId, messageId);
    const existing = this.#find(queueId, messageId, hash);
    if (existing >= 0) this.#forgetSlot(existing);
    if (this.#used === this.#capacity) this.#evictOldest();
    const slot = (this.#head + this.#used) % this.#capacity;
    this.#used++;
    this.#size++;
    this.#queueIds[slot] = queueId;
    this.#until[slot] = until;
    this.#hashes[slot] = hash;
    const length = messageId.length;
    this.#lengths[slot] = length;
    if (length <= INLINE_CHARS) {
      const base = slot * INLINE_CHARS;
      for (let i = 0; i < length; i++) this.#chars[base + i] = messageId.charCodeAt(i);
    } else {
      this.#longIds[slot] = messageId;
    }
    let bucket = hash & this.#mask;
    while (this.#index[bucket] !== 0) bucket = (bucket + 1) & this.#mask;
    this.#index[bucket] = slot + 1;
    while (this.#used > 0) {
      const oldest = this.#head;
      if (this.#queueIds[oldest] !== FORGOTTEN && this.#until[oldest]! > now) break;
      this.#evictOldest();
    }
  }

  /** Forgets one pair, if remembered. */
  forget(queueId: number, messageId: string): void {
    const slot = this.#find(queueId, messageId, hashPair(this.#seed, queueId, messageId));
    if (slot >= 0) this.#forgetSlot(slot);
  }

  /** Forgets every pair of `queueId` (a deleted queue's id may be handed out again). */
  forgetQueue(queueId: number): void {
    for (let i = 0; i < this.#used; i++) {
      const slot = (this.#head + i) % this.#capacity;
      if (this.#queueIds[slot] === queueId) this.#forgetSlot(slot);
    }
  }

  #evictOldest(): void {
    const slot = this.#head;
    if (this.#queueIds[slot] !== FORGOTTEN) this.#forgetSlot(slot);
    this.#head = (slot + 1) % this.#capacity;
    this.#used--;
  }

  /** Takes a live slot out of the index; the ring passes over it when it reaches it. */
  #forgetSlot(slot: number): void {
    const mask = this.#mask;
    const index = this.#index;
    let hole = this.#hashes[slot]! & mask;
    while (index[hole] !== slot + 1) hole = (hole + 1) & mask;
    // Backward-shift deletion: move up each later entry of the run that may sit in the hole.
    for (let next = (hole + 1) & mask; index[next] !== 0; next = (next + 1) & mask) {
      const home = this.#hashes[index[next]! - 1]! & mask;
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        index[hole] = index[next]!;
        hole = next;
      }
    }
    index[hole] = 0;
    this.#queueIds[slot] = FORGOTTEN;
    this.#longIds[slot] = undefined;
    this.#size--;
  }

  /** The live slot holding the pair, or -1. */
  #find(queueId: number, messageId: string, hash: number): number {
    const length = messageId.length;
    for (let bucket = hash & this.#mask; ; bucket = (bucket + 1) & this.#mask) {
      const entry = this.#index[bucket]!;
      if (entry === 0) return -1;
      const slot = entry - 1;
      if (this.#hashes[slot] !== hash || this.#queueIds[slot] !== queueId || this.#lengths[slot] !== length) continue;
      if (length > INLINE_CHARS) {
        if (this.#longIds[slot] === messageId) return slot;
        continue;
      }
      const base = slot * INLINE_CHARS;
      let i = 0;
      while (i < length && this.#chars[base + i] === messageId.charCodeAt(i)) i++;
      if (i === length) return slot;
    }
  }

}

/**
 * FNV-1a over the queue id and the id's UTF-16 units, then murmur3's finaliser. For one id the
 * steps are a bijection of the seeded start, so one id on two queues never collides.
 */
export function hashPair(seed: number, queueId: number, messageId: string): number {
  let h = Math.imul(seed ^ queueId, 0x01000193);
  for (let i = 0; i < messageId.length; i++) h = Math.imul(h ^ messageId.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** UUIDs (36), ULIDs (26) and most prefixed ids fit; ids are copied, not referenced, up to this. */
export const INLINE_CHARS = 48;
const FORGOTTEN = -1;
