-- Plugin service: plugins (built-in, OpenAPI, MCP), who enabled which (with their own
-- settings and sealed secrets), per-conversation toggles, and the admin's settings.

-- A plugin: published by an admin (owner_id NULL, everyone sees it) or private to its owner.
-- `tools` is the JSON array of tools it offers (name, description, parameters, and for an
-- OpenAPI operation its method, path and where each parameter goes). `auth_secret` is sealed
-- with AES-256-GCM bound to the plugin id and never returned.
CREATE TABLE plugins (
    id              TEXT PRIMARY KEY,
    owner_id        TEXT,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    icon            TEXT NOT NULL DEFAULT '',
    category        TEXT NOT NULL DEFAULT 'other',
    kind            TEXT NOT NULL,
    builtin         TEXT,
    base_url        TEXT NOT NULL DEFAULT '',
    tools           TEXT NOT NULL DEFAULT '[]',
    auth_kind       TEXT NOT NULL DEFAULT 'none',
    auth_name       TEXT NOT NULL DEFAULT '',
    auth_secret     TEXT,
    settings_schema TEXT NOT NULL DEFAULT '{}',
    required_secrets TEXT NOT NULL DEFAULT '[]',
    calls           BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX plugins_owner ON plugins (owner_id);

-- A user's choice for a plugin: enabled or not, their settings, their sealed secrets
-- (a JSON object of name → value, sealed bound to user and plugin), their call count.
CREATE TABLE plugin_enablements (
    user_id    TEXT NOT NULL,
    plugin_id  TEXT NOT NULL,
    enabled    BIGINT NOT NULL DEFAULT 0,
    settings   TEXT NOT NULL DEFAULT '{}',
    secrets    TEXT,
    calls      BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, plugin_id)
);

-- A conversation's own toggle of a plugin, over the user's choice.
CREATE TABLE plugin_conversation_tools (
    user_id         TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    plugin_id       TEXT NOT NULL,
    enabled         BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id, plugin_id)
);

-- The admin's settings (the search provider with its sealed key, the image model, whether
-- tools may reach private addresses), one JSON value per key.
CREATE TABLE plugin_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The built-in plugins; their tools are made in code.
INSERT INTO plugins (id, owner_id, name, description, icon, category, kind, builtin, created_at, updated_at)
VALUES ('builtin-web-search', NULL, 'Web search', 'Searches the web and cites what it finds.', 'search', 'search', 'builtin', 'web_search', 0, 0);
INSERT INTO plugins (id, owner_id, name, description, icon, category, kind, builtin, created_at, updated_at)
VALUES ('builtin-image', NULL, 'Image generation', 'Draws an image from a description.', 'image', 'creative', 'builtin', 'image_generation', 0, 0);
