-- Refunds show in their order's state: paid -> partially_refunded -> refunded, counting the
-- refunds that did not fail (pending or succeeded); a refund the provider turns down moves
-- the order back. And a refund of a plan order changes the subscription it paid for, which
-- the refund records so that a failed refund can give it back (see payment/refund.rs):
-- the subscription it changed,
ALTER TABLE payment_refunds ADD COLUMN subscription_id TEXT;
-- the paid periods it took off (0 or 1),
ALTER TABLE payment_refunds ADD COLUMN periods BIGINT NOT NULL DEFAULT 0;
-- and 1 when it took back the period in progress (its grant debited) and so ended the
-- subscription (status 'refunded').
ALTER TABLE payment_refunds ADD COLUMN ended_subscription BIGINT NOT NULL DEFAULT 0;

-- Orders refunded before this migration get their state.
UPDATE payment_orders SET status = CASE
    WHEN (SELECT COALESCE(SUM(r.amount_minor), 0) FROM payment_refunds r
          WHERE r.order_id = payment_orders.id AND r.status <> 'failed') >= amount_minor
    THEN 'refunded' ELSE 'partially_refunded' END
WHERE status = 'paid'
  AND EXISTS (SELECT 1 FROM payment_refunds r WHERE r.order_id = payment_orders.id AND r.status <> 'failed');
