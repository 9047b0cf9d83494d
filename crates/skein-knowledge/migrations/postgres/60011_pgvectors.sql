-- Vectors of ready documents' chunks for pgvector's HNSW index (PostgreSQL only; SQLite scans
-- vectors in memory). Kept as real[] so the table exists whether or not the `vector` extension
-- is installed; the service creates the extension when it can, and one partial HNSW index per
-- vector length over CAST(embedding AS vector(n)) once a base of that length is searched. A
-- row is written in the transaction that makes its document ready and deleted with its chunks,
-- so every row here is searchable (knowledge_chunks.embedding stays the durable copy).
CREATE TABLE knowledge_pgvectors (
    chunk_id    TEXT PRIMARY KEY,
    base_id     TEXT NOT NULL,
    document_id TEXT NOT NULL,
    dims        INTEGER NOT NULL,
    embedding   REAL[] NOT NULL
);
CREATE INDEX knowledge_pgvectors_base ON knowledge_pgvectors (base_id);
CREATE INDEX knowledge_pgvectors_document ON knowledge_pgvectors (document_id);
