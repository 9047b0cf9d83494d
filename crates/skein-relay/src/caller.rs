//! Who a relayed call is for: an API key's client or a service acting for a signed-in user.
//! Its own module, below both `pipeline` (which routes and bills by it) and `journal` (which
//! records it), so neither reaches into the other for it.

use skein_core::api::{KeyInfo, KeyLimit};

/// Who a relayed call is for.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A client with an API key: the key's group, model list, quota and per-minute limits
    /// apply, and its spending is counted on the key.
    Key(KeyInfo),
    /// A service acting for a signed-in user (Chat): charged to the user alone, in the
    /// service's group, with the conversation on the record.
    User {
        /// Whose balance pays.
        user_id: String,
        /// Channel group to route through.
        group: String,
        /// The chat conversation the call belongs to, for the usage record.
        conversation_id: Option<String>,
    },
}

impl Caller {
    /// Whose balance pays.
    pub fn user_id(&self) -> &str {
        match self {
            Caller::Key(key) => &key.user_id,
            Caller::User { user_id, .. } => user_id,
        }
    }

    /// The channel group the call routes through.
    pub fn group(&self) -> &str {
        match self {
            Caller::Key(key) => &key.group,
            Caller::User { group, .. } => group,
        }
    }

    /// The API key, for a key's caller.
    pub fn key(&self) -> Option<&KeyInfo> {
        match self {
            Caller::Key(key) => Some(key),
            Caller::User { .. } => None,
        }
    }

    /// Whether the caller may use `model` (a service's user may use any routed model).
    pub fn allows_model(&self, model: &str) -> bool {
        self.key().is_none_or(|key| key.allows_model(model))
    }

    /// The key's own spending limit for a hold, if the caller is a key.
    pub fn key_limit(&self) -> Option<KeyLimit> {
        self.key().map(|key| KeyLimit {
            key_id: key.key_id.clone(),
            limit: key.quota_limit,
        })
    }

    /// The conversation a service's call belongs to.
    pub fn conversation_id(&self) -> Option<&str> {
        match self {
            Caller::Key(_) => None,
            Caller::User {
                conversation_id, ..
            } => conversation_id.as_deref(),
        }
    }

    /// What a sticky group keeps on one channel: a service's conversation (else its user), or
    /// the API key, whose client usually is one application with one prompt prefix.
    pub fn sticky_key(&self) -> Option<&str> {
        match self {
            Caller::Key(key) => Some(&key.key_id),
            Caller::User {
                conversation_id,
                user_id,
                ..
            } => Some(conversation_id.as_deref().unwrap_or(user_id)),
        }
    }

    /// Whether an answer waits for its settle. A service acting for a user shows that user
    /// the exact charge, so it waits for it; an API-key client gets its answer as soon as it
    /// is read (the hold already bounds what it can cost) and the settle follows.
    pub fn settles_before_answer(&self) -> bool {
        matches!(self, Caller::User { .. })
    }

    /// The key's id for logs, or `user` for a service's call.
    pub fn label(&self) -> &str {
        self.key().map_or("user", |key| key.key_id.as_str())
    }
}
