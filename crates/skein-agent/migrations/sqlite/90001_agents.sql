-- Agent service: assistants (a draft plus immutable published versions), the conversations
-- started from them (pinned to a version), likes and favourites (one row per user, with
-- counters kept in the same transaction), daily usage, market categories and reports.

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    owner_id         TEXT NOT NULL,
    -- `private`, `link` or `public`.
    visibility       TEXT NOT NULL,
    -- The draft being edited, as JSON (the same shape as a version's spec).
    draft            TEXT NOT NULL,
    -- The version new conversations start with; none before the first publish.
    current_version  INTEGER,
    -- The highest version number given out (a rollback publishes a new number).
    latest_version   INTEGER NOT NULL DEFAULT 0,
    -- The current version's card, copied at publish for the market's lists.
    card_name        TEXT NOT NULL DEFAULT '',
    card_avatar      TEXT NOT NULL DEFAULT '',
    card_description TEXT NOT NULL DEFAULT '',
    card_tags        TEXT NOT NULL DEFAULT '',
    card_category    TEXT,
    -- Lower-cased name, description and tags of the current version, searched with LIKE.
    search_text      TEXT NOT NULL DEFAULT '',
    -- Moderation: an unlisted assistant leaves the market; a featured one leads it.
    listed           INTEGER NOT NULL DEFAULT 1,
    featured         INTEGER NOT NULL DEFAULT 0,
    likes            INTEGER NOT NULL DEFAULT 0,
    favourites       INTEGER NOT NULL DEFAULT 0,
    conversations    INTEGER NOT NULL DEFAULT 0,
    messages         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    published_at     INTEGER,
    deleted_at       INTEGER
);
CREATE INDEX agents_owner ON agents (owner_id, deleted_at, updated_at);
CREATE INDEX agents_market ON agents (visibility, listed, deleted_at, published_at);

-- Immutable: rows are only ever inserted.
CREATE TABLE agent_versions (
    agent_id   TEXT NOT NULL,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    changelog  TEXT NOT NULL,
    author_id  TEXT NOT NULL,
    -- The version this one republished, for rollbacks.
    source_version INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE agent_conversations (
    conversation_id TEXT PRIMARY KEY,
    agent_id        TEXT NOT NULL,
    version         INTEGER NOT NULL,
    user_id         TEXT NOT NULL,
    model           TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX agent_conversations_agent ON agent_conversations (agent_id, created_at);

CREATE TABLE agent_likes (
    agent_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, user_id)
);

CREATE TABLE agent_favourites (
    agent_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, user_id)
);
CREATE INDEX agent_favourites_user ON agent_favourites (user_id, created_at);

-- One row per assistant, UTC day and user: the day's unique users are its rows.
CREATE TABLE agent_usage (
    agent_id      TEXT NOT NULL,
    day           TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    conversations INTEGER NOT NULL DEFAULT 0,
    messages      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, day, user_id)
);

CREATE TABLE agent_categories (
    id         TEXT PRIMARY KEY,
    name_en    TEXT NOT NULL,
    name_zh    TEXT NOT NULL,
    sort       INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE agent_reports (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX agent_reports_open ON agent_reports (resolved_at, created_at);
