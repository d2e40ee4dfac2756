-- Lane marks: every message of (queue_id, priority) with seq <= delivered_seq that is still stored
-- there has been delivered at least once. First deliveries go out in seq order, so the broker raises
-- one mark per lane and commit instead of writing delivery_count on every row it delivers; rows
-- keep their own delivery_count for redeliveries. A moved or promoted message gets a new seq, above
-- every mark, so a mark never covers a message that arrived after it.
CREATE TABLE delivery_marks (
  queue_id      INTEGER NOT NULL,
  priority      INTEGER NOT NULL,
  delivered_seq INTEGER NOT NULL,
  PRIMARY KEY (queue_id, priority)
) WITHOUT ROWID;
