-- What an administrator's change found, shown as before -> after beside `detail`.
ALTER TABLE audit_log ADD COLUMN before_state TEXT;
