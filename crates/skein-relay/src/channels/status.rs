//! A channel's status, decoded once from its row and written back by name: whether it is in
//! rotation, switched off by an administrator, or taken out by the relay itself.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a channel is routed to; stored and sent as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    /// In rotation.
    Enabled,
    /// Switched off by an administrator.
    Disabled,
    /// Taken out by the relay (its key was rejected, or its account ran out); the prober
    /// brings it back once it answers.
    AutoDisabled,
}

impl ChannelStatus {
    /// The stored and sent name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelStatus::Enabled => "enabled",
            ChannelStatus::Disabled => "disabled",
            ChannelStatus::AutoDisabled => "auto_disabled",
        }
    }

    /// The status named `name`, if this build knows it.
    pub fn parse(name: &str) -> Option<ChannelStatus> {
        [
            ChannelStatus::Enabled,
            ChannelStatus::Disabled,
            ChannelStatus::AutoDisabled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for ChannelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decoding a stored status (`#[sqlx(try_from = "String")]`). A name this build does not know
/// (written by a newer version) reads as `Disabled`: such a channel is left out of rotation
/// rather than making every channel unreadable.
impl From<String> for ChannelStatus {
    fn from(name: String) -> Self {
        ChannelStatus::parse(&name).unwrap_or(ChannelStatus::Disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_an_unknown_one_reads_as_disabled() {
        for status in [
            ChannelStatus::Enabled,
            ChannelStatus::Disabled,
            ChannelStatus::AutoDisabled,
        ] {
            assert_eq!(ChannelStatus::from(status.as_str().to_string()), status);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(
            ChannelStatus::from("paused".to_string()),
            ChannelStatus::Disabled
        );
    }
}
