/**
 * What the outbox holds. `kind` decides what is dropped when the bound is hit: predictions
 * first (a stream where the newest matter most), then events; status messages are retained
 * state and are never dropped, only superseded by a newer status for the same topic.
 */
export type MessageKind = 'prediction' | 'event' | 'status';

export interface OutboxMessage {
  /** Assigned by the outbox; strictly increasing, also across restarts with the disk store. */
  readonly id: number;
  readonly topic: string;
  readonly payload: string;
  readonly qos: 1 | 2;
  readonly retain: boolean;
  readonly kind: MessageKind;
}

export type NewOutboxMessage = Omit<OutboxMessage, 'id'>;

export const MESSAGE_KINDS: readonly MessageKind[] = ['prediction', 'event', 'status'];

export interface OutboxConfig {
  /** Bound on queued messages (all kinds; status messages are never dropped, see enqueue). */
  max_messages: number;
  /** Sends in flight at once (default 16); 1 = stop-and-wait. */
  window?: number;
  /** Persist the queue: survives a daemon restart. `max_bytes` bounds the live records. */
  disk?: FileStoreConfig & { max_bytes: number };
}

/** Resolves once the broker has the message (PUBACK for QoS 1); rejects if it may not. */
export type Send = (msg: OutboxMessage) => Promise<void>;

export type DeliverResult =
  | { stopped: 'failed'; id: number; error: unknown }
  | { stopped: 'aborted' | 'superseded' | 'closed' };

export interface OutboxStats {
  /** Not yet acknowledged, in flight included. */
  queued: number;
  sent: number;
  /** `status`: superseded by a newer status for the same topic before it was sent. */
  dropped: Record<MessageKind, number>;
  disk_bytes: number;
  disk: 'off' | 'ok' | 'failed';
}

/** Where and how the file store keeps the queue (here, not in file-store.ts: types.ts imports nothing). */
export interface FileStoreConfig {
  path: string;
  fsync: 'always' | 'interval';
  /** For fsync 'interval': the most often a batch is written and fdatasync'd (default 100). */
  fsync_interval_ms?: number;
  /** Rewrite the log only once it is at least this big (default 1 MiB). */
  compact_min_bytes?: number;
}
