//! Which services a process runs (`skein serve --services user,...`).

use std::collections::BTreeSet;

use skein_core::service::ServiceName;

/// A set of services to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSet(BTreeSet<ServiceName>);

impl ServiceSet {
    /// Every service this build has (the default: one process runs everything).
    pub fn all() -> Self {
        ServiceSet(ServiceName::BUILT.iter().copied().collect())
    }

    /// Parses `user,gateway` or `all`. Planned services are refused as not part of this
    /// build yet; whether the set can run (a service whose dependency is neither here nor
    /// configured at `services.*_url`) is decided when it is built.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                return Ok(Self::all());
            }
            set.insert(name.parse::<ServiceName>().map_err(|e| e.to_string())?);
        }
        if set.is_empty() {
            return Err("name at least one service".into());
        }
        // The gateway is every process's edge, whether named or not.
        set.insert(ServiceName::Gateway);
        Ok(ServiceSet(set))
    }

    /// Whether `name` runs here.
    pub fn contains(&self, name: ServiceName) -> bool {
        self.0.contains(&name)
    }

    /// The names, for logs.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|name| name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_explains() {
        assert_eq!(ServiceSet::parse("all"), Ok(ServiceSet::all()));
        assert_eq!(
            ServiceSet::parse("user").map(|s| s.names()),
            Ok(vec!["gateway", "user"])
        );
        assert_eq!(
            ServiceSet::parse("relay, chat").map(|s| s.names()),
            Ok(vec!["gateway", "relay", "chat"])
        );
        assert_eq!(
            ServiceSet::parse("knowledge,plugin,agent").map(|s| s.names()),
            Ok(vec!["gateway", "knowledge", "plugin", "agent"])
        );
        assert!(
            ServiceSet::parse("usr")
                .err()
                .unwrap_or_default()
                .contains("available")
        );
        assert!(ServiceSet::parse("").is_err());
    }
}
