//! Fixtures: the set-ups tests repeat, each asserting that it succeeded, so a failed set-up
//! fails loudly there, with the server's answer, instead of later in a confusing assertion.
//!
//! - Persona helpers on [`TestApp`] (beside `root`, `register`, `root_and_admin`):
//!   [`TestApp::admin`], [`TestApp::user_with_key`], [`TestApp::api_key`],
//!   [`TestApp::fund`], [`TestApp::set_price`], [`TestApp::add_channel`].
//! - [`relay_world`]: a mock vendor of a kind, a channel to it, a price, a funded user and
//!   the user's API key, on a server the test started (`both_backends!` gives one);
//!   [`WorldSpec`] says what else the world needs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::mock_anthropic::MockAnthropic;
use crate::mock_gemini::MockGemini;
use crate::mock_openai::MockOpenAi;
use crate::mock_vendor::MockVendor;
use crate::{Persona, TestApp};

/// A model's prices, as `PUT /api/v1/admin/pricing/{model}` takes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    /// Per million prompt tokens.
    pub input_per_mtok: i64,
    /// Per million completion tokens.
    pub output_per_mtok: i64,
    /// Per million prompt tokens read from a cache.
    pub cache_read_per_mtok: i64,
    /// Per million prompt tokens written to a cache.
    pub cache_write_per_mtok: i64,
    /// Per request.
    pub per_call: i64,
}

impl Price {
    /// Prompt and completion tokens at these rates per million, nothing else.
    pub const fn tokens(input_per_mtok: i64, output_per_mtok: i64) -> Price {
        Price {
            input_per_mtok,
            output_per_mtok,
            cache_read_per_mtok: 0,
            cache_write_per_mtok: 0,
            per_call: 0,
        }
    }

    /// A price per request only.
    pub const fn per_call(per_call: i64) -> Price {
        Price {
            input_per_mtok: 0,
            output_per_mtok: 0,
            cache_read_per_mtok: 0,
            cache_write_per_mtok: 0,
            per_call,
        }
    }

    /// The body of the pricing request.
    pub fn body(&self) -> Value {
        json!({"input_per_mtok": self.input_per_mtok, "output_per_mtok": self.output_per_mtok,
            "cache_read_per_mtok": self.cache_read_per_mtok, "cache_write_per_mtok": self.cache_write_per_mtok,
            "per_call": self.per_call})
    }
}

/// The kinds of channel a mock vendor can stand behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// OpenAI (`type: openai`).
    OpenAi,
    /// Azure OpenAI (`type: azure`), served by the OpenAI mock's deployment route.
    Azure,
    /// Anthropic (`type: anthropic`).
    Anthropic,
    /// Gemini (`type: gemini`).
    Gemini,
}

impl Upstream {
    /// Every kind.
    pub const ALL: [Upstream; 4] = [
        Upstream::OpenAi,
        Upstream::Azure,
        Upstream::Anthropic,
        Upstream::Gemini,
    ];

    /// The channel `type`.
    pub fn channel_type(self) -> &'static str {
        match self {
            Upstream::OpenAi => "openai",
            Upstream::Azure => "azure",
            Upstream::Anthropic => "anthropic",
            Upstream::Gemini => "gemini",
        }
    }

    /// Starts the mock vendor for this kind, accepting `key`.
    pub async fn start(self, key: &str) -> MockVendor {
        match self {
            Upstream::OpenAi | Upstream::Azure => MockOpenAi::start(key).await.into_any(),
            Upstream::Anthropic => MockAnthropic::start(key).await.into_any(),
            Upstream::Gemini => MockGemini::start(key).await.into_any(),
        }
    }

    /// A channel of this kind to `mock` (type, base URL and key; no api-version for Azure,
    /// so the adapter's default is used).
    pub fn channel(self, mock: &MockVendor) -> Value {
        json!({"type": self.channel_type(), "base_url": mock.base_url, "keys": [mock.key]})
    }
}

impl TestApp {
    /// An admin (made by the first account, root, which is not returned).
    pub async fn admin(&self) -> Persona {
        self.root_and_admin().await.1
    }

    /// A new API key of `who`, named `name`, with any other fields of `extra` (an object).
    pub async fn api_key_with(&self, who: &Persona, name: &str, extra: Value) -> String {
        let mut body = json!({ "name": name });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let r = self.post("/api/v1/keys", Some(&who.access), body).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create key {name} of {}: {}",
            who.login,
            r.text
        );
        r.json["key"]
            .as_str()
            .unwrap_or_else(|| panic!("create key {name}: no key in {}", r.text))
            .to_string()
    }

    /// A new API key of `who`, named `name`.
    pub async fn api_key(&self, who: &Persona, name: &str) -> String {
        self.api_key_with(who, name, json!({})).await
    }

    /// Registers `username` and gives them an API key named `test`: `(user, key)`.
    pub async fn user_with_key(&self, username: &str) -> (Persona, String) {
        let user = self.register(username).await;
        let key = self.api_key(&user, "test").await;
        (user, key)
    }

    /// Adds `amount` to `who`'s balance as `admin` does.
    pub async fn fund(&self, admin: &Persona, who: &Persona, amount: i64) {
        let r = self
            .post(
                &format!("/api/v1/admin/billing/users/{}/adjust", who.id),
                Some(&admin.access),
                json!({"amount": amount, "memo": "test balance"}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "fund {} with {amount}: {}",
            who.login,
            r.text
        );
    }

    /// Sets `model`'s price as `admin`.
    pub async fn set_price(&self, admin: &Persona, model: &str, price: Price) {
        let r = self
            .put(
                &format!("/api/v1/admin/pricing/{model}"),
                Some(&admin.access),
                price.body(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "price {model}: {}", r.text);
    }

    /// Creates a channel as `admin`; answers the created channel (its `id` included).
    pub async fn add_channel(&self, admin: &Persona, channel: Value) -> Value {
        let r = self
            .post("/api/v1/channels", Some(&admin.access), channel.clone())
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create channel {channel}: {}",
            r.text
        );
        r.json
    }
}

/// What a [`relay_world`] holds besides its defaults.
#[derive(Debug, Clone)]
pub struct WorldSpec {
    /// The kind of upstream.
    pub upstream: Upstream,
    /// The key the mock accepts (and the channel carries).
    pub upstream_key: String,
    /// Channel fields over the defaults (`name: primary`, `priority: 10`, the models).
    pub channel: Value,
    /// The models the channel serves, each with its upstream name when it is mapped.
    pub models: Vec<(String, Option<String>)>,
    /// The prices set.
    pub prices: Vec<(String, Price)>,
    /// The user's starting balance.
    pub balance: i64,
    /// The user's name.
    pub username: String,
}

impl WorldSpec {
    /// A world on `upstream`: channel `primary` (priority 10) serving nothing yet, a user
    /// `ada` with 1,000,000 and a key.
    pub fn new(upstream: Upstream) -> WorldSpec {
        WorldSpec {
            upstream,
            upstream_key: "sk-upstream-primary".into(),
            channel: json!({}),
            models: Vec::new(),
            prices: Vec::new(),
            balance: 1_000_000,
            username: "ada".into(),
        }
    }

    /// The mock accepts, and the channel carries, `key`.
    pub fn upstream_key(mut self, key: &str) -> WorldSpec {
        self.upstream_key = key.to_string();
        self
    }

    /// The channel serves `model`, sent upstream as `upstream_name` when given.
    pub fn model(mut self, model: &str, upstream_name: Option<&str>) -> WorldSpec {
        self.models
            .push((model.to_string(), upstream_name.map(str::to_string)));
        self
    }

    /// `model` costs `price`.
    pub fn price(mut self, model: &str, price: Price) -> WorldSpec {
        self.prices.push((model.to_string(), price));
        self
    }

    /// The channel also has these fields (an object), over the defaults.
    pub fn channel(mut self, fields: Value) -> WorldSpec {
        if let (Some(channel), Some(fields)) = (self.channel.as_object_mut(), fields.as_object()) {
            channel.extend(fields.clone());
        }
        self
    }

    /// The user starts with `amount`.
    pub fn balance(mut self, amount: i64) -> WorldSpec {
        self.balance = amount;
        self
    }

    /// Builds the world on `app`.
    pub async fn build(self, app: &TestApp) -> RelayWorld {
        let root = app.root().await;
        let user = app.register(&self.username).await;
        let upstream = self.upstream.start(&self.upstream_key).await;
        let mut channel = self.upstream.channel(&upstream);
        channel["name"] = json!("primary");
        channel["priority"] = json!(10);
        channel["models"] = json!(self.models.iter().map(|m| &m.0).collect::<Vec<_>>());
        let mapping: serde_json::Map<String, Value> = self
            .models
            .iter()
            .filter_map(|(m, up)| up.as_ref().map(|up| (m.clone(), json!(up))))
            .collect();
        if !mapping.is_empty() {
            channel["model_mapping"] = Value::Object(mapping);
        }
        if let (Some(channel), Some(extra)) = (channel.as_object_mut(), self.channel.as_object()) {
            channel.extend(extra.clone());
        }
        let created = app.add_channel(&root, channel).await;
        assert!(
            !created.to_string().contains(&upstream.key),
            "an upstream key came back: {created}"
        );
        assert_eq!(created["key_count"], 1, "one key: {created}");
        let channel_id = created["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no channel id in {created}"))
            .to_string();
        for (model, price) in &self.prices {
            app.set_price(&root, model, *price).await;
        }
        app.fund(&root, &user, self.balance).await;
        let key = app.api_key(&user, "test").await;
        RelayWorld {
            root,
            user,
            key,
            upstream,
            kind: self.upstream,
            channel_id,
        }
    }
}

/// A relay ready to serve: what [`relay_world`] and [`WorldSpec::build`] answer.
pub struct RelayWorld {
    /// The first account, which set everything up.
    pub root: Persona,
    /// The funded user.
    pub user: Persona,
    /// The user's API key.
    pub key: String,
    /// The mock vendor behind the channel.
    pub upstream: MockVendor,
    /// Its kind.
    pub kind: Upstream,
    /// The channel's id.
    pub channel_id: String,
}

/// A relay world on `app` with the defaults: an `upstream` mock, channel `primary` serving
/// `gpt-test` (sent upstream as `gpt-upstream`) at 2 per prompt token and 6 per completion
/// token, and user `ada` with 1,000,000 and a key.
pub async fn relay_world(app: &TestApp, upstream: Upstream) -> RelayWorld {
    WorldSpec::new(upstream)
        .model("gpt-test", Some("gpt-upstream"))
        .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
        .build(app)
        .await
}

impl RelayWorld {
    /// A second channel, `backup`: OpenAI, serving `models` at `priority` (below the
    /// primary's 10), to a new mock that accepts `key`. Answers the mock and the channel id.
    pub async fn add_backup(
        &self,
        app: &TestApp,
        key: &str,
        models: &[&str],
        priority: i64,
    ) -> (MockOpenAi, String) {
        let backup = MockOpenAi::start(key).await;
        let created = app
            .add_channel(
                &self.root,
                json!({"type": "openai", "name": "backup", "base_url": backup.base_url,
                    "keys": [backup.key], "models": models, "priority": priority}),
            )
            .await;
        let id = created["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no channel id in {created}"))
            .to_string();
        (backup, id)
    }
}
