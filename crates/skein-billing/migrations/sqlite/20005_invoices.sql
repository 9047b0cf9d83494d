-- Invoice requests (增值税发票) for paid top-up orders, reviewed by admins.
CREATE TABLE invoices (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    -- 'normal' (增值税普通发票) or 'special' (增值税专用发票).
    kind         TEXT NOT NULL,
    title        TEXT NOT NULL,
    tax_id       TEXT,
    -- Registered address and telephone, bank and account (needed for 'special').
    address      TEXT,
    bank_account TEXT,
    email        TEXT NOT NULL,
    currency     TEXT NOT NULL,
    -- The sum of its orders' paid amounts, in minor units.
    amount_minor INTEGER NOT NULL,
    -- requested -> issued | rejected.
    status       TEXT NOT NULL,
    reason       TEXT,
    number       TEXT,
    -- The issued PDF in the File service, owned by the admin who uploaded it.
    file_id      TEXT,
    file_owner   TEXT,
    reviewed_by  TEXT,
    reviewed_at  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX invoices_user ON invoices (user_id, created_at);
CREATE INDEX invoices_status ON invoices (status, created_at);

-- The orders an invoice covers. The primary key is what keeps an order on at most one
-- invoice, even when two requests race; a rejected invoice's rows are deleted, so its
-- orders can be asked for again.
CREATE TABLE invoice_orders (
    order_id   TEXT PRIMARY KEY,
    invoice_id TEXT NOT NULL
);
CREATE INDEX invoice_orders_invoice ON invoice_orders (invoice_id);
