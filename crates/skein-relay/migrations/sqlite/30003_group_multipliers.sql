-- Relay service: a price multiplier per channel group (the group an API key names), in
-- per-mille: 1000 bills at the model's rates, 800 at 0.8 times them. A group with no row
-- bills at 1000.

CREATE TABLE group_multipliers (
    group_name           TEXT PRIMARY KEY,
    multiplier_permille  INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
