/** An item that knows its place in an {@link IndexedHeap}; -1 when not in one. */
export interface HeapItem {
  heapIndex: number;
}

/** A binary min-heap with O(log n) removal of any item, keyed by `keyOf`. */
export class IndexedHeap<T extends HeapItem> {
  readonly #items: T[] = [];
  readonly #keyOf: (item: T) => number;

  constructor(keyOf: (item: T) => number) {
    this.#keyOf = keyOf;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    item.heapIndex = this.#items.length;
    this.#items.push(item);
    this.#up(item.heapIndex);
  }

  pop(): T | undefined {
    const top = this.#items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /** Removes `item` if it is in the heap. */
  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0 || this.#items[i] !== item) return;
    const last = this.#items.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    this.#items[i] = last;
    last.heapIndex = i;
    this.#down(i);
    this.#up(last.heapIndex);
  }

  /** Re-positions `item` after its key changed. */
  update(item: T): void {
    if (item.heapIndex < 0) {
      this.push(item);
      return;
    }
    this.#up(item.heapIndex);
    this.#down(item.heapIndex);
  }

  #up(i: number): void {
    const items = this.#items;
    const item = items[i]!;
    const key = this.#keyOf(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (this.#keyOf(p) <= key) break;
      items[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    items[i] = item;
    item.heapIndex = i;
  }

  #down(i: number): void {
    const items = this.#items;
    const n = items.length;
    const item = items[i]!;
    const key = this.#keyOf(item);
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.#keyOf(items[right]!) < this.#keyOf(items[left]!) ? right : left;
      const c = items[child]!;
      if (this.#keyOf(c) >= key) break;
      items[i] = c;
      c.heapIndex = i;
      i = child;
    }
    items[i] = item;
    item.heapIndex = i;
  }
}
