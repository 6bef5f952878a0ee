-- The decision log records what each evaluation did (outcome), which check won, and every
-- check's input and recommendation.
ALTER TABLE scaling_events
    ADD COLUMN outcome VARCHAR(32) NOT NULL DEFAULT '',
    ADD COLUMN winner VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN checks JSON NULL;
