-- Upload sessions: a large file sent in numbered parts (resumable after a dropped connection,
-- straight to the store on S3 through presigned part URLs), assembled and checked like any
-- upload when the client completes it. Parts live under `uploads/<id>/` in the store; that
-- prefix is queued in `file_sweep` for the session's expiry when the session is made, so an
-- abandoned session's bytes are swept even if no one ever calls abort.
CREATE TABLE file_uploads (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    size       BIGINT NOT NULL,
    part_size  BIGINT NOT NULL,
    part_count BIGINT NOT NULL,
    -- `open`, or `completing` while one completion assembles it (a second one waits its turn).
    state      TEXT NOT NULL DEFAULT 'open',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX file_uploads_user ON file_uploads (user_id, created_at);
CREATE INDEX file_uploads_expiry ON file_uploads (expires_at);

-- The type of an object's variants (`image/webp` with `file.image_format = "webp"`); NULL for
-- JPEG, which every variant made before was.
ALTER TABLE file_objects ADD COLUMN variant_type TEXT;
