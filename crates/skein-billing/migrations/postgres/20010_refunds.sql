-- Refunds of paid top-up orders, started by an admin. The user's balance is debited by the
-- refunded quota when the refund is made (one ledger entry, idempotency key 'refund:<id>'),
-- in the same transaction that inserts this row with the order row locked, so concurrent
-- clicks can never refund more than was paid. A refund the provider turns down is credited
-- back ('refund_reversal:<id>').
CREATE TABLE payment_refunds (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    -- What goes back to the payer, in the order's minor unit.
    amount_minor    BIGINT NOT NULL,
    -- Quota units taken off the balance for it.
    quota           BIGINT NOT NULL,
    -- pending -> succeeded | failed; 'manual' refunds (money returned outside Skein) start
    -- as succeeded.
    status          TEXT NOT NULL,
    manual          BIGINT NOT NULL DEFAULT 0,
    -- 1: the admin allowed the debit to take the balance below zero.
    forced          BIGINT NOT NULL DEFAULT 0,
    provider_ref    TEXT,
    reason          TEXT NOT NULL,
    note            TEXT,
    actor_id        TEXT NOT NULL,
    -- The admin's Idempotency-Key: the same key twice is the same refund.
    request_key     TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX payment_refunds_order ON payment_refunds (order_id, created_at);
CREATE INDEX payment_refunds_status ON payment_refunds (status, created_at);
CREATE UNIQUE INDEX payment_refunds_request_key ON payment_refunds (request_key);
