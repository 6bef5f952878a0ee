-- Groups, their instances and the scaling decision log.
-- `groups` is quoted everywhere: it is a reserved word from MySQL 8.0.2 on.
-- Statements are separated by a semicolon at the end of a line (see splitStatements).

CREATE TABLE IF NOT EXISTS `groups` (
    name        VARCHAR(255) NOT NULL,
    spec        JSON         NOT NULL,
    workflow_id VARCHAR(255) NOT NULL DEFAULT '',
    created_at  DATETIME(6)  NOT NULL,
    updated_at  DATETIME(6)  NOT NULL,
    deleted_at  DATETIME(6)  NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS instances (
    name          VARCHAR(255)  NOT NULL,
    group_name    VARCHAR(255)  NOT NULL,
    host          VARCHAR(255)  NOT NULL DEFAULT '',
    state         VARCHAR(32)   NOT NULL,
    address       VARCHAR(255)  NOT NULL DEFAULT '',
    token_hash    VARCHAR(255)  NULL,
    reason        VARCHAR(1024) NOT NULL DEFAULT '',
    created_at    DATETIME(6)   NOT NULL,
    checked_in_at DATETIME(6)   NULL,
    last_seen_at  DATETIME(6)   NULL,
    terminated_at DATETIME(6)   NULL,
    PRIMARY KEY (name),
    INDEX instances_group_state (group_name, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS scaling_events (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_key   VARCHAR(255)    NOT NULL,
    group_name  VARCHAR(255)    NOT NULL,
    `at`        DATETIME(6)     NOT NULL,
    from_size   INT             NOT NULL,
    to_size     INT             NOT NULL,
    metrics     JSON            NOT NULL,
    reason      VARCHAR(1024)   NOT NULL DEFAULT '',
    action      VARCHAR(64)     NOT NULL DEFAULT '',
    workflow_id VARCHAR(255)    NOT NULL DEFAULT '',
    run_id      VARCHAR(255)    NOT NULL DEFAULT '',
    PRIMARY KEY (id),
    UNIQUE KEY scaling_events_key (event_key),
    INDEX scaling_events_group_at (group_name, `at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
