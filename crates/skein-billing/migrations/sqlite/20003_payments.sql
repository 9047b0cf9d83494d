-- Top-up orders paid through a payment provider (EPay, Stripe).
-- An order is credited exactly once: the statement that moves it to 'paid' is the one that
-- inserts its ledger entry (idempotency key 'payment:<order id>'), in one transaction.
CREATE TABLE payment_orders (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    provider     TEXT NOT NULL,
    method       TEXT,
    currency     TEXT NOT NULL,
    -- What the user pays, in the currency's minor unit (fen, cents).
    amount_minor INTEGER NOT NULL,
    -- Quota units credited when it is paid.
    quota        INTEGER NOT NULL,
    -- pending -> paid; pending -> expired -> paid (a late payment still counts);
    -- pending -> failed (a notification whose amount or currency did not match).
    status       TEXT NOT NULL,
    provider_ref TEXT,
    note         TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    paid_at      INTEGER
);
CREATE INDEX payment_orders_user ON payment_orders (user_id, created_at);
CREATE INDEX payment_orders_status ON payment_orders (status, created_at);
