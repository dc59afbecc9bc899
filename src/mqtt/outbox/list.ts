/**
 * A doubly linked list: O(1) append and O(1) removal anywhere. The outbox removes from the
 * head (acks) and from the middle (the oldest prediction behind queued events, a superseded
 * status); an array would make each of those O(n) on a 10,000-message backlog.
 */
export interface ListNode<T> {
  readonly value: T;
  prev: ListNode<T> | undefined;
  next: ListNode<T> | undefined;
  /** Set once removed, so a stale reference is never unlinked twice. */
  removed: boolean;
}

export class LinkedList<T> {
  head: ListNode<T> | undefined;
  tail: ListNode<T> | undefined;
  size = 0;

  push(value: T): ListNode<T> {
    const node: ListNode<T> = { value, prev: this.tail, next: undefined, removed: false };
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.size++;
    return node;
  }

  remove(node: ListNode<T>): void {
    if (node.removed) return;
    node.removed = true;
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = undefined;
    this.size--;
  }

  /** The first value (from the head) that satisfies `pred`. */
  find(pred: (value: T) => boolean): ListNode<T> | undefined {
    for (let n = this.head; n; n = n.next) if (pred(n.value)) return n;
    return undefined;
  }

  *values(): IterableIterator<T> {
    for (let n = this.head; n; n = n.next) yield n.value;
  }
}
