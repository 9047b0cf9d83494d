-- The market without full scans: each published card's words in an index table, a stored
-- trending score, and, over the listed public cards only, one index per order (so a page is
-- read in order instead of sorted) and one with what a search checks on each candidate (so
-- the check reads the index and not the card's row, whose draft makes it large). The
-- conditions are the market query's own, word for word, so both databases use them.

CREATE TABLE agent_terms (
    term     TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    PRIMARY KEY (term, agent_id)
);
-- A card's own words, for checking a second word on each candidate and re-indexing.
CREATE INDEX agent_terms_agent ON agent_terms (agent_id, term);

-- `search::TERMS_VERSION` the card was indexed with; older ones are indexed again at start.
ALTER TABLE agents ADD COLUMN terms_version INTEGER NOT NULL DEFAULT 0;
-- Reactions and use over the days since publish, refreshed on each change and hourly.
ALTER TABLE agents ADD COLUMN trend_score INTEGER NOT NULL DEFAULT 0;

DROP INDEX agents_market;
CREATE INDEX agents_market_newest ON agents (published_at, id) WHERE visibility = 'public' AND listed = 1 AND deleted_at IS NULL AND published_at IS NOT NULL;
CREATE INDEX agents_market_trending ON agents (featured, trend_score, published_at, id) WHERE visibility = 'public' AND listed = 1 AND deleted_at IS NULL AND published_at IS NOT NULL;
CREATE INDEX agents_market_liked ON agents (likes, published_at, id) WHERE visibility = 'public' AND listed = 1 AND deleted_at IS NULL AND published_at IS NOT NULL;
CREATE INDEX agents_market_used ON agents (conversations, published_at, id) WHERE visibility = 'public' AND listed = 1 AND deleted_at IS NULL AND published_at IS NOT NULL;
CREATE INDEX agents_market_card ON agents (id, featured, trend_score, likes, conversations, published_at, card_category, search_text) WHERE visibility = 'public' AND listed = 1 AND deleted_at IS NULL AND published_at IS NOT NULL;
