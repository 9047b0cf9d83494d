-- Relay service: each channel's upstream balance as its vendor last reported it (where the
-- vendor has a balance endpoint), and the threshold under which the channel is tried last
-- and shown as low.

ALTER TABLE channels ADD COLUMN balance DOUBLE PRECISION;
ALTER TABLE channels ADD COLUMN balance_currency TEXT;
ALTER TABLE channels ADD COLUMN balance_at BIGINT;
ALTER TABLE channels ADD COLUMN low_balance_threshold DOUBLE PRECISION;
