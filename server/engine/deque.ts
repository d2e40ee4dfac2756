/** A growable ring buffer: O(1) push and pop at both ends. */
export class Deque<T> {
  #items: Array<T | undefined>;
  #head = 0;
  #size = 0;

  constructor(capacity = 16) {
    this.#items = new Array<T | undefined>(Math.max(2, capacity));
  }

  get length(): number {
    return this.#size;
  }

  pushBack(item: T): void {
    if (this.#size === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#size) % this.#items.length] = item;
    this.#size++;
  }

  pushFront(item: T): void {
    if (this.#size === this.#items.length) this.#grow();
    this.#head = (this.#head - 1 + this.#items.length) % this.#items.length;
    this.#items[this.#head] = item;
    this.#size++;
  }

  peekFront(): T | undefined {
    return this.#size === 0 ? undefined : this.#items[this.#head];
  }

  popFront(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#size--;
    return item;
  }

  /** Removes every item for which `drop` returns true; keeps the order of the rest. */
  removeWhere(drop: (item: T) => boolean): T[] {
    const kept: T[] = [];
    const removed: T[] = [];
    for (let item = this.popFront(); item !== undefined; item = this.popFront()) (drop(item) ? removed : kept).push(item);
    for (const item of kept) this.pushBack(item);
    return removed;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#size; i++) yield this.#items[(this.#head + i) % this.#items.length] as T;
  }

  #grow(): void {
    const next = new Array<T | undefined>(this.#items.length * 2);
    for (let i = 0; i < this.#size; i++) next[i] = this.#items[(this.#head + i) % this.#items.length];
    this.#items = next;
    this.#head = 0;
  }
}
