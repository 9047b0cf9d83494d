-- Coupons on plans, plan upgrades and downgrades, and expiry reminders.

-- A coupon's scope (applies_to): 'topup', 'plan' or 'all'; plan_ids narrows 'plan' and
-- 'all' to some plans (JSON array; NULL = every plan).
ALTER TABLE coupons ADD COLUMN plan_ids TEXT;

-- An upgrade order replaces subscription change_from: credit_minor is what the unused part
-- of its current period was worth (taken off the price before any coupon), quota_offset the
-- unused part of that period's grant, which stays in the balance and so is taken off the
-- new subscription's first grant.
ALTER TABLE payment_orders ADD COLUMN change_from TEXT;
ALTER TABLE payment_orders ADD COLUMN credit_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payment_orders ADD COLUMN quota_offset BIGINT NOT NULL DEFAULT 0;

-- A downgrade the user scheduled for the end of the paid periods (NULL: none), and what
-- the first period's grant is short by (an upgrade's quota_offset).
ALTER TABLE subscriptions ADD COLUMN scheduled_plan_id TEXT;
ALTER TABLE subscriptions ADD COLUMN first_grant_offset BIGINT NOT NULL DEFAULT 0;

-- Expiry reminders: one row per (subscription, paid periods, kind), inserted before the
-- mail is queued, so restarts and several instances send each reminder at most once per
-- period. kind: 'expiring' (N days before) or 'expired'.
CREATE TABLE subscription_reminders (
    subscription_id TEXT NOT NULL,
    paid_periods    BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    -- 'claimed', 'queued' or 'no_address'.
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, paid_periods, kind)
);
