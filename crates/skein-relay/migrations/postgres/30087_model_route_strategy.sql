-- Relay service: a model may route its channels by a strategy of its own, in place of its
-- group's (NULL: the group's).
ALTER TABLE relay_model_routes ADD COLUMN strategy TEXT;
