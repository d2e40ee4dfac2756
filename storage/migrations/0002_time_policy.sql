-- Expiry per message. (Deduplication needs no table: the broker remembers recent ids in
-- memory, and after a restart reads back the ids of the messages still stored.)
ALTER TABLE messages ADD COLUMN expires_at INTEGER;   -- ms since epoch, NULL = never
