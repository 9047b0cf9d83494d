-- Money that cannot leak: a ledger in commit order, and what a charge beyond its hold cost.

-- Each account's entries are numbered in the order its balance moved: the statement that
-- moves the balance also advances `seq`, so every instance on one database agrees on the
-- order (ids come from each instance's clock and cannot).
ALTER TABLE billing_accounts ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_entries ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;

-- Existing entries keep the order they had (by id).
UPDATE ledger_entries SET seq = r.n
FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id) AS n FROM ledger_entries) AS r
WHERE ledger_entries.id = r.id;
UPDATE billing_accounts SET seq = COALESCE(
    (SELECT MAX(l.seq) FROM ledger_entries l WHERE l.user_id = billing_accounts.user_id), 0);

DROP INDEX ledger_entries_user;
CREATE UNIQUE INDEX ledger_entries_user_seq ON ledger_entries (user_id, seq);

-- Anthropic cache writes, billed apart from cache reads.
ALTER TABLE usage_records ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
-- cost - held when the cost went beyond the hold (how far the estimate missed).
ALTER TABLE usage_records ADD COLUMN overrun BIGINT NOT NULL DEFAULT 0;
-- cost - charged when the overdraft limit stopped the charge (usage_records.cost is what
-- was charged).
ALTER TABLE usage_records ADD COLUMN uncollected BIGINT NOT NULL DEFAULT 0;

-- The same two numbers on the hold, so a retried settle answers what the first one did.
ALTER TABLE reservations ADD COLUMN overrun BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN uncollected BIGINT NOT NULL DEFAULT 0;
