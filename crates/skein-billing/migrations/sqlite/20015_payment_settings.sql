-- Payment settings an admin stored (Admin → Payments), over the file's [billing.payment]: one
-- row per setting (`currency`, `min_amount`, ..., a provider's whole section as `epay`), its
-- value as JSON; a provider's secrets inside it are sealed. A setting without a row is the
-- file's.
CREATE TABLE payment_settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
