-- Relay service: the response cache, opt-in per group: whether deterministic chat completions
-- are cached, for how long, whether the group's users share answers, and what a hit costs
-- (a percentage of the answer's price; 0 is free). A group with no row caches nothing. Flags are
-- 0/1 integers (the database layer reads no booleans on SQLite).

CREATE TABLE relay_cache_policies (
    group_name          TEXT PRIMARY KEY,
    enabled             BIGINT NOT NULL,
    ttl_secs            BIGINT NOT NULL,
    share_across_users  BIGINT NOT NULL,
    price_percent       BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
