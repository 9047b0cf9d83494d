-- System settings an administrator changed at run time (Admin > Settings). A setting with no
-- row is the configuration file's value, so deleting a row resets it. `value` is the JSON of
-- the setting's typed value, checked by the service before it is written.
CREATE TABLE system_settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT
);

-- Each user's own display choices that override the system's (currency: units, usd or cny;
-- NULL follows the system setting).
CREATE TABLE user_preferences (
    user_id    TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    currency   TEXT,
    updated_at BIGINT NOT NULL
);
