-- Expiry per message, and remembered message ids for deduplication.
ALTER TABLE messages ADD COLUMN expires_at INTEGER;   -- ms since epoch, NULL = never

CREATE TABLE dedup (
  queue_id   INTEGER NOT NULL,
  message_id TEXT    NOT NULL,
  expires_at INTEGER NOT NULL,                         -- ms since epoch: forgotten after this
  PRIMARY KEY (queue_id, message_id)
) WITHOUT ROWID;

CREATE INDEX dedup_expiry ON dedup (expires_at);
