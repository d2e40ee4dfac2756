import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IndexedHeap, type HeapItem } from '../../../server/engine/indexed-heap.js';

interface Item extends HeapItem {
  name: string;
  key: number;
}

function item(name: string, key: number): Item {
  return { name, key, heapIndex: -1 };
}

function setup() {
  const heap = new IndexedHeap<Item>((i) => i.key);
  const drain = (): Item[] => {
    const out: Item[] = [];
    for (let i = heap.pop(); i !== undefined; i = heap.pop()) out.push(i);
    return out;
  };
  return { heap, drain };
}

describe('IndexedHeap', () => {
  it('is empty at first: size 0, and peek and pop return undefined', () => {
    const { heap } = setup();
    assert.equal(heap.size, 0);
    assert.equal(heap.peek(), undefined);
    assert.equal(heap.pop(), undefined);
  });

  it('pops items in ascending key order and marks popped items as out of the heap', () => {
    const { heap, drain } = setup();
    const items = [item('c', 30), item('a', 10), item('d', 40), item('b', 20), item('a2', 10)];
    for (const i of items) heap.push(i);
    assert.equal(heap.size, 5);
    assert.equal(heap.peek()?.key, 10);
    const popped = drain();
    assert.deepEqual(popped.map((i) => i.key), [10, 10, 20, 30, 40]);
    for (const i of items) assert.equal(i.heapIndex, -1);
    assert.equal(heap.size, 0);
  });

  it('removes an item from the middle and keeps the others in order', () => {
    const { heap, drain } = setup();
    const items = [5, 3, 8, 1, 9, 2, 7].map((k) => item(`k${k}`, k));
    for (const i of items) heap.push(i);
    const three = items[1]!;
    heap.remove(three);
    assert.equal(three.heapIndex, -1);
    assert.equal(heap.size, 6);
    assert.deepEqual(drain().map((i) => i.key), [1, 2, 5, 7, 8, 9]);
  });

  it('ignores remove of an item that is not in the heap', () => {
    const { heap } = setup();
    const a = item('a', 1);
    const b = item('b', 2);
    heap.push(a);
    heap.remove(b);
    assert.equal(heap.size, 1);
    heap.remove(a);
    heap.remove(a);
    assert.equal(heap.size, 0);
  });

  it('ignores remove of an item that belongs to another heap at the same index', () => {
    const { heap } = setup();
    const other = new IndexedHeap<Item>((i) => i.key);
    const mine = item('mine', 1);
    const theirs = item('theirs', 2);
    heap.push(mine);
    other.push(theirs);
    assert.equal(theirs.heapIndex, mine.heapIndex);
    heap.remove(theirs);
    assert.equal(heap.size, 1);
    assert.equal(heap.peek(), mine);
    assert.equal(theirs.heapIndex, 0, 'the other heap\'s item keeps its index');
  });

  it('removing an item can move the last item up past its new parent', () => {
    // Pushed in this order the heap array is [3, 10, 7, 17, 16, 18, 8]. Removing 17 puts the
    // last item (8, from the other subtree) under 10: it must rise above 10.
    const { heap, drain } = setup();
    const items = [7, 10, 3, 17, 16, 18, 8].map((k) => item(`k${k}`, k));
    for (const i of items) heap.push(i);
    heap.remove(items[3]!);
    assert.equal(heap.size, 6);
    assert.deepEqual(drain().map((i) => i.key), [3, 7, 8, 10, 16, 18]);
  });

  it('update moves an item whose key decreased or increased to its new place', () => {
    const { heap, drain } = setup();
    const items = [1, 2, 3, 4, 5].map((k) => item(`k${k}`, k));
    for (const i of items) heap.push(i);
    items[4]!.key = 0;
    heap.update(items[4]!);
    assert.equal(heap.peek(), items[4]);
    items[0]!.key = 10;
    heap.update(items[0]!);
    assert.deepEqual(drain().map((i) => i.name), ['k5', 'k2', 'k3', 'k4', 'k1']);
  });

  it('update pushes an item that is not in the heap', () => {
    const { heap } = setup();
    const a = item('a', 1);
    heap.update(a);
    assert.equal(heap.size, 1);
    assert.equal(heap.peek(), a);
    assert.equal(a.heapIndex, 0);
  });

  it('pops in sorted order and keeps heapIndex consistent under any sequence of push, remove, update and pop', () => {
    type Op =
      | { op: 'push'; key: number }
      | { op: 'remove'; pick: number; outside: boolean }
      | { op: 'update'; pick: number; key: number }
      | { op: 'pop' };
    const key = fc.integer({ min: -1_000_000, max: 1_000_000 });
    const pick = fc.nat();
    const op: fc.Arbitrary<Op> = fc.oneof(
      { arbitrary: fc.record({ op: fc.constant('push' as const), key }), weight: 3 },
      { arbitrary: fc.record({ op: fc.constant('remove' as const), pick, outside: fc.integer({ min: 0, max: 4 }).map((n) => n === 0) }), weight: 2 },
      { arbitrary: fc.record({ op: fc.constant('update' as const), pick, key }), weight: 2 },
      fc.constant({ op: 'pop' as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200, size: 'max' }), (ops) => {
        const { heap, drain } = setup();
        const all: Item[] = []; // every item ever made, in the heap or not
        const inHeap = new Set<Item>();
        const check = () => {
          assert.equal(heap.size, inHeap.size);
          const seen = new Set<number>();
          for (const i of all) {
            if (!inHeap.has(i)) {
              assert.equal(i.heapIndex, -1, `${i.name} is out of the heap`);
              continue;
            }
            assert.ok(i.heapIndex >= 0 && i.heapIndex < heap.size, `${i.name} index ${i.heapIndex} within 0..${heap.size - 1}`);
            assert.ok(!seen.has(i.heapIndex), `index ${i.heapIndex} held once`);
            seen.add(i.heapIndex);
          }
          const min = Math.min(...[...inHeap].map((i) => i.key));
          assert.equal(heap.peek()?.key, inHeap.size === 0 ? undefined : min);
        };
        for (const o of ops) {
          switch (o.op) {
            case 'push': {
              const i = item(`i${all.length}`, o.key);
              all.push(i);
              heap.push(i);
              inHeap.add(i);
              break;
            }
            case 'remove': {
              // Mostly an item in the heap; sometimes one already out of it, which is a no-op.
              const from = o.outside ? all : [...inHeap];
              const i = from[o.pick % Math.max(1, from.length)];
              if (i === undefined) break;
              heap.remove(i);
              inHeap.delete(i);
              break;
            }
            case 'update': {
              const i = all[o.pick % Math.max(1, all.length)];
              if (i === undefined) break;
              i.key = o.key;
              heap.update(i); // re-inserts an item that was out of the heap
              inHeap.add(i);
              break;
            }
            case 'pop': {
              const expected = Math.min(...[...inHeap].map((i) => i.key));
              const top = heap.pop();
              if (inHeap.size === 0) {
                assert.equal(top, undefined);
              } else {
                assert.ok(top !== undefined && inHeap.has(top));
                assert.equal(top.key, expected);
                inHeap.delete(top);
              }
              break;
            }
          }
          check();
        }
        const keys = drain().map((i) => i.key);
        assert.deepEqual(keys, [...inHeap].map((i) => i.key).sort((a, b) => a - b));
        for (const i of all) assert.equal(i.heapIndex, -1);
      }),
      { numRuns: 1000 },
    );
  });
});
