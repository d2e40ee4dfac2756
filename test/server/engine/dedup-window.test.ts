import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DedupWindow, hashPair, INLINE_CHARS } from '../../../server/engine/dedup-window.js';

/** The same rules written the plain way: an array of entries, oldest first. */
class ModelWindow {
  readonly entries: Array<{ queueId: number; messageId: string; until: number; live: boolean }> = [];
  readonly capacity: number;
  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.entries.filter((e) => e.live).length;
  }

  get(queueId: number, messageId: string): number | undefined {
    return this.entries.find((e) => e.live && e.queueId === queueId && e.messageId === messageId)?.until;
  }

  remember(queueId: number, messageId: string, until: number, now: number): void {
    this.forget(queueId, messageId);
    if (this.entries.length === this.capacity) this.entries.shift();
    this.entries.push({ queueId, messageId, until, live: true });
    while (this.entries.length > 0 && (!this.entries[0]!.live || this.entries[0]!.until <= now)) this.entries.shift();
  }

  forget(queueId: number, messageId: string): void {
    for (const e of this.entries) if (e.queueId === queueId && e.messageId === messageId) e.live = false;
  }

  forgetQueue(queueId: number): void {
    for (const e of this.entries) if (e.queueId === queueId) e.live = false;
  }
}

const long = (c: string): string => c.repeat(INLINE_CHARS + 1);
// Few distinct ids, so the same pair comes back. Three are too long to be copied inline, and two
// of those differ only past the inline length.
const ID_POOL = ['a', 'b', 'ab', 'ba', 'é', '😀', '', 'x'.repeat(INLINE_CHARS), long('y'), long('y') + 'z', long('z')];
const ids = fc.constantFrom(...ID_POOL);
const queueIds = fc.integer({ min: 1, max: 3 });

type Op =
  | { op: 'remember'; queueId: number; messageId: string; ttl: number; tick: number }
  | { op: 'forget'; queueId: number; messageId: string }
  | { op: 'forgetQueue'; queueId: number };

const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('remember' as const), queueId: queueIds, messageId: ids, ttl: fc.integer({ min: 1, max: 20 }), tick: fc.integer({ min: 0, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('forget' as const), queueId: queueIds, messageId: ids }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('forgetQueue' as const), queueId: queueIds }) },
);

describe('DedupWindow', () => {
  it('agrees with a plain model on every lookup after random remembers, forgets and evictions', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(ops, { maxLength: 120 }), (capacity, script) => {
        const window = new DedupWindow(capacity);
        const model = new ModelWindow(capacity);
        let now = 0;
        for (const step of script) {
          if (step.op === 'remember') {
            now += step.tick;
            window.remember(step.queueId, step.messageId, now + step.ttl, now);
            model.remember(step.queueId, step.messageId, now + step.ttl, now);
          } else if (step.op === 'forget') {
            window.forget(step.queueId, step.messageId);
            model.forget(step.queueId, step.messageId);
          } else {
            window.forgetQueue(step.queueId);
            model.forgetQueue(step.queueId);
          }
          assert.equal(window.size, model.size);
          for (const queueId of [1, 2, 3]) {
            for (const messageId of ID_POOL) {
              assert.equal(window.get(queueId, messageId), model.get(queueId, messageId), `queue ${queueId}, id ${JSON.stringify(messageId)}`);
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the newest `capacity` ids of a long stream and finds none of the older ones', () => {
    const window = new DedupWindow(1000);
    const id = (i: number): string => (i % 7 === 0 ? `${'long-'.repeat(12)}${i}` : `id-${i}-ü`);
    for (let i = 0; i < 100_000; i++) window.remember(1, id(i), 1e12, 0);
    assert.equal(window.size, 1000);
    for (let i = 99_000; i < 100_000; i++) assert.equal(window.get(1, id(i)), 1e12, id(i));
    for (let i = 0; i < 99_000; i += 97) assert.equal(window.get(1, id(i)), undefined, id(i));
    assert.equal(window.get(2, id(99_999)), undefined, 'the same id on another queue is a different pair');
  });

  it('tells apart pairs whose hashes collide: short ids and long ids', () => {
    // With a fixed seed, search for colliding pairs the way an attacker would; the window must
    // still compare the ids themselves.
    const seed = 7;
    const collide = (make: (i: number) => [number, string]): [[number, string], [number, string]] => {
      const seen = new Map<number, [number, string]>();
      for (let i = 0; ; i++) {
        const pair = make(i);
        const h = hashPair(seed, ...pair);
        const earlier = seen.get(h);
        if (earlier !== undefined) return [earlier, pair];
        seen.set(h, pair);
      }
    };
    const cases = [
      collide((i) => [1, `s${i.toString(36).padStart(8, '0')}`]),
      collide((i) => [1, long('q') + i.toString(36).padStart(8, '0')]),
    ];
    for (const [[q1, id1], [q2, id2]] of cases) {
      assert.equal(id1.length, id2.length);
      const window = new DedupWindow(16, seed);
      window.remember(q1, id1, 100, 0);
      assert.equal(window.get(q2, id2), undefined, `${q2}/${id2} collides with ${q1}/${id1} but is not it`);
      window.remember(q2, id2, 200, 0);
      assert.equal(window.get(q1, id1), 100);
      assert.equal(window.get(q2, id2), 200);
      window.forget(q1, id1);
      assert.equal(window.get(q1, id1), undefined);
      assert.equal(window.get(q2, id2), 200);
    }
  });

  it('evicts expired ids from the oldest end as new ones arrive', () => {
    const window = new DedupWindow(10);
    window.remember(1, 'old', 100, 0);
    window.remember(1, 'new', 300, 150);
    assert.equal(window.size, 1);
    assert.equal(window.get(1, 'old'), undefined);
    assert.equal(window.get(1, 'new'), 300);
  });

  it('refuses a capacity that is not a positive integer', () => {
    assert.throws(() => new DedupWindow(0), RangeError);
    assert.throws(() => new DedupWindow(1.5), RangeError);
  });
});
