-- Relay service: a group's routing may be sticky — the same conversation or API key goes to the
-- same channel among those its strategy finds equal, so vendors' prompt caches keep hitting.
ALTER TABLE relay_routing_policies ADD COLUMN sticky INTEGER NOT NULL DEFAULT 0;
