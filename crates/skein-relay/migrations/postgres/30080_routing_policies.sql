-- Relay service: routing that learns. A group's routing strategy (priority, latency, errors,
-- cost, balance) and the share of its requests that explore; a group with no row routes by
-- priority. A channel's upstream cost relative to the model's price list (per-mille), for
-- the cost strategy.

CREATE TABLE relay_routing_policies (
    group_name       TEXT PRIMARY KEY,
    strategy         TEXT NOT NULL,
    explore_percent  BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

ALTER TABLE channels ADD COLUMN cost_ratio_permille BIGINT NOT NULL DEFAULT 1000;
