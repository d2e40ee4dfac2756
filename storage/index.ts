/** Public surface of the store: the interface and its SQLite implementation. */
export { openSqliteStore } from './sqlite-store.js';
export { emptyBatch, isBatchEmpty } from './store.js';
export type { Durability, SqliteStoreOptions } from './sqlite-store.js';
export type {
  Store,
  QueueRecord,
  MessageRecord,
  NewMessage,
  MoveMessage,
  WriteBatch,
  WriteResult,
  QueueCounts,
  StoredMessageId,
  ResultWrite,
  ResultRecord,
  DeliveredThrough,
} from './store.js';
