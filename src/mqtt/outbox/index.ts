export { Outbox, type OutboxDeps } from './outbox.js';
export { FileStore, type FileStoreConfig, type Recovered } from './file-store.js';
export type { FileOps, LogFile } from './file-ops.js';
export type { OutboxMessage, NewOutboxMessage, MessageKind, OutboxConfig, OutboxStats, Send, DeliverResult } from './types.js';
