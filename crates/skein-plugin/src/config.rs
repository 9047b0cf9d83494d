//! The `[plugin]` section of the configuration: the local MCP servers (stdio) admins may
//! register, and how long paid tool calls' records are kept. Only commands named here ever
//! run; a plugin names one by its `name`, so nothing an admin types in the web app, a user or
//! the network supplies becomes a command line.

use serde::{Deserialize, Serialize};

/// The Plugin service's settings that only the server's operator may change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Local MCP servers admins may register (`[[plugin.mcp_commands]]`).
    pub mcp_commands: Vec<McpCommand>,
    /// Days the record of a paid tool call (`plugin_tool_charges`) is kept once it was
    /// charged or released (1 to 3650). The record keeps a call's key from being charged
    /// twice; a key comes again only while its answer is being written, minutes at most, so
    /// the retention is for looking back, not for safety. Records of calls whose end was
    /// never written (the process stopped mid-call) are kept.
    pub charge_retention_days: u32,
    /// How often records past the retention are removed, seconds (at least 1).
    pub charge_prune_every_secs: u64,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            mcp_commands: Vec::new(),
            charge_retention_days: 30,
            charge_prune_every_secs: 3600,
        }
    }
}

/// A local MCP server: a program that speaks MCP over its standard input and output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpCommand {
    /// The name admins register it by (`[a-z0-9_-]`, 1 to 40).
    pub name: String,
    /// The program, an absolute path.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

impl PluginConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3650).contains(&self.charge_retention_days) {
            return Err("plugin.charge_retention_days must be 1 to 3650".into());
        }
        if self.charge_prune_every_secs == 0 {
            return Err("plugin.charge_prune_every_secs must be at least 1".into());
        }
        for (i, c) in self.mcp_commands.iter().enumerate() {
            if c.name.is_empty()
                || c.name.len() > 40
                || !c.name.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_'
                })
            {
                return Err(format!(
                    "plugin.mcp_commands[{i}].name must be 1 to 40 of a-z, 0-9, - and _"
                ));
            }
            if !c.command.starts_with('/') {
                return Err(format!(
                    "plugin.mcp_commands[{i}].command must be an absolute path"
                ));
            }
            if self.mcp_commands[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("plugin.mcp_commands names {} twice", c.name));
            }
        }
        Ok(())
    }

    /// The command registered as `name`.
    pub fn command(&self, name: &str) -> Option<&McpCommand> {
        self.mcp_commands.iter().find(|c| c.name == name)
    }
}
