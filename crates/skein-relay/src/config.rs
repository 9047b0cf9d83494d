//! The `[relay]` section of the configuration.

use serde::{Deserialize, Serialize};
use skein_core::config::list_or_csv;
use skein_core::secret::Secret;

/// The relay: groups, sealing of upstream keys, probes and request limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Channel groups an API key may name (the first is the default).
    #[serde(deserialize_with = "list_or_csv")]
    pub groups: Vec<String>,
    /// Groups a user may put API keys in until an admin sets that user's own list. Groups
    /// carry price multipliers, so users are given groups, never choose them.
    #[serde(deserialize_with = "list_or_csv")]
    pub default_user_groups: Vec<String>,
    /// 64 hex characters (32 bytes) that seal upstream keys at rest; when empty one is
    /// generated into `data_dir/relay_secret_key`. Every instance must share it.
    pub secret_key: Option<Secret>,
    /// Earlier values of `secret_key` (64 hex characters each), kept after a rotation so
    /// secrets sealed under them still open: the User service's stored secrets (sign-in
    /// providers' client secrets, TOTP secrets) are sealed again under the current key at
    /// start-up. Channel keys and plugin secrets do not rotate this way yet.
    pub previous_secret_keys: Vec<Secret>,
    /// How often channels that were disabled automatically (bad key, no upstream quota) are
    /// probed, and re-enabled when they answer.
    pub probe_interval_secs: u64,
    /// Whether the relay may fetch client image URLs that resolve to private, loopback or
    /// link-local addresses (it fetches them for upstreams that take images only inline, such
    /// as Gemini). Off: a client could otherwise make the server read its own network.
    pub allow_private_image_urls: bool,
    /// Whether a model that has no price is served free (cost 0, recorded with no pricing)
    /// instead of refused with `model_not_priced`. Off: prices are money, set them explicitly.
    pub allow_unpriced: bool,
    /// Most output tokens per answer by model name, over the built-in table of what vendors
    /// document. A request without `max_tokens` is held (and capped upstream) at this.
    pub max_output_tokens: std::collections::BTreeMap<String, i64>,
    /// Most output tokens per answer for a model neither table knows.
    pub default_max_output_tokens: i64,
    /// How long a streamed answer waits for a client that stopped reading before dropping it
    /// (the upstream is still read to its end and billed).
    pub client_write_timeout_secs: u64,
    /// Chat request fields allowed besides the built-in list of those billed only by tokens:
    /// a vendor's own options the operator knows cost nothing extra. Others are refused with
    /// `unsupported_field`, so no field can make a vendor charge what the relay cannot bill.
    #[serde(deserialize_with = "list_or_csv")]
    pub extra_request_fields: Vec<String>,
    /// Idle connections kept open to each upstream host for the next request. Each holds
    /// about 21 KiB, a socket and a task; a burst of streams opens one per stream, so 256
    /// kept 5 MiB and 256 descriptors after the burst (issue #22). Fewer than the requests in
    /// flight to a host means a connection closed and another opened for most requests
    /// (TCP, and TLS to a real vendor): 64 covers 64 at once (issue #20's saturation run).
    pub upstream_idle_per_host: usize,
    /// How long an idle upstream connection is kept before it is closed.
    pub upstream_idle_secs: u64,
    /// Most whole answers already sent whose charge the ledger has not yet recorded. Answers
    /// do not wait for their settle; past this many behind, the next answer waits for one to
    /// finish, so a ledger slower than the traffic slows the callers instead of piling up
    /// unrecorded charges in memory (each about 10 KiB).
    pub max_settles_behind: usize,
    /// Days the admin request log keeps a request (its routing and upstream attempts; never a
    /// prompt or a key). 0 keeps each only until the next prune.
    pub request_log_retention_days: u32,
    /// How often requests older than the retention are removed.
    pub request_log_prune_every_secs: u64,
    /// The only environment variables a channels document applied through the admin API may
    /// name for keys and headers: an admin must not be able to send the server's own secrets
    /// (database URL, relay key) to an upstream URL they choose. `skein channels apply`, run
    /// by the operator, reads any variable.
    pub channels_env_prefix: String,
    /// Whether `POST /v1/responses` keeps a response when the request leaves `store` unset
    /// (OpenAI's default is to keep it, which `previous_response_id` relies on).
    pub responses_store_default: bool,
    /// Days a kept Responses API response (its input and output) is kept, as OpenAI's 30.
    pub responses_retention_days: u32,
    /// A channels document (TOML, or YAML by its `.yaml`/`.yml` extension, as `skein channels
    /// export` writes it) applied at start and whenever its content changes — GitOps: mount
    /// it from a ConfigMap. Keys come from the environment variables it names. Unset: none.
    pub channels_file: Option<std::path::PathBuf>,
    /// Whether applying `channels_file` removes channels, prices and routes it leaves out.
    pub channels_file_prune: bool,
    /// How often every model of every enabled channel is probed with a one-token chat
    /// (results in the admin console, and in this instance's routing measurements); 0, the
    /// default, probes only when an admin asks. Each probe is a small paid call at the vendor.
    pub model_probe_interval_secs: u64,
    /// How often `channels_file` is read for changes.
    pub channels_file_check_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            groups: vec!["default".into()],
            default_user_groups: vec!["default".into()],
            secret_key: None,
            previous_secret_keys: Vec::new(),
            probe_interval_secs: 60,
            allow_private_image_urls: false,
            allow_unpriced: false,
            max_output_tokens: std::collections::BTreeMap::new(),
            default_max_output_tokens: 16_384,
            client_write_timeout_secs: 30,
            extra_request_fields: Vec::new(),
            upstream_idle_per_host: 64,
            upstream_idle_secs: 90,
            max_settles_behind: 2_048,
            request_log_retention_days: 30,
            request_log_prune_every_secs: 3600,
            channels_env_prefix: "SKEIN_CHANNEL_".into(),
            responses_store_default: true,
            responses_retention_days: 30,
            channels_file: None,
            channels_file_prune: false,
            channels_file_check_secs: 10,
            model_probe_interval_secs: 0,
        }
    }
}

impl RelayConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.groups.is_empty() || self.groups.iter().any(|g| g.trim().is_empty()) {
            return Err("relay.groups must name at least one group".into());
        }
        if self
            .default_user_groups
            .iter()
            .any(|g| !self.groups.contains(g))
        {
            return Err(
                "relay.default_user_groups may name only groups listed in relay.groups".into(),
            );
        }
        if let Some(key) = &self.secret_key
            && (key.expose().len() != 64 || !key.expose().bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err("relay.secret_key must be 64 hex characters".into());
        }
        if self.responses_retention_days == 0 || self.responses_retention_days > 3650 {
            return Err("relay.responses_retention_days must be between 1 and 3650".into());
        }
        if !(1..=1_000_000).contains(&self.max_settles_behind) {
            return Err("relay.max_settles_behind must be between 1 and 1000000".into());
        }
        if self.request_log_retention_days > 3650 {
            return Err("relay.request_log_retention_days may be at most 3650".into());
        }

        if self.previous_secret_keys.iter().any(|key| {
            key.expose().len() != 64 || !key.expose().bytes().all(|b| b.is_ascii_hexdigit())
        }) {
            return Err("relay.previous_secret_keys must each be 64 hex characters".into());
        }
        if self.probe_interval_secs == 0 {
            return Err("relay.probe_interval_secs must be at least 1".into());
        }
        Ok(())
    }
}
