-- Per-base statistics of the lexical index, kept in the same transaction as every change to
-- knowledge_lexical_chunks: how many chunks and terms (BM25's N and average length without
-- reading every row per query), and a generation bumped on each change, which tells an
-- in-memory copy of the base's index (on this instance or any other) that it is stale with
-- one primary-key read.
CREATE TABLE knowledge_lexical_bases (
    base_id     TEXT PRIMARY KEY,
    generation  BIGINT NOT NULL,
    chunks      BIGINT NOT NULL,
    total_terms BIGINT NOT NULL
);
INSERT INTO knowledge_lexical_bases (base_id, generation, chunks, total_terms)
SELECT base_id, 1, COUNT(*), COALESCE(SUM(term_count), 0)
FROM knowledge_lexical_chunks GROUP BY base_id;
