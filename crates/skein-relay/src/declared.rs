//! Channels as code: the relay's channels, prices, model routes and routing strategies as one
//! TOML (or YAML) document, exported from the database and applied back (by `skein channels
//! apply`, the admin API, or at start and on every change of the file `relay.channels_file`
//! names), idempotently, with a plan shown first.
//!
//! Channels are matched by name. Upstream keys and extra header values never appear in the
//! document: it names environment variables (`keys_env`, `headers_env`) that the applying
//! process reads, so the file can live in git. Applying compares every field, the keys
//! included (opened from the vault), and writes only what differs; applying the same file
//! twice changes nothing the second time. Channels, prices and routes the file does not name
//! are kept, unless `prune` asks to remove them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use skein_core::ids::{new_id, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::RelayService;
use crate::channel_fields as check;
use crate::channels::{self, ChannelSecrets, ChannelSettings, ChannelStatus};
use crate::pricing::{self, Rates};
use crate::routing::{self, Policy, Strategy};

/// The whole declared state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    /// Upstream channels, matched by name.
    #[serde(default, rename = "channel")]
    pub channels: Vec<DeclaredChannel>,
    /// Prices by model.
    #[serde(default)]
    pub prices: BTreeMap<String, Rates>,
    /// Aliases and fallbacks by public model name.
    #[serde(default)]
    pub routes: BTreeMap<String, DeclaredRoute>,
    /// Routing strategies by group.
    #[serde(default)]
    pub routing: BTreeMap<String, DeclaredRouting>,
}

/// A channel in the file: its settings, and the names of the environment variables holding
/// its keys and header values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredChannel {
    /// Unique name (what matches it to a stored channel).
    pub name: String,
    /// Channel kind (`openai`, `deepseek`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Base URL (the vendor's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Environment variables holding its upstream keys, one key each.
    pub keys_env: Vec<String>,
    /// Extra header name → environment variable holding its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_env: BTreeMap<String, String>,
    /// Models it serves.
    pub models: Vec<String>,
    /// Client model name → upstream model name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_mapping: BTreeMap<String, String>,
    /// Groups that may use it (default `["default"]`).
    #[serde(default = "default_groups")]
    pub groups: Vec<String>,
    /// Higher first.
    #[serde(default)]
    pub priority: i64,
    /// Share inside its priority.
    #[serde(default = "one")]
    pub weight: i64,
    /// Upstream timeout, seconds.
    #[serde(default = "timeout")]
    pub timeout_secs: i64,
    /// Upstream cost relative to the price list, per-mille.
    #[serde(default = "list_price")]
    pub cost_ratio_permille: i64,
    /// Low-balance threshold (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_balance_threshold: Option<f64>,
    /// Fields merged into every upstream body.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub param_overrides: serde_json::Map<String, serde_json::Value>,
    /// Whether it takes traffic (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_groups() -> Vec<String> {
    vec!["default".into()]
}
fn one() -> i64 {
    1
}
fn timeout() -> i64 {
    120
}
fn list_price() -> i64 {
    1000
}
fn yes() -> bool {
    true
}

/// A model's alias and fallbacks in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRoute {
    /// Serve it as this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_of: Option<String>,
    /// Models tried in order when every channel failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Per group, the fallbacks of its keys in place of `fallbacks`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub group_fallbacks: std::collections::BTreeMap<String, Vec<String>>,
    /// The model's own routing strategy, in place of its group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

/// A group's routing in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRouting {
    /// The strategy.
    pub strategy: Strategy,
    /// The share of requests that explore.
    #[serde(default = "explore")]
    pub explore_percent: i64,
    /// Whether a conversation or key keeps its channel.
    #[serde(default)]
    pub sticky: bool,
}

fn explore() -> i64 {
    routing::DEFAULT_EXPLORE_PERCENT
}

/// One change the plan makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Change {
    /// `create`, `update`, `delete` or `keep` (not in the file, left as it is).
    pub action: String,
    /// `channel`, `price`, `route` or `routing`.
    pub kind: String,
    /// The channel name, model or group.
    pub name: String,
    /// The fields that differ (for an update), never a secret's value.
    pub fields: Vec<String>,
}

/// What applying did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Plan {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The changes, in the order they apply.
    pub changes: Vec<Change>,
}

impl Plan {
    /// The plan as lines for a terminal: `+ channel deepseek`, `~ price gpt-4o (output_per_mtok)`.
    pub fn lines(&self) -> Vec<String> {
        self.changes
            .iter()
            .map(|c| {
                let sign = match c.action.as_str() {
                    "create" => "+",
                    "update" => "~",
                    "delete" => "-",
                    _ => "=",
                };
                let kept = if c.action == "keep" {
                    " (not in the file; kept)"
                } else {
                    ""
                };
                if c.fields.is_empty() {
                    format!("{sign} {} {}{kept}", c.kind, c.name)
                } else {
                    format!("{sign} {} {} ({})", c.kind, c.name, c.fields.join(", "))
                }
            })
            .collect()
    }
}

/// An environment variable name a file may reference: letters, digits and `_`.
fn env_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The stored state as a document; keys and header values become the environment variable
/// names the operator should set (`SKEIN_CHANNEL_<NAME>_KEY`, `_KEY_2`, ...).
pub async fn export(svc: &RelayService) -> ApiResult<Declared> {
    let mut declared = Declared::default();
    for row in channels::all(&svc.db).await? {
        let c = channels::Channel::from(row);
        let base = format!("SKEIN_CHANNEL_{}", env_name(&c.name));
        let keys_env = (1..=c.key_count.max(1))
            .map(|i| {
                if i == 1 {
                    format!("{base}_KEY")
                } else {
                    format!("{base}_KEY_{i}")
                }
            })
            .collect();
        let headers_env = c
            .header_names
            .iter()
            .map(|h| (h.clone(), format!("{base}_HEADER_{}", env_name(h))))
            .collect();
        declared.channels.push(DeclaredChannel {
            name: c.name,
            kind: c.kind.as_str().to_string(),
            base_url: Some(c.base_url),
            keys_env,
            headers_env,
            models: c.models,
            model_mapping: c.model_mapping,
            groups: c.groups,
            priority: c.priority,
            weight: c.weight,
            timeout_secs: c.timeout_secs,
            cost_ratio_permille: c.cost_ratio_permille,
            low_balance_threshold: c.low_balance_threshold,
            param_overrides: c.param_overrides,
            enabled: c.status != ChannelStatus::Disabled,
        });
    }
    for price in pricing::all(&svc.db).await? {
        declared.prices.insert(price.model, price.rates);
    }
    for route in crate::model_routes::all(&svc.db).await? {
        declared.routes.insert(
            route.model,
            DeclaredRoute {
                alias_of: route.alias_of,
                fallbacks: route.fallbacks,
                group_fallbacks: route.group_fallbacks,
                strategy: route.strategy,
            },
        );
    }
    for (group, (policy, _)) in routing::all(&svc.db).await? {
        declared.routing.insert(
            group,
            DeclaredRouting {
                strategy: policy.strategy,
                explore_percent: policy.explore_percent,
                sticky: policy.sticky,
            },
        );
    }
    Ok(declared)
}

/// The document as TOML text.
pub fn to_toml(declared: &Declared) -> ApiResult<String> {
    toml::to_string_pretty(declared).map_err(ApiError::internal)
}

impl Declared {
    /// Refuses (422) a document that names, for a key or a header, an environment variable
    /// not starting with `prefix`: through the admin API an admin may read the channel
    /// variables the operator set for them, never the server's other secrets.
    pub fn only_variables_named(&self, prefix: &str) -> ApiResult<()> {
        for c in &self.channels {
            let named = c.keys_env.iter().chain(c.headers_env.values());
            if let Some(var) = named.into_iter().find(|v| !v.starts_with(prefix)) {
                return Err(ApiError::invalid_field(
                    "keys_env",
                    format!(
                        "Channel {}: through the API, keys and headers come only from environment variables starting with {prefix} (not {var}); `skein channels apply` on the server reads any.",
                        c.name
                    ),
                    format!(
                        "渠道 {}：通过 API 应用时，密钥与请求头只能来自以 {prefix} 开头的环境变量（{var} 不可用）；在服务器上运行 `skein channels apply` 可读取任意变量。",
                        c.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A document read from TOML text (422 with the parser's message when it is not one).
pub fn from_toml(text: &str) -> ApiResult<Declared> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        ApiError::invalid_field(
            "document",
            format!("The channels file is not valid: {message}"),
            format!("渠道文件无效：{message}"),
        )
    })
}

/// Reads a YAML channels document (the same fields as the TOML one).
pub fn from_yaml(text: &str) -> ApiResult<Declared> {
    let invalid = |message: String| {
        ApiError::invalid_field(
            "document",
            format!("The channels file is not valid: {message}"),
            format!("渠道文件无效：{message}"),
        )
    };
    let value = skein_text::yaml::to_json(text).map_err(invalid)?;
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// Writes the declared state as YAML.
pub fn to_yaml(declared: &Declared) -> ApiResult<String> {
    let value = serde_json::to_value(declared).map_err(ApiError::internal)?;
    Ok(skein_text::yaml::from_json(&value))
}

/// Whether a file is read as YAML (`.yaml`, `.yml`) rather than TOML.
pub fn is_yaml(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Reads a channels file: YAML or TOML by its extension.
pub fn from_file_text(path: &std::path::Path, text: &str) -> ApiResult<Declared> {
    if is_yaml(path) {
        from_yaml(text)
    } else {
        from_toml(text)
    }
}

/// A secret named by an environment variable, read with `env` (the applying process's
/// environment, or a test's).
fn secret(
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    channel: &str,
    var: &str,
) -> ApiResult<String> {
    env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::invalid_field(
            "keys_env",
            format!("Channel {channel}: the environment variable {var} is not set."),
            format!("渠道 {channel}：环境变量 {var} 未设置。"),
        )
    })
}

/// Plans and (unless `dry_run`) applies `declared`; `env` reads the environment variables
/// the document names; `prune` removes channels, prices and routes the document leaves out.
pub async fn apply(
    svc: &RelayService,
    declared: &Declared,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    dry_run: bool,
    prune: bool,
) -> ApiResult<Plan> {
    let stored = channels::all(&svc.db).await?;
    let mut seen = std::collections::HashSet::new();
    for c in &declared.channels {
        if !seen.insert(c.name.trim()) {
            return Err(ApiError::invalid_field(
                "channel",
                format!("The channel name {} is used twice in the file.", c.name),
                format!("文件中渠道名称 {} 出现了两次。", c.name),
            ));
        }
        if stored.iter().filter(|r| r.name == c.name.trim()).count() > 1 {
            return Err(ApiError::invalid_field(
                "channel",
                format!(
                    "Several stored channels are named {}; rename them so the file can match one.",
                    c.name
                ),
                format!(
                    "已有多个名为 {} 的渠道，请先重命名，以便文件能对应到唯一渠道。",
                    c.name
                ),
            ));
        }
    }
    let mut changes = Vec::new();
    let mut writes: Vec<(Option<String>, ChannelSettings)> = Vec::new();
    for c in &declared.channels {
        let kind = check::kind(&c.kind)?;
        let secrets = ChannelSecrets {
            keys: check::upstream_keys(
                c.keys_env
                    .iter()
                    .map(|var| secret(env, &c.name, var))
                    .collect::<ApiResult<Vec<_>>>()?,
            )?,
            headers: check::headers(
                c.headers_env
                    .iter()
                    .map(|(h, var)| Ok((h.clone(), secret(env, &c.name, var)?)))
                    .collect::<ApiResult<BTreeMap<_, _>>>()?,
            )?,
        };
        let settings = ChannelSettings {
            base_url: check::base_url(kind, c.base_url.as_deref())?,
            kind,
            name: check::name(&c.name)?,
            secrets,
            models: check::models(c.models.clone())?,
            model_mapping: check::mapping(c.model_mapping.clone())?,
            groups: check::groups(svc, c.groups.clone())?,
            priority: check::bounded("priority", c.priority, -1000, 1000)?,
            weight: check::bounded("weight", c.weight, 1, 1000)?,
            timeout_secs: check::bounded("timeout_secs", c.timeout_secs, 1, 3600)?,
            param_overrides: check::overrides(c.param_overrides.clone())?,
            cost_ratio_permille: check::bounded(
                "cost_ratio_permille",
                c.cost_ratio_permille,
                1,
                100_000,
            )?,
            low_balance_threshold: check::threshold(c.low_balance_threshold)?,
            status: if c.enabled {
                ChannelStatus::Enabled
            } else {
                ChannelStatus::Disabled
            },
        };
        match stored.iter().find(|r| r.name == settings.name) {
            None => {
                changes.push(change("create", "channel", &settings.name, Vec::new()));
                writes.push((None, settings));
            }
            Some(row) => {
                let fields = differences(svc, row, &settings)?;
                if !fields.is_empty() {
                    changes.push(change("update", "channel", &settings.name, fields));
                    writes.push((Some(row.id.clone()), settings));
                }
            }
        }
    }
    let mut deletes = Vec::new();
    for row in &stored {
        if !declared.channels.iter().any(|c| c.name.trim() == row.name) {
            changes.push(change(
                if prune { "delete" } else { "keep" },
                "channel",
                &row.name,
                Vec::new(),
            ));
            if prune {
                deletes.push(row.id.clone());
            }
        }
    }
    let prices = pricing::all(&svc.db).await?;
    for (model, rates) in &declared.prices {
        match prices.iter().find(|p| &p.model == model) {
            None => changes.push(change("create", "price", model, Vec::new())),
            Some(p) if p.rates != *rates => changes.push(change(
                "update",
                "price",
                model,
                rate_fields(&p.rates, rates),
            )),
            Some(_) => {}
        }
    }
    for p in prices
        .iter()
        .filter(|p| !declared.prices.contains_key(&p.model))
    {
        changes.push(change(
            if prune { "delete" } else { "keep" },
            "price",
            &p.model,
            Vec::new(),
        ));
    }
    let routes = crate::model_routes::all(&svc.db).await?;
    for (model, route) in &declared.routes {
        if route.alias_of.is_none()
            && route.fallbacks.is_empty()
            && route.group_fallbacks.is_empty()
            && route.strategy.is_none()
        {
            return Err(ApiError::invalid_field(
                "routes",
                format!("The route of {model} sets none of alias_of, fallbacks or strategy."),
                format!("{model} 的路由没有设置 alias_of、fallbacks 或 strategy 中的任何一项。"),
            ));
        }
        if let Some(group) = route
            .group_fallbacks
            .keys()
            .find(|g| !svc.groups().contains(*g))
        {
            return Err(ApiError::invalid_field(
                "routes",
                format!("The route of {model} names group {group}, which is not a group."),
                format!("{model} 的路由使用了不存在的分组 {group}。"),
            ));
        }
        match routes.iter().find(|r| &r.model == model) {
            None => changes.push(change("create", "route", model, Vec::new())),
            Some(r)
                if r.alias_of != route.alias_of
                    || r.fallbacks != route.fallbacks
                    || r.group_fallbacks != route.group_fallbacks
                    || r.strategy != route.strategy =>
            {
                changes.push(change("update", "route", model, Vec::new()))
            }
            Some(_) => {}
        }
    }
    for r in routes
        .iter()
        .filter(|r| !declared.routes.contains_key(&r.model))
    {
        changes.push(change(
            if prune { "delete" } else { "keep" },
            "route",
            &r.model,
            Vec::new(),
        ));
    }
    let policies = routing::all(&svc.db).await?;
    for (group, want) in &declared.routing {
        if !svc.groups().contains(group) {
            return Err(ApiError::invalid_field(
                "routing",
                format!("{group} is not a configured group."),
                format!("{group} 不是已配置的分组。"),
            ));
        }
        if !(0..=50).contains(&want.explore_percent) {
            return Err(ApiError::invalid_field(
                "explore_percent",
                "explore_percent must be 0 to 50.",
                "explore_percent 必须在 0 到 50 之间。",
            ));
        }
        let policy = Policy {
            strategy: want.strategy,
            explore_percent: want.explore_percent,
            sticky: want.sticky,
        };
        match policies.get(group) {
            Some((have, _)) if *have == policy => {}
            Some(_) => changes.push(change("update", "routing", group, Vec::new())),
            None => changes.push(change("create", "routing", group, Vec::new())),
        }
    }
    let plan = Plan { dry_run, changes };
    if dry_run {
        return Ok(plan);
    }
    let now = now_ms();
    for (id, settings) in writes {
        match id {
            Some(id) => channels::save(&svc.db, &svc.vault, &id, &settings, now, false).await?,
            None => channels::save(&svc.db, &svc.vault, &new_id(), &settings, now, true).await?,
        }
    }
    for id in deletes {
        channels::delete(&svc.db, &id).await?;
    }
    for c in plan.changes.iter().filter(|c| c.action != "keep") {
        match (c.kind.as_str(), c.action.as_str()) {
            ("price", "delete") => {
                pricing::delete(&svc.db, &c.name).await?;
            }
            ("price", _) => {
                if let Some(rates) = declared.prices.get(&c.name) {
                    pricing::upsert(&svc.db, &c.name, rates, now).await?;
                }
            }
            ("route", "delete") => {
                crate::model_routes::delete(&svc.db, &c.name).await?;
            }
            ("route", _) => {
                if let Some(r) = declared.routes.get(&c.name) {
                    let fields = crate::model_routes::RouteFields {
                        alias_of: r.alias_of.as_deref(),
                        fallbacks: &r.fallbacks,
                        group_fallbacks: &r.group_fallbacks,
                        strategy: r.strategy,
                    };
                    crate::model_routes::upsert(&svc.db, &c.name, fields, now).await?;
                }
            }
            ("routing", _) => {
                if let Some(r) = declared.routing.get(&c.name) {
                    let policy = Policy {
                        strategy: r.strategy,
                        explore_percent: r.explore_percent,
                        sticky: r.sticky,
                    };
                    routing::set(&svc.db, &c.name, policy, now).await?;
                }
            }
            _ => {}
        }
    }
    svc.routing_changed().await?;
    Ok(plan)
}

fn change(action: &str, kind: &str, name: &str, fields: Vec<String>) -> Change {
    Change {
        action: action.into(),
        kind: kind.into(),
        name: name.into(),
        fields,
    }
}

/// Which rates differ.
fn rate_fields(a: &Rates, b: &Rates) -> Vec<String> {
    let pairs = [
        ("input_per_mtok", a.input_per_mtok, b.input_per_mtok),
        ("output_per_mtok", a.output_per_mtok, b.output_per_mtok),
        (
            "cache_read_per_mtok",
            a.cache_read_per_mtok,
            b.cache_read_per_mtok,
        ),
        (
            "cache_write_per_mtok",
            a.cache_write_per_mtok,
            b.cache_write_per_mtok,
        ),
        ("per_call", a.per_call, b.per_call),
    ];
    let audio = [
        (
            "audio_input_per_mtok",
            a.audio_input_per_mtok,
            b.audio_input_per_mtok,
        ),
        (
            "audio_output_per_mtok",
            a.audio_output_per_mtok,
            b.audio_output_per_mtok,
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, x, y)| x != y)
        .map(|(n, _, _)| n.to_string())
        .chain(
            audio
                .into_iter()
                .filter(|(_, x, y)| x != y)
                .map(|(n, _, _)| n.to_string()),
        )
        .collect()
}

/// The fields of a stored channel that `want` changes (keys compared after opening them;
/// only the field's name is reported).
fn differences(
    svc: &RelayService,
    row: &channels::ChannelRow,
    want: &ChannelSettings,
) -> ApiResult<Vec<String>> {
    let have = channels::Channel::from(row.clone());
    let secrets = channels::open_secrets(&svc.vault, &row.id, &row.secrets)?;
    let mut fields = Vec::new();
    let mut differ = |name: &str, same: bool| {
        if !same {
            fields.push(name.to_string());
        }
    };
    differ("type", have.kind.known().ok() == Some(want.kind));
    differ("base_url", have.base_url == want.base_url);
    differ("keys", secrets.keys == want.secrets.keys);
    differ("headers", secrets.headers == want.secrets.headers);
    differ("models", have.models == want.models);
    differ("model_mapping", have.model_mapping == want.model_mapping);
    differ("groups", have.groups == want.groups);
    differ("priority", have.priority == want.priority);
    differ("weight", have.weight == want.weight);
    differ("timeout_secs", have.timeout_secs == want.timeout_secs);
    differ(
        "param_overrides",
        have.param_overrides == want.param_overrides,
    );
    differ(
        "cost_ratio_permille",
        have.cost_ratio_permille == want.cost_ratio_permille,
    );
    differ(
        "low_balance_threshold",
        have.low_balance_threshold == want.low_balance_threshold,
    );
    // An automatically disabled channel declared enabled stays as the prober left it.
    let status_same = have.status == want.status
        || (have.status == ChannelStatus::AutoDisabled && want.status == ChannelStatus::Enabled);
    differ("enabled", status_same);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_round_trips_and_never_holds_a_key() {
        let text = r#"
[[channel]]
name = "deepseek main"
type = "deepseek"
keys_env = ["DS_KEY"]
models = ["deepseek-chat"]
priority = 5

[prices.deepseek-chat]
input_per_mtok = 2000000
output_per_mtok = 3000000
cache_read_per_mtok = 0
cache_write_per_mtok = 0
per_call = 0

[routes.chat]
alias_of = "deepseek-chat"

[routing.default]
strategy = "latency"
"#;
        let declared = from_toml(text).unwrap_or_default();
        assert_eq!(declared.channels.len(), 1);
        assert_eq!(declared.channels[0].groups, ["default"]);
        assert_eq!(declared.channels[0].weight, 1);
        assert_eq!(declared.routing["default"].explore_percent, 5);
        let again = from_toml(&to_toml(&declared).unwrap_or_default()).unwrap_or_default();
        assert_eq!(again, declared);
        assert!(from_toml("[[channel]]\nname = 1").is_err());
        assert_eq!(env_name("deepseek main"), "DEEPSEEK_MAIN");
        // The same document in YAML, written and read back.
        let yaml = to_yaml(&declared).unwrap_or_default();
        assert_eq!(from_yaml(&yaml).ok(), Some(declared.clone()), "{yaml}");
        assert!(is_yaml(std::path::Path::new("/etc/skein/channels.YML")));
        assert!(!is_yaml(std::path::Path::new("channels.toml")));
    }

    #[test]
    fn a_hand_written_yaml_document_reads_like_its_toml() {
        let yaml = r#"
channel:
  - name: deepseek main
    type: deepseek
    keys_env: [DS_KEY]
    models: [deepseek-chat]
    priority: 5
routes:
  chat: {alias_of: deepseek-chat, strategy: cost}
routing:
  default: {strategy: latency}
"#;
        let declared = from_yaml(yaml).unwrap_or_default();
        assert_eq!(declared.channels.len(), 1);
        assert_eq!(declared.channels[0].priority, 5);
        assert_eq!(declared.routes["chat"].strategy, Some(Strategy::Cost));
        assert_eq!(declared.routing["default"].strategy, Strategy::Latency);
        // Wrong types and unknown fields are refused, naming the problem.
        for bad in [
            "channel:\n  - name: x\n    weight: heavy\n",
            "channels: []\n",
            "- a\n- b\n",
        ] {
            let error = from_yaml(bad)
                .err()
                .map(|e| e.message(skein_core::i18n::Lang::En).to_string());
            assert!(
                error.is_some_and(|m| m.starts_with("The channels file is not valid")),
                "{bad}"
            );
        }
    }
}
