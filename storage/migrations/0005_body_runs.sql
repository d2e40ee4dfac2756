-- Body runs: the bodies of messages written in one commit, concatenated into one blob (up to
-- 32 KiB) instead of each in its message's row, so that acks do not make SQLite write the pages
-- they empty (storage/body-runs.ts says why). A run covers the ids id..last_id and is deleted in
-- the commit after which no message in that range keeps its body there.
CREATE TABLE body_runs (
  id      INTEGER PRIMARY KEY,           -- the id of the run's first message
  last_id INTEGER NOT NULL,              -- the id of its last message
  data    BLOB    NOT NULL
);
-- NULL: the body is the row's own `body`. Otherwise `body` is empty and the body is in a run:
-- (id - run id) * 2^32 + offset * 2^16 + length (storage/body-runs.ts).
ALTER TABLE messages ADD COLUMN body_ref INTEGER;
