-- One answer at a time per conversation, across every instance of a deployment: the instance
-- writing an answer holds its conversation's row, renewing `expires_at` while it writes, so a
-- crashed instance's lock lapses on its own. Stop and re-attach requests find the answer's
-- writer through `message_id`.
CREATE TABLE chat_answer_locks (
    conversation_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX chat_answer_locks_message ON chat_answer_locks (message_id);
