-- Relay service: deployment-wide leases, so that one instance at a time does a job every
-- instance may start (applying relay.channels_file). A lease whose until_ms passed is free.
CREATE TABLE relay_leases (
    name      TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until_ms  INTEGER NOT NULL
);
