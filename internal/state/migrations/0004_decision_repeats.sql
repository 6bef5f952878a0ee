-- An evaluation that comes to the same decision for the same reason as the row before it is
-- not written again: the row counts the repeats and the time of the last one.
ALTER TABLE scaling_events
    ADD COLUMN repeats INT NOT NULL DEFAULT 0,
    ADD COLUMN last_repeat_at DATETIME(6) NULL;
