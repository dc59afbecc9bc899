export { Outbox, type OutboxDeps } from './outbox.js';
export { FileStore, type Recovered } from './file-store.js';
export type { FileStoreConfig } from './types.js';
export type { FileOps, LogFile } from './file-ops.js';
export type { OutboxMessage, NewOutboxMessage, MessageKind, OutboxConfig, OutboxStats, Send, DeliverResult } from './types.js';
