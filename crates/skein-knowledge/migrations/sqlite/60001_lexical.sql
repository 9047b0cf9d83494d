-- The lexical (BM25) index of knowledge chunks. `terms` is the chunk's text already segmented
-- by skein-text (Chinese cut into words, English lower-cased), space-separated, because FTS5's
-- tokenizers do not segment Chinese. FTS5 indexes it as external content, so the row keeps the
-- ids to filter and delete by, and FTS5 ranks with its built-in bm25().
CREATE TABLE knowledge_lexical_chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    base_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    terms TEXT NOT NULL,
    term_count INTEGER NOT NULL
);
CREATE INDEX knowledge_lexical_chunks_base ON knowledge_lexical_chunks (base_id);
CREATE INDEX knowledge_lexical_chunks_document ON knowledge_lexical_chunks (document_id);

-- base_id is an indexed column so a search filters by base inside the FTS index; bm25() gives
-- it weight 0.
CREATE VIRTUAL TABLE knowledge_lexical_fts USING fts5(
    terms,
    base_id,
    content = 'knowledge_lexical_chunks',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER knowledge_lexical_chunks_insert AFTER INSERT ON knowledge_lexical_chunks BEGIN
    INSERT INTO knowledge_lexical_fts (rowid, terms, base_id) VALUES (new.id, new.terms, new.base_id);
END;

CREATE TRIGGER knowledge_lexical_chunks_delete AFTER DELETE ON knowledge_lexical_chunks BEGIN
    INSERT INTO knowledge_lexical_fts (knowledge_lexical_fts, rowid, terms, base_id)
    VALUES ('delete', old.id, old.terms, old.base_id);
END;
