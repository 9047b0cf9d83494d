-- Parent-child chunks, a per-base option: small chunks are indexed and matched, and a search
-- hands back the larger section around each (its parent) for context. NULL: off.
ALTER TABLE knowledge_bases ADD COLUMN parent_chunk_tokens BIGINT;
-- The parent section a chunk belongs to, when its base uses parents.
ALTER TABLE knowledge_chunks ADD COLUMN parent_id TEXT;
-- Parent sections: written with their document's chunks, in the same transaction, and deleted
-- with them. Never indexed or embedded themselves.
CREATE TABLE knowledge_chunk_parents (
    id          TEXT PRIMARY KEY,
    base_id     TEXT NOT NULL,
    document_id TEXT NOT NULL,
    position    BIGINT NOT NULL,
    text        TEXT NOT NULL,
    headings    TEXT NOT NULL,
    page_start  BIGINT,
    page_end    BIGINT,
    tokens      BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX knowledge_chunk_parents_document ON knowledge_chunk_parents (document_id);
CREATE INDEX knowledge_chunk_parents_base ON knowledge_chunk_parents (base_id);
