-- The system of record: sale definitions and orders.
--
-- Identifiers are at most 128 bytes and remarks at most 512 (nexussale-core validates both), so
-- no value is ever truncated; utf8mb4_bin compares them byte for byte, as Rust does.

CREATE TABLE sales (
    sku                 VARCHAR(128)    NOT NULL,
    stock               BIGINT UNSIGNED NOT NULL,
    per_user_limit      INT UNSIGNED    NOT NULL,
    starts_at           DATETIME(6)     NULL,
    ends_at             DATETIME(6)     NULL,
    -- nanoseconds: a TTL of any precision reads back exactly
    reservation_ttl_ns  BIGINT UNSIGNED NOT NULL,
    created_at          DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (sku)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE orders (
    -- a UUID v7: ids sort by creation, so the newest-first keyset pages walk the primary key
    id               BINARY(16)      NOT NULL,
    sku              VARCHAR(128)    NOT NULL,
    user_id          VARCHAR(128)    NOT NULL,
    quantity         INT UNSIGNED    NOT NULL,
    status           ENUM('pending', 'paid', 'cancelled', 'expired') NOT NULL,
    created_at       DATETIME(6)     NOT NULL,
    updated_at       DATETIME(6)     NOT NULL,
    expires_at       DATETIME(6)     NOT NULL,
    remark           VARCHAR(512)    NULL,
    idempotency_key  VARCHAR(128)    NULL,
    -- how many times the order's event was written again after the first (at-least-once
    -- delivery); counting them is how an insert tells new orders from repeated ones
    redeliveries     INT UNSIGNED    NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    -- a user's orders, newest first
    KEY orders_by_user (user_id, id),
    -- a sale's orders, newest first
    KEY orders_by_sku (sku, id),
    -- a sale's orders in one status, newest first; and the per-status counts of reconciliation,
    -- read from this index alone
    KEY orders_by_sku_status (sku, status, id, quantity),
    -- the order an idempotency key made (not unique: see the crate docs)
    KEY orders_by_key (sku, user_id, idempotency_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
