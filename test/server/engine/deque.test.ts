import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Deque } from '../../../server/engine/deque.js';

function fill(values: number[], capacity?: number): Deque<number> {
  const d = new Deque<number>(capacity);
  for (const v of values) d.pushBack(v);
  return d;
}

describe('Deque', () => {
  it('starts empty, and popFront on an empty deque returns undefined', () => {
    const d = new Deque<string>();
    assert.equal(d.length, 0);
    assert.equal(d.popFront(), undefined);
    assert.equal(d.length, 0);
    assert.deepEqual([...d], []);
  });

  it('pops pushBack items first in, first out', () => {
    const d = fill([1, 2, 3]);
    assert.equal(d.popFront(), 1);
    assert.equal(d.popFront(), 2);
    d.pushBack(4);
    assert.deepEqual([...d], [3, 4]);
    assert.equal(d.length, 2);
  });

  it('pops a pushFront item before everything already queued', () => {
    const d = fill([1, 2]);
    d.pushFront(0);
    d.pushFront(-1);
    assert.deepEqual([...d], [-1, 0, 1, 2]);
    assert.equal(d.popFront(), -1);
  });

  it('grows past its initial capacity and keeps order when the ring has wrapped around', () => {
    const d = new Deque<number>(2);
    d.pushBack(1);
    d.pushBack(2);
    assert.equal(d.popFront(), 1);
    d.pushBack(3); // wraps to index 0
    d.pushFront(0); // full: grows while wrapped
    d.pushBack(4);
    d.pushFront(-1);
    for (let i = 5; i < 40; i++) d.pushBack(i);
    assert.deepEqual([...d], [-1, 0, 2, 3, ...Array.from({ length: 36 }, (_, i) => i + 4)]);
    assert.equal(d.length, 40);
  });

  it('treats a capacity below 2 as 2', () => {
    for (const capacity of [0, 1, -5]) {
      const d = new Deque<number>(capacity);
      d.pushFront(2);
      d.pushFront(1);
      d.pushBack(3);
      assert.deepEqual([...d], [1, 2, 3]);
    }
  });

  it('iterating does not consume the items', () => {
    const d = fill([1, 2, 3]);
    assert.deepEqual([...d], [1, 2, 3]);
    assert.deepEqual([...d], [1, 2, 3]);
    assert.equal(d.length, 3);
  });

  it('removeWhere returns the dropped items in order and keeps the order of the rest', () => {
    const d = fill([1, 2, 3, 4, 5, 6]);
    assert.deepEqual(d.removeWhere((x) => x % 2 === 0), [2, 4, 6]);
    assert.deepEqual([...d], [1, 3, 5]);
    assert.equal(d.length, 3);
    assert.deepEqual(d.removeWhere(() => false), []);
    assert.deepEqual(d.removeWhere(() => true), [1, 3, 5]);
    assert.equal(d.length, 0);
  });

  it('keeps falsy items such as 0, null and empty strings', () => {
    const d = new Deque<number | null | string>();
    d.pushBack(0);
    d.pushBack(null);
    d.pushBack('');
    assert.deepEqual(d.removeWhere((x) => x === null), [null]);
    assert.deepEqual([...d], [0, '']);
    assert.equal(d.popFront(), 0);
    assert.equal(d.popFront(), '');
  });

  it('behaves like an array under any sequence of pushFront, pushBack, popFront and removeWhere', () => {
    type Op =
      | { op: 'pushFront'; value: number }
      | { op: 'pushBack'; value: number }
      | { op: 'popFront' }
      | { op: 'removeWhere'; mod: number; rem: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('pushFront' as const), value: fc.integer() }),
      fc.record({ op: fc.constant('pushBack' as const), value: fc.integer() }),
      fc.constant({ op: 'popFront' as const }),
      fc.integer({ min: 1, max: 4 }).chain((mod) =>
        fc.record({ op: fc.constant('removeWhere' as const), mod: fc.constant(mod), rem: fc.integer({ min: 0, max: mod - 1 }) }),
      ),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.array(op, { maxLength: 200, size: 'max' }), (capacity, ops) => {
        const deque = new Deque<number>(capacity);
        const model: number[] = [];
        for (const o of ops) {
          switch (o.op) {
            case 'pushFront':
              deque.pushFront(o.value);
              model.unshift(o.value);
              break;
            case 'pushBack':
              deque.pushBack(o.value);
              model.push(o.value);
              break;
            case 'popFront':
              assert.equal(deque.popFront(), model.shift());
              break;
            case 'removeWhere': {
              const drop = (x: number) => ((x % o.mod) + o.mod) % o.mod === o.rem;
              const expected = model.filter(drop);
              model.splice(0, model.length, ...model.filter((x) => !drop(x)));
              assert.deepEqual(deque.removeWhere(drop), expected);
              break;
            }
          }
          assert.equal(deque.length, model.length);
          assert.deepEqual([...deque], model);
        }
      }),
      { numRuns: 300 },
    );
  });
});
