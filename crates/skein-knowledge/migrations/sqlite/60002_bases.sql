-- Knowledge bases, who else may use them, their documents, chunks (with embeddings), the
-- durable ingestion queue, and the bases attached to chat conversations.

CREATE TABLE knowledge_bases (
    id                   TEXT PRIMARY KEY,
    owner_id             TEXT NOT NULL,
    name                 TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    -- NULL: no embedding model, lexical search only.
    embedding_model      TEXT,
    rerank_model         TEXT,
    chunk_max_tokens     BIGINT NOT NULL,
    chunk_overlap_tokens BIGINT NOT NULL,
    -- 'private' (owner and shares) or 'public' (every user may read).
    visibility           TEXT NOT NULL DEFAULT 'private',
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX knowledge_bases_owner ON knowledge_bases (owner_id, created_at);
CREATE INDEX knowledge_bases_visibility ON knowledge_bases (visibility);

CREATE TABLE knowledge_shares (
    base_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    -- 'read' or 'write'.
    permission TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (base_id, user_id)
);
CREATE INDEX knowledge_shares_user ON knowledge_shares (user_id);

CREATE TABLE knowledge_documents (
    id             TEXT PRIMARY KEY,
    base_id        TEXT NOT NULL,
    file_id        TEXT NOT NULL,
    -- Whose file it is (who added it): the worker reads it as that user.
    file_owner_id  TEXT NOT NULL,
    name           TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           BIGINT NOT NULL,
    -- queued, extracting, embedding, ready, failed. Only 'ready' documents are searched.
    status         TEXT NOT NULL,
    progress_done  BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT NOT NULL DEFAULT 0,
    -- NULL until the document is chunked (chunks are written in one transaction with it).
    chunk_count    BIGINT,
    error          TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX knowledge_documents_base ON knowledge_documents (base_id, created_at);

-- A document's chunks, written once per indexing; (document_id, position) is unique so a
-- resumed job can never add a chunk twice. embedding: little-endian f32s, NULL until embedded.
CREATE TABLE knowledge_chunks (
    id          TEXT PRIMARY KEY,
    base_id     TEXT NOT NULL,
    document_id TEXT NOT NULL,
    position    BIGINT NOT NULL,
    text        TEXT NOT NULL,
    headings    TEXT NOT NULL,
    page_start  BIGINT,
    page_end    BIGINT,
    tokens      BIGINT NOT NULL,
    embedding   BLOB,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX knowledge_chunks_position ON knowledge_chunks (document_id, position);
CREATE INDEX knowledge_chunks_base ON knowledge_chunks (base_id);

-- One ingestion job per document. Any instance claims a due job by setting lease_owner and
-- lease_until; a job whose lease ran out (its instance died) is claimed again and resumes
-- from what was committed.
CREATE TABLE knowledge_jobs (
    document_id TEXT PRIMARY KEY,
    base_id     TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    run_after   BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX knowledge_jobs_due ON knowledge_jobs (run_after);

-- Bases a user attached to one of their chat conversations (keyed by the user too: a
-- conversation id alone proves nothing here, the Chat service owns conversations).
CREATE TABLE knowledge_conversation_bases (
    user_id         TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    base_id         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id, base_id)
);
CREATE INDEX knowledge_conversation_bases_base ON knowledge_conversation_bases (base_id);
