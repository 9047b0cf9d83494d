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

/// Decoding a stored role (`#[sqlx(try_from = "String")]` on rows). A name this build does
/// not know (written by a newer version) reads as the least privilege, never as more.
impl From<String> for Role {
    fn from(name: String) -> Self {
        name.parse().unwrap_or(Role::User)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip_and_an_unknown_one_is_the_least_privilege() {
        for role in [Role::User, Role::Admin, Role::Root] {
            assert_eq!(Role::from(role.as_str().to_string()), role);
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::json!(role.as_str())
            );
        }
        assert_eq!(Role::from("superuser".to_string()), Role::User);
        assert_eq!(Role::from("Root".to_string()), Role::User);
    }
}
