//! Who a request acts as, in the terms every service shares: an account's [`Role`].
//!
//! Kept apart from `auth` (tokens and extractors) and `api` (the traits between services) so
//! both can name a role without depending on each other.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an account may do. Ordered: `User < Admin < Root`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A member: chats, keys, own usage.
    User,
    /// Manages users, channels, prices.
    Admin,
    /// The owner: everything an admin can, plus granting and removing admins.
    Root,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Root => "root",
        }
    }
}

impl FromStr for Role {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            "root" => Ok(Role::Root),
            _ => Err(()),
        }
    }
}
