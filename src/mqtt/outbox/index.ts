export { Outbox, type OutboxConfig, type OutboxDeps, type OutboxStats, type Send, type DeliverResult } from './outbox.js';
export { FileStore, type FileStoreConfig, type FileOps, type LogFile, type Recovered } from './file-store.js';
export type { OutboxMessage, NewOutboxMessage, MessageKind } from './message.js';
