//! Which services a process runs (`skein serve --services user,...`).

use std::collections::BTreeSet;

/// Services this build can run in a process.
pub const AVAILABLE: &[&str] = &["gateway", "user", "billing", "relay", "chat"];

/// Services of the platform that are not built yet; naming one is an error that says so.
const PLANNED: &[&str] = &["knowledge", "agent", "file", "plugin"];

/// A set of service names to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSet(BTreeSet<&'static str>);

impl ServiceSet {
    /// Every available service (the default: one process runs everything).
    pub fn all() -> Self {
        ServiceSet(AVAILABLE.iter().copied().collect())
    }

    /// Parses `user,gateway` or `all`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                return Ok(Self::all());
            }
            match AVAILABLE.iter().find(|a| **a == name) {
                Some(known) => {
                    set.insert(*known);
                }
                None if PLANNED.contains(&name) => {
                    return Err(format!("service `{name}` is not part of this build yet"));
                }
                None => {
                    return Err(format!(
                        "unknown service `{name}` (available: {})",
                        AVAILABLE.join(", ")
                    ));
                }
            }
        }
        if set.is_empty() {
            return Err("name at least one service".into());
        }
        if !set.contains("user") {
            // The gateway checks sessions in-process; a remote session directory comes with
            // the first service that runs apart from the User service.
            return Err("this build checks sessions in-process: include `user`".into());
        }
        // The gateway is every process's edge, whether named or not.
        set.insert("gateway");
        Ok(ServiceSet(set))
    }

    /// Whether `name` runs here.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    /// The names, for logs.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().copied().collect()
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
        assert!(
            ServiceSet::parse("knowledge")
                .err()
                .unwrap_or_default()
                .contains("not part of this build")
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
