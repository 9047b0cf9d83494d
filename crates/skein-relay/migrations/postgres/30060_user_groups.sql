-- Relay service: the price groups each user may put API keys in, set by admins. Groups carry
-- price multipliers, so users are given groups, never choose them. A user with no row may use
-- relay.default_user_groups; a row with [] may use none.

CREATE TABLE relay_user_groups (
    user_id      TEXT PRIMARY KEY,
    groups_list  TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
