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

-- Base images PremiScale copied onto hosts. A copy is recorded as copying before its volume is
-- made and ready once verified, so a volume left by an interrupted copy is never taken for a
-- good one. A volume with no row was put there by someone else and is taken as it is.
CREATE TABLE IF NOT EXISTS host_images (
    host        VARCHAR(255)    NOT NULL,
    pool        VARCHAR(255)    NOT NULL,
    volume      VARCHAR(255)    NOT NULL,
    state       VARCHAR(32)     NOT NULL,
    source      VARCHAR(1024)   NOT NULL DEFAULT '',
    sha256      CHAR(64)        NOT NULL DEFAULT '',
    bytes       BIGINT          NOT NULL DEFAULT 0,
    updated_at  DATETIME(6)     NOT NULL,
    PRIMARY KEY (host, pool, volume)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
