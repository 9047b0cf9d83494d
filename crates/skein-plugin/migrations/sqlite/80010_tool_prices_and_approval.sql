-- Paid tools and approvals: an admin sets a price per call for a plugin (and, over it, per
-- tool), and whether its calls wait for the user's approval before they run.
ALTER TABLE plugins ADD COLUMN price_per_call BIGINT NOT NULL DEFAULT 0;
ALTER TABLE plugins ADD COLUMN tool_prices TEXT NOT NULL DEFAULT '{}';
ALTER TABLE plugins ADD COLUMN requires_approval INTEGER NOT NULL DEFAULT 0;

-- One row per paid call, keyed by the call's own key (request, round, call id): a call that
-- is run again under the same key is never charged twice. `status` is `held` while the tool
-- runs, then `charged` or `released` (a call that failed is not charged).
CREATE TABLE plugin_tool_charges (
    call_key       TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    plugin_id      TEXT NOT NULL,
    tool           TEXT NOT NULL,
    price          BIGINT NOT NULL,
    reservation_id TEXT,
    status         TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX plugin_tool_charges_user ON plugin_tool_charges (user_id, created_at);
