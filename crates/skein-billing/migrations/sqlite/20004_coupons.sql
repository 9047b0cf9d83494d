-- Coupons: discounts at checkout (a top-up pays less for the same quota). Distinct from
-- redemption codes, which credit quota directly and stay as they are.
CREATE TABLE coupons (
    id                  TEXT PRIMARY KEY,
    -- What users type, stored upper case.
    code                TEXT NOT NULL,
    name                TEXT NOT NULL,
    -- 'percent' (percent_off of the amount) or 'fixed' (amount_off minor units).
    kind                TEXT NOT NULL,
    percent_off         INTEGER NOT NULL DEFAULT 0,
    amount_off          INTEGER NOT NULL DEFAULT 0,
    -- The payment currency amount_off and min_spend are in.
    currency            TEXT NOT NULL,
    -- The smallest order (before the discount) it applies to, in minor units.
    min_spend           INTEGER NOT NULL DEFAULT 0,
    -- What it applies to: 'topup' (plans later).
    applies_to          TEXT NOT NULL DEFAULT 'topup',
    starts_at           INTEGER,
    ends_at             INTEGER,
    -- Most redemptions in all / per user; NULL is no limit.
    total_limit         INTEGER,
    per_user_limit      INTEGER,
    -- 1: only for a user without a paid order.
    first_purchase_only INTEGER NOT NULL DEFAULT 0,
    disabled            INTEGER NOT NULL DEFAULT 0,
    created_by          TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE UNIQUE INDEX coupons_code ON coupons (code);

-- One row per order that used a coupon. A redemption counts against the limits while it is
-- 'held' (its order is pending) or 'used' (paid); an order that expires or fails releases it.
-- It is claimed in the statement that inserts the order, with the coupon row locked, so
-- concurrent checkouts cannot both take the last use.
CREATE TABLE coupon_redemptions (
    id         TEXT PRIMARY KEY,
    coupon_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    discount   INTEGER NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX coupon_redemptions_order ON coupon_redemptions (order_id);
CREATE INDEX coupon_redemptions_coupon ON coupon_redemptions (coupon_id, user_id, status);

-- An order's coupon and what it took off; amount_minor stays what is paid, and the quota
-- is what the amount before the discount buys.
ALTER TABLE payment_orders ADD COLUMN coupon_id TEXT;
ALTER TABLE payment_orders ADD COLUMN discount_minor INTEGER NOT NULL DEFAULT 0;
