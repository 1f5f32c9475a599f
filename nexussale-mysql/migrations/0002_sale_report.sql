-- What a sale's report reads (the console's `GET /v1/sales/{sku}/report`).

-- A sale's orders by the instant they were placed, with their units: the report's first and
-- last purchase, its buckets over time and the instant the sale sold out are read from this
-- index alone (it holds the primary key too), never from the table's rows.
CREATE INDEX orders_by_sku_created ON orders (sku, created_at, quantity);

-- Purchases refused, per sale and reason, added to by every server every few seconds.
CREATE TABLE sale_refusals (
    sku      VARCHAR(128)    NOT NULL,
    reason   VARCHAR(64)     NOT NULL,
    refused  BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (sku, reason)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
