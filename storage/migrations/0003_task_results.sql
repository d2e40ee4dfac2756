-- Task states and results, keyed by task id, kept until expires_at (the broker's sweep deletes them).
-- A row in a terminal state (SUCCESS, FAILURE, REVOKED) is never overwritten: the store's upsert
-- checks that in SQL. REVOKED rows also rebuild the broker's in-memory revocations after a restart.
CREATE TABLE task_results (
  task_id    TEXT    PRIMARY KEY,
  state      TEXT    NOT NULL,           -- PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED
  payload    BLOB,                       -- opaque to the broker; NULL = none
  updated_at INTEGER NOT NULL,           -- ms since epoch of the last write
  expires_at INTEGER NOT NULL            -- ms since epoch; a row at or past it counts as absent
);

CREATE INDEX task_results_expiry ON task_results (expires_at);
CREATE INDEX task_results_revoked ON task_results (expires_at) WHERE state = 'REVOKED';
