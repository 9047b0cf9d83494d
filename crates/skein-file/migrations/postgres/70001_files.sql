-- File service: stored objects (one per owner and content), the files that name them, the
-- storage keys waiting to be deleted, and share links.

-- One stored object per (owner, SHA-256): uploading the same content again adds a file row
-- and no bytes.
CREATE TABLE file_objects (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    width        BIGINT,
    height       BIGINT,
    page_count   BIGINT,
    -- Comma-separated variants ready in storage (`thumb,web`).
    variants     TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX file_objects_user_sha ON file_objects (user_id, sha256);

CREATE TABLE files (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    -- The foreign key makes a delete of a still-named object fail instead of losing bytes.
    object_id  TEXT NOT NULL REFERENCES file_objects (id),
    name       TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX files_user ON files (user_id, created_at);
CREATE INDEX files_object ON files (object_id);

-- Storage keys to delete once `due_at` has passed: written before a key can be orphaned (an
-- upload in progress, an object losing its last file), removed once it is safe, so a crash at
-- any point leaves a row the sweeper finishes.
CREATE TABLE file_sweep (
    storage_key TEXT PRIMARY KEY,
    due_at      BIGINT NOT NULL
);
CREATE INDEX file_sweep_due ON file_sweep (due_at);

CREATE TABLE file_shares (
    id            TEXT PRIMARY KEY,
    token         TEXT NOT NULL UNIQUE,
    file_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    password_hash TEXT,
    expires_at    BIGINT,
    max_downloads BIGINT,
    downloads     BIGINT NOT NULL DEFAULT 0,
    revoked_at    BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX file_shares_file ON file_shares (file_id);
