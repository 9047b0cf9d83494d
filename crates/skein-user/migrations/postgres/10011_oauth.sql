-- Sign-in with OAuth 2.0 / OpenID Connect providers (GitHub, Google, Microsoft, any OIDC
-- issuer, WeChat). Times are milliseconds since the Unix epoch (UTC); flags are 0/1 integers.

-- 0 for an account made by a provider sign-in: its password hash is of a random secret nobody
-- knows, so it cannot lose its last provider (a reset link sets a real password and a 1).
ALTER TABLE users ADD COLUMN password_login BIGINT NOT NULL DEFAULT 1;

-- Providers an admin added through the API (those of the configuration file are not stored).
-- The client secret is write-only: the API never answers it.
CREATE TABLE oauth_providers (
    slug          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    issuer        TEXT,
    tenant        TEXT,
    scopes        TEXT,
    authorize_url TEXT,
    token_url     TEXT,
    api_url       TEXT,
    link_by_email BIGINT NOT NULL DEFAULT 0,
    enabled       BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- An account's identity at a provider: the provider's stable subject (OIDC `sub`, GitHub's
-- numeric id, WeChat's unionid or openid). One identity belongs to one account.
CREATE TABLE oauth_identities (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    provider     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    email        TEXT,
    display_name TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX oauth_identities_subject ON oauth_identities (provider, subject);
CREATE INDEX oauth_identities_user_id ON oauth_identities (user_id);

-- A started sign-in: the `state` sent to the provider (as a SHA-256 hash), the browser it was
-- started in (hash of the `skein_oauth` cookie), the PKCE verifier and the OIDC nonce. Used once
-- (used_at) and only until expires_at.
CREATE TABLE oauth_states (
    state_hash    TEXT PRIMARY KEY,
    browser_hash  TEXT NOT NULL,
    provider      TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    link_user_id  TEXT,
    invite_code   TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);
