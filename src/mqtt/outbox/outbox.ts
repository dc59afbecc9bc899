import type { Logger } from '../../core/logger.js';
import type { Clock } from '../../core/clock.js';
import { FileStore } from './file-store.js';
import type { FileOps } from './file-ops.js';
import { LinkedList, type ListNode } from './list.js';
import type { DeliverResult, MessageKind, NewOutboxMessage, OutboxConfig, OutboxMessage, OutboxStats, Send } from './types.js';
import { recordSize } from './records.js';

export interface OutboxDeps {
  logger: Logger;
  clock: Clock;
  config: OutboxConfig;
  /** Passed to the file store (tests inject failures). */
  fs?: FileOps;
}

type State = 'queued' | 'inflight' | 'acked';

interface Entry {
  msg: OutboxMessage;
  bytes: number;
  state: State;
  node?: ListNode<Entry>;
  kindNode?: ListNode<Entry>;
}

/**
 * An ordered, bounded queue of QoS 1/2 messages in front of MQTT.js, optionally persisted
 * (file-store.ts). Messages leave it only once `send` resolved, strictly from the head, so a
 * disconnect or a crash at any point leaves every unacknowledged message queued, in order.
 *
 * With MQTT.js (test/integration/outbox-mosquitto.test.ts): on every 'connect', start
 * `deliver(m => client.connected ? client.publishAsync(...) : Promise.reject(...))`. Going
 * offline fails the next send and ends that loop; sends MQTT.js already had in flight stay
 * pending and are resent by MQTT.js itself on reconnect, and the next deliver() waits for them.
 */
export class Outbox {
  private readonly list = new LinkedList<Entry>();
  private readonly byKind = {
    prediction: new LinkedList<Entry>(),
    event: new LinkedList<Entry>(),
    status: new LinkedList<Entry>(),
  } satisfies Record<MessageKind, LinkedList<Entry>>;
  private readonly statusByTopic = new Map<string, Entry>();
  private queuedBytes = 0;
  private nextId = 1;
  private sent = 0;
  private readonly dropped: Record<MessageKind, number> = { prediction: 0, event: 0, status: 0 };
  private dropsLogged = new Set<MessageKind>();
  private store: FileStore | undefined;
  private disk: OutboxStats['disk'] = 'off';
  private started = false;
  private stopped = false;
  /** Issued and not yet removed (in flight, or acked behind an unacked head). */
  private outstanding = 0;
  private inflight = 0;
  private generation = 0;
  private wakers: (() => void)[] = [];

  constructor(private readonly deps: OutboxDeps) {}

  /** Opens (and replays) the disk store when configured; disk errors degrade to memory-only. */
  async start(): Promise<void> {
    const { disk } = this.deps.config;
    if (disk) {
      const store = new FileStore({ ...this.deps, config: disk, onError: (err) => this.diskFailed(err) });
      this.store = store;
      this.disk = 'ok';
      try {
        const recovered = await store.start();
        this.nextId = recovered.nextId;
        // Already live in the store (and kept in memory even if its rewrite just failed).
        for (const msg of recovered.messages) this.insert(msg, recordSize(msg));
        if (recovered.messages.length > 0) this.deps.logger.info({ queued: recovered.messages.length, path: disk.path }, 'outbox: messages restored from disk');
      } catch (err) {
        this.diskFailed(err as Error);
      }
    }
    this.started = true;
  }

  /**
   * Appends a message and applies the bound: while over `max_messages` (or the disk's
   * `max_bytes`), the oldest queued prediction is dropped, else the oldest event; never a status
   * and never one already handed to `send`. A status replaces a still-queued older status for
   * the same topic (it is retained state: only the newest matters, and this keeps the number of
   * statuses bounded by the number of topics). Drops are counted in stats() and logged.
   */
  enqueue(input: NewOutboxMessage): OutboxMessage {
    if (!this.started || this.stopped) throw new Error('outbox is not running');
    const msg: OutboxMessage = { ...input, id: this.nextId++ };
    if (msg.kind === 'status') {
      const older = this.statusByTopic.get(msg.topic);
      if (older?.state === 'queued') this.drop(older);
    }
    const bytes = this.store ? this.store.append(msg) : Buffer.byteLength(msg.topic) + Buffer.byteLength(msg.payload);
    const entry = this.insert(msg, bytes);
    if (msg.kind === 'status') this.statusByTopic.set(msg.topic, entry);
    const maxBytes = this.deps.config.disk?.max_bytes ?? Infinity;
    while (this.list.size > this.deps.config.max_messages || this.queuedBytes > maxBytes) {
      const victim = this.oldestQueued('prediction') ?? this.oldestQueued('event');
      if (!victim) break;
      this.drop(victim);
    }
    this.wake();
    return msg;
  }

  /**
   * Sends queued messages in order, up to `window` at a time, removing each only when it and
   * every message before it have been acknowledged. Waits for new messages when the queue is
   * empty. Returns on the first failure (that message stays at the head; messages behind it that
   * were acknowledged are removed, not resent), when `signal` aborts, when a later deliver()
   * supersedes this one, or on stop(). Call it again (e.g. on every MQTT 'connect') to resume.
   */
  async deliver(send: Send, opts: { signal?: AbortSignal } = {}): Promise<DeliverResult> {
    if (!this.started) throw new Error('outbox is not started');
    const gen = ++this.generation;
    this.wake();
    const { signal } = opts;
    const interrupted = (): DeliverResult | undefined =>
      this.stopped ? { stopped: 'closed' } : gen !== this.generation ? { stopped: 'superseded' } : signal?.aborted ? { stopped: 'aborted' } : undefined;
    // Sends of an earlier deliver() must settle first: resending them while they may still
    // succeed would duplicate them, and sending past them while they may still fail would reorder.
    while (this.inflight > 0) {
      const stop = interrupted();
      if (stop) return stop;
      await this.changed(signal);
    }
    this.removeAcked();
    const loop: { failure?: { id: number; error: unknown } } = {};
    const window = Math.max(1, this.deps.config.window ?? 16);
    while (!loop.failure) {
      const stop = interrupted();
      if (stop) return stop;
      const next = this.outstanding < window ? this.list.find((e) => e.state === 'queued') : undefined;
      if (!next) {
        await this.changed(signal);
        continue;
      }
      this.issue(next.value, send, loop);
    }
    const failure = loop.failure;
    while (this.inflight > 0 && !interrupted()) await this.changed(signal);
    this.removeAcked();
    return { stopped: 'failed', ...failure };
  }

  /**
   * Drops one queued message (not one in flight), counted like a bound drop: for a message the
   * broker keeps refusing while connected (an MQTT 5 error reason code), which would otherwise
   * block the head of the queue forever.
   */
  discard(id: number): boolean {
    const entry = this.list.find((e) => e.msg.id === id)?.value;
    if (entry?.state !== 'queued') return false;
    this.deps.logger.warn({ id, topic: entry.msg.topic, kind: entry.msg.kind }, 'outbox: message discarded');
    this.drop(entry);
    this.wake();
    return true;
  }

  /** Resolves once everything enqueued so far is on disk: true, or false when memory-only. */
  async flush(): Promise<boolean> {
    if (!this.store) return false;
    return this.store.flush().then(
      () => true,
      () => false,
    );
  }

  stats(): OutboxStats {
    return { queued: this.list.size, sent: this.sent, dropped: { ...this.dropped }, disk_bytes: this.store?.bytes ?? 0, disk: this.disk };
  }

  /** The queued messages in order, in flight included (diagnostics, tests). */
  messages(): OutboxMessage[] {
    return [...this.list.values()].map((e) => e.msg);
  }

  /** Ends delivery loops and writes the disk store out; unacked messages stay there. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake();
    const store = this.store;
    this.store = undefined;
    await store?.stop();
  }

  private insert(msg: OutboxMessage, bytes: number): Entry {
    const entry: Entry = { msg, bytes, state: 'queued' };
    entry.node = this.list.push(entry);
    entry.kindNode = this.byKind[msg.kind].push(entry);
    this.queuedBytes += bytes;
    return entry;
  }

  private remove(entry: Entry): void {
    if (!entry.node || entry.node.removed) return;
    this.list.remove(entry.node);
    if (entry.kindNode) this.byKind[entry.msg.kind].remove(entry.kindNode);
    if (this.statusByTopic.get(entry.msg.topic) === entry) this.statusByTopic.delete(entry.msg.topic);
    this.queuedBytes -= entry.bytes;
    this.store?.remove(entry.msg.id);
    if (this.list.size === 0) this.dropsLogged.clear();
  }

  private drop(entry: Entry): void {
    this.remove(entry);
    const kind = entry.msg.kind;
    this.dropped[kind]++;
    if (kind !== 'status' && !this.dropsLogged.has(kind)) {
      // Once per kind per backlog: at 30 msg/s a line per drop would flood the journal.
      this.dropsLogged.add(kind);
      this.deps.logger.warn({ kind, dropped: this.dropped, queued: this.list.size }, 'outbox full: dropping the oldest messages');
    }
  }

  private oldestQueued(kind: MessageKind): Entry | undefined {
    return this.byKind[kind].find((e) => e.state === 'queued')?.value;
  }

  private issue(entry: Entry, send: Send, loop: { failure?: { id: number; error: unknown } }): void {
    entry.state = 'inflight';
    this.outstanding++;
    this.inflight++;
    let sending: Promise<void>;
    try {
      sending = send(entry.msg);
    } catch (err) {
      sending = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    sending.then(
      () => {
        entry.state = 'acked';
        this.inflight--;
        // Strictly in order: an acked message waits for every message before it.
        for (let head = this.list.head; head?.value.state === 'acked'; head = this.list.head) this.removeSent(head.value);
        this.wake();
      },
      (error: unknown) => {
        entry.state = 'queued';
        this.inflight--;
        this.outstanding--;
        loop.failure ??= { id: entry.msg.id, error };
        this.wake();
      },
    );
  }

  /** After a failure: acked messages behind the failed one were delivered; resending would duplicate them. */
  private removeAcked(): void {
    let skipped = 0;
    for (let n = this.list.head; n && this.outstanding > this.inflight; ) {
      const next = n.next;
      if (n.value.state === 'acked') {
        this.removeSent(n.value);
        skipped++;
      }
      n = next;
    }
    if (skipped > 0) this.deps.logger.warn({ delivered_out_of_order: skipped }, 'outbox: messages acknowledged after a failed one were not resent');
  }

  private removeSent(entry: Entry): void {
    this.remove(entry);
    this.outstanding--;
    this.sent++;
  }

  private wake(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const w of wakers) w();
  }

  /** Resolves on the next enqueue, settled send, deliver() or stop(), or when `signal` aborts. */
  private changed(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = (): void => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.wakers.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private diskFailed(err: Error): void {
    if (this.disk === 'failed') return;
    this.disk = 'failed';
    const store = this.store;
    this.store = undefined;
    this.deps.logger.error({ err: err.message, code: (err as NodeJS.ErrnoException).code, path: this.deps.config.disk?.path }, 'outbox: disk store failed; continuing in memory only (messages are lost if the daemon restarts)');
    void store?.stop();
  }
}
