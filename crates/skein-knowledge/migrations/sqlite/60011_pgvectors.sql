-- PostgreSQL's migration 60011 adds the pgvector table; SQLite scans vectors in memory and
-- has nothing to add (kept so both backends count the same migrations).
SELECT 1;
