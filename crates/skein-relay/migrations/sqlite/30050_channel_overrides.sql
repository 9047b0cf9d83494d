-- Relay service: per-channel parameter overrides (a JSON object merged into the body sent
-- upstream, e.g. a fixed temperature or a vendor-specific field).

ALTER TABLE channels ADD COLUMN param_overrides TEXT NOT NULL DEFAULT '{}';
