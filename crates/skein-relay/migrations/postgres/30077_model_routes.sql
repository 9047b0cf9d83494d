-- Relay service: model aliases and fallbacks. A row names a public model; `alias_of` (when
-- set) is the model it is served as (its channels, its price, its name on usage records);
-- `fallbacks` is a JSON array of models tried in order, each at its own price, when every
-- channel of the model failed.

CREATE TABLE relay_model_routes (
    model       TEXT PRIMARY KEY,
    alias_of    TEXT,
    fallbacks   TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
