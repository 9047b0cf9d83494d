-- Subscription plans an admin defines, and users' subscriptions to them. A subscription is
-- bought (and renewed) through a payment order with plan_id set; there are no stored cards.
-- Period n of a subscription runs from started_at plus n periods; its quota is granted by
-- one ledger entry with the idempotency key 'subscription:<id>:<n>', so restarts and
-- several instances never grant a period twice.
CREATE TABLE subscription_plans (
    id              TEXT PRIMARY KEY,
    name_en         TEXT NOT NULL,
    name_zh         TEXT NOT NULL,
    currency        TEXT NOT NULL,
    price_minor     INTEGER NOT NULL,
    -- 'month' or 'year'.
    period          TEXT NOT NULL,
    quota_per_period INTEGER NOT NULL,
    -- A user group the subscriber is entitled to, and models the plan is limited to (JSON
    -- array); both NULL when not set.
    group_name      TEXT,
    models          TEXT,
    active          INTEGER NOT NULL DEFAULT 1,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE subscriptions (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    plan_id         TEXT NOT NULL,
    -- active -> expired (the paid periods ran out) | canceled (ran out after the user
    -- canceled at period end).
    status          TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    -- Periods paid for, and periods whose quota was granted (granted <= paid).
    paid_periods    INTEGER NOT NULL,
    granted_periods INTEGER NOT NULL DEFAULT 0,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX subscriptions_user ON subscriptions (user_id, status);
CREATE INDEX subscriptions_status ON subscriptions (status);

-- The plan an order buys (NULL for a top-up), and the subscription it paid for.
ALTER TABLE payment_orders ADD COLUMN plan_id TEXT;
ALTER TABLE payment_orders ADD COLUMN subscription_id TEXT;
