-- Chat service: conversations and their message trees. Messages are never overwritten:
-- an edit or a regeneration adds a sibling under the same parent.

CREATE TABLE chat_conversations (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    title          TEXT NOT NULL,
    pinned         BIGINT NOT NULL DEFAULT 0,
    archived       BIGINT NOT NULL DEFAULT 0,
    model          TEXT,
    system_prompt  TEXT,
    temperature    DOUBLE PRECISION,
    top_p          DOUBLE PRECISION,
    max_tokens     BIGINT,
    history_limit  BIGINT,
    active_leaf_id TEXT,
    summary        TEXT,
    summary_upto   TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);
CREATE INDEX chat_conversations_user ON chat_conversations (user_id, deleted_at, updated_at);

CREATE TABLE chat_messages (
    id                TEXT PRIMARY KEY,
    conversation_id   TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    parent_id         TEXT,
    role              TEXT NOT NULL,
    content           TEXT NOT NULL,
    reasoning         TEXT,
    images            TEXT,
    status            TEXT NOT NULL,
    model             TEXT,
    error             TEXT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    cost              BIGINT,
    context           TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX chat_messages_conversation ON chat_messages (conversation_id, created_at);
CREATE INDEX chat_messages_user ON chat_messages (user_id);
