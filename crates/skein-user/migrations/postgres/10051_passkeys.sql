-- Passkeys (WebAuthn). Times are milliseconds since the Unix epoch (UTC).

-- A credential registered to an account: its id and COSE public key (base64url, as the
-- authenticator sent them), COSE algorithm (-7 ES256, -257 RS256) and signature counter.
-- Public keys are not secrets: a copy of this table signs nobody in.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    credential_id TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    algorithm     BIGINT NOT NULL,
    sign_count    BIGINT NOT NULL,
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX passkeys_credential_id ON passkeys (credential_id);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

-- A ceremony's challenge, kept server-side as its SHA-256 hash: purpose `register` (user_id:
-- the account adding a key), `sign_in` (anyone) or `second_factor` (user_id: the account
-- whose password step passed; login_challenge: that step's challenge hash). Used once
-- (used_at), only until expires_at.
CREATE TABLE passkey_challenges (
    challenge_hash  TEXT PRIMARY KEY,
    purpose         TEXT NOT NULL,
    user_id         TEXT,
    login_challenge TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX passkey_challenges_expires_at ON passkey_challenges (expires_at);
