-- The chat comforts: feedback on answers, share links, per-user preferences and the prompt library.

-- A reader's verdict on an answer (thumbs up or down, an optional comment): one row per
-- message, replaced when changed and removed when taken back. Kept apart from
-- chat_messages so an answer's row is never rewritten after it ends.
CREATE TABLE chat_feedback (
    message_id      TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    rating          TEXT NOT NULL,
    comment         TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX chat_feedback_conversation ON chat_feedback (conversation_id, user_id);

-- Read-only links to a conversation: the branch from its first message to `leaf_id` as it
-- was when shared (later messages are not shown). `token` is the link's secret; a revoked
-- link, or one whose conversation was deleted, shows nothing.
CREATE TABLE chat_shares (
    id              TEXT PRIMARY KEY,
    token           TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    leaf_id         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX chat_shares_conversation ON chat_shares (conversation_id, user_id);

-- Each user's chat preferences, the same on every device: the model a new chat starts with,
-- which key sends (`enter`, or `mod_enter` for Ctrl/⌘+Enter), and the text size of the thread.
CREATE TABLE chat_preferences (
    user_id       TEXT PRIMARY KEY,
    default_model TEXT,
    send_key      TEXT NOT NULL,
    font_size     TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- The prompt library: text a user inserts by typing `/command` in the composer. A user's own
-- prompts are theirs; an administrator may share one with every user (`shared` = 1).
CREATE TABLE chat_prompts (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    command    TEXT NOT NULL,
    title      TEXT NOT NULL,
    content    TEXT NOT NULL,
    shared     BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX chat_prompts_command ON chat_prompts (user_id, command);
CREATE INDEX chat_prompts_shared ON chat_prompts (shared);
