-- Relay service: fallbacks per group. `group_fallbacks` is a JSON object from a group name to
-- the list of models its keys fall back to, in place of the model's own `fallbacks` (an empty
-- list: no fallbacks for that group).

ALTER TABLE relay_model_routes ADD COLUMN group_fallbacks TEXT NOT NULL DEFAULT '{}';
