-- Monthly statements mailed by the scheduler: one row per (user, month), inserted before
-- the mail is queued, so restarts and several instances mail each statement at most once.
CREATE TABLE statement_mails (
    user_id     TEXT NOT NULL,
    -- YYYY-MM, in billing.statement_utc_offset_minutes.
    month       TEXT NOT NULL,
    -- 'queued' (handed to the mail queue) or 'no_address' (no verified address, or mail off).
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, month)
);
