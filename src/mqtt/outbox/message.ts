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
