-- Relay service: responses of the OpenAI Responses API kept for previous_response_id,
-- GET /v1/responses/{id} and background mode. One row per response: the input items its
-- request added (the conversation before it is its previous response's), and the response
-- object as the client received it. Rows are the user's: every read names the owner.
-- Pruned after relay.responses_retention_days.

CREATE TABLE relay_responses (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    previous_id  TEXT,
    status       TEXT NOT NULL,
    background   BIGINT NOT NULL,
    input        TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX relay_responses_time ON relay_responses (created_at);
CREATE INDEX relay_responses_open ON relay_responses (status, updated_at);
