-- Every hypervisor host a worker serves: its capacity, the ratios and reserve placement uses,
-- what PremiScale's domains hold on it, and the last proof of life (its worker reached its
-- libvirt). Whether a host is up is judged against the database's own clock.
CREATE TABLE IF NOT EXISTS hosts (
    name                VARCHAR(255)    NOT NULL,
    cpus                INT             NOT NULL DEFAULT 0,
    memory_mib          BIGINT          NOT NULL DEFAULT 0,
    free_memory_mib     BIGINT          NOT NULL DEFAULT 0,
    cpu_overcommit      DOUBLE          NOT NULL DEFAULT 1,
    memory_overcommit   DOUBLE          NOT NULL DEFAULT 1,
    reserved_cpus       INT             NOT NULL DEFAULT 0,
    reserved_memory_mib BIGINT          NOT NULL DEFAULT 0,
    used_cpus           INT             NOT NULL DEFAULT 0,
    used_memory_mib     BIGINT          NOT NULL DEFAULT 0,
    domains             INT             NOT NULL DEFAULT 0,
    worker              VARCHAR(255)    NOT NULL DEFAULT '',
    last_seen_at        DATETIME(6)     NULL,
    last_error          VARCHAR(1024)   NOT NULL DEFAULT '',
    last_error_at       DATETIME(6)     NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
