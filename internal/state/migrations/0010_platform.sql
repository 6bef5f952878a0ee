-- The platform link (internal/platform): the installation's registration with the PremiScale
-- platform, the outbox of events waiting to be delivered to it, the commands it sent (so a
-- command id is applied once), and counters. One installation shares them through MySQL.

-- One row, name 'agent': every agent of the installation links with the same registration.
CREATE TABLE IF NOT EXISTS platform_registration (
    name          VARCHAR(32)     NOT NULL,
    host          VARCHAR(1024)   NOT NULL,
    agent_id      VARCHAR(255)    NOT NULL,
    credential    VARBINARY(4096) NOT NULL,
    response      MEDIUMBLOB      NOT NULL,
    registered_at DATETIME(6)     NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Events in delivery order (seq). event_id is the envelope id the platform acknowledges; a
-- snapshot (group status, host capacity) has a coalesce_key, and a newer snapshot replaces a
-- pending one with the same key. Acknowledged rows are deleted.
CREATE TABLE IF NOT EXISTS platform_outbox (
    seq          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id     VARCHAR(320)    NOT NULL,
    type         VARCHAR(64)     NOT NULL,
    coalesce_key VARCHAR(320)    NULL,
    `at`         DATETIME(6)     NOT NULL,
    payload      MEDIUMBLOB      NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY platform_outbox_event (event_id),
    UNIQUE KEY platform_outbox_coalesce (coalesce_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Commands from the platform that change something: claimed ('applying') by the link that
-- applies it (term), then 'done' with the result sent back. A command id seen again gets
-- the stored result instead of being applied again.
CREATE TABLE IF NOT EXISTS platform_commands (
    command_id  VARCHAR(255) NOT NULL,
    op          VARCHAR(32)  NOT NULL,
    state       VARCHAR(16)  NOT NULL,
    term        VARCHAR(64)  NOT NULL,
    result      MEDIUMBLOB   NULL,
    received_at DATETIME(6)  NOT NULL,
    done_at     DATETIME(6)  NULL,
    PRIMARY KEY (command_id),
    INDEX platform_commands_done (done_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS platform_counters (
    name  VARCHAR(64)     NOT NULL,
    value BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
