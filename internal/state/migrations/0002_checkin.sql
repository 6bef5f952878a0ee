-- Settings the agents share, such as the check-in secret every agent must sign tokens with.
-- A row is written once (INSERT IGNORE-style) and never updated, so agents racing to create a
-- setting all end up with the first one written.

CREATE TABLE IF NOT EXISTS settings (
    name       VARCHAR(255)    NOT NULL,
    value      VARBINARY(1024) NOT NULL,
    created_at DATETIME(6)     NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
