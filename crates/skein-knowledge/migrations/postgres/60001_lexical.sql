-- The lexical (BM25) index of knowledge chunks. `terms` is the chunk's text already segmented
-- by skein-text (Chinese cut into words, English lower-cased), space-separated. `tsv` is built
-- from those terms by Skein (a tsvector literal with positions), never by PostgreSQL's parser,
-- which neither segments Chinese nor keeps CJK characters under every locale. The GIN index
-- finds candidates; BM25 is computed from the positions (term frequency), term_count and the
-- base's statistics.
CREATE TABLE knowledge_lexical_chunks (
    chunk_id TEXT PRIMARY KEY,
    base_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    terms TEXT NOT NULL,
    term_count INTEGER NOT NULL,
    tsv TSVECTOR NOT NULL
);
CREATE INDEX knowledge_lexical_chunks_base ON knowledge_lexical_chunks (base_id);
CREATE INDEX knowledge_lexical_chunks_document ON knowledge_lexical_chunks (document_id);
CREATE INDEX knowledge_lexical_chunks_tsv ON knowledge_lexical_chunks USING GIN (tsv);
