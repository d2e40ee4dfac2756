-- Queues and their messages. A message row lives until it is acked (deleted),
-- moved to a dead-letter queue (queue_id changes) or its queue is deleted.
CREATE TABLE queues (
  id         INTEGER PRIMARY KEY,
  name       TEXT    NOT NULL UNIQUE,
  options    TEXT    NOT NULL,           -- JSON: resolved queue options
  created_at INTEGER NOT NULL            -- ms since epoch
);

CREATE TABLE messages (
  id             INTEGER PRIMARY KEY,
  queue_id       INTEGER NOT NULL,
  seq            INTEGER NOT NULL,       -- dispatch order within (queue, priority); renewed when a message re-enters a queue
  state          INTEGER NOT NULL,       -- 0 stored (ready, or delivered and unacked: the broker's memory knows which), 2 delayed
  priority       INTEGER NOT NULL,       -- 0..9, higher first
  ready_at       INTEGER NOT NULL,       -- ms since epoch; for delayed rows, when they become ready
  delivery_count INTEGER NOT NULL,       -- deliveries so far; > 0 means the next one is a redelivery
  message_id     TEXT,
  headers        TEXT,                   -- JSON object or NULL
  published_at   INTEGER NOT NULL,
  body           BLOB    NOT NULL
);

CREATE INDEX messages_dispatch ON messages (queue_id, state, priority, seq);
CREATE INDEX messages_delayed ON messages (ready_at) WHERE state = 2;
