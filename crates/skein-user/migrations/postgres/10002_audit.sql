-- The audit log of administrators' actions. Rows are only ever inserted: nothing in Skein
-- updates or deletes them.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    actor_id    TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT,
    status      INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    ip          TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (created_at, id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, created_at);
