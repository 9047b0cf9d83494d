//! Which services this build has, and how each is built from the configuration and the APIs
//! of the services built before it (in this process, or reached over HTTP in another).
//!
//! Adding a service: its crate implements `skein_core::service::Service`, and [`SERVICES`]
//! gets one line naming it, its migrations and its build function (below, next to the
//! others). Everything else — routes, OpenAPI tags, gauges, internal routes, shutdown — the
//! binary does for every service alike.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use skein_agent::AgentService;
use skein_billing::BillingService;
use skein_chat::ChatService;
use skein_core::api::{
    AccountEvents, AgentApi, AuditLog, BillingApi, ConversationOpener, FileApi, KeyDirectory,
    KnowledgeApi, PluginApi, RelayApi, SessionDirectory, SettingsSource, UserDirectory,
};
use skein_core::auth::JwtKeys;
use skein_core::internal::{InternalClient, RemoteAccountEvents};
use skein_core::limit::RateLimiter;
use skein_core::runtime::Gauges;
use skein_core::service::{Service, ServiceName};
use skein_db::{Db, ServiceMigrations};
use skein_file::FileService;
use skein_knowledge::KnowledgeService;
use skein_plugin::PluginService;
use skein_relay::RelayService;
use skein_user::{UserService, UserSettings};

use crate::config::Config;

/// How a service is built: from what [`Wiring`] holds, adding what it offers to it.
pub type BuildFn = for<'a> fn(&'a mut Wiring) -> BoxFuture<'a, anyhow::Result<Arc<dyn Service>>>;

/// A service this build contains.
pub struct Plug {
    /// Its name.
    pub name: ServiceName,
    /// Its tables.
    pub migrations: &'static ServiceMigrations,
    /// How to build it.
    pub build: BuildFn,
}

impl Plug {
    /// A service of this build.
    pub const fn new(
        name: ServiceName,
        migrations: &'static ServiceMigrations,
        build: BuildFn,
    ) -> Self {
        Plug {
            name,
            migrations,
            build,
        }
    }
}

/// Every service of this build, in build order: a service comes after those whose APIs it
/// calls in process. The gateway is not here: it is every process's edge, not a service
/// with tables.
pub static SERVICES: &[Plug] = &[
    // First: it calls no other service, and User (avatars), Chat (images), Knowledge and
    // Agent store through it.
    Plug::new(ServiceName::File, &skein_file::MIGRATIONS, file),
    Plug::new(ServiceName::User, &skein_user::MIGRATIONS, user),
    Plug::new(ServiceName::Billing, &skein_billing::MIGRATIONS, billing),
    Plug::new(ServiceName::Relay, &skein_relay::MIGRATIONS, relay),
    Plug::new(ServiceName::Chat, &skein_chat::MIGRATIONS, chat),
    // After File (documents), Relay (embeddings) and Chat (its retrieval source).
    Plug::new(
        ServiceName::Knowledge,
        &skein_knowledge::MIGRATIONS,
        knowledge,
    ),
    // After Chat: it registers its tools on the chat service when that runs here.
    Plug::new(ServiceName::Plugin, &skein_plugin::MIGRATIONS, plugin),
    // After Chat: it starts Chat's conversations and adds its persona to Chat's answers.
    Plug::new(ServiceName::Agent, &skein_agent::MIGRATIONS, agent),
];

/// What services are built from: the shared parts, and the API of every service built so far
/// in this process or reachable in another (`services.*_url`).
pub struct Wiring {
    /// The configuration in effect.
    pub config: Config,
    /// The database pool.
    pub db: Db,
    /// Access-token keys.
    pub jwt: JwtKeys,
    /// The rate-limit store.
    pub limiter: Arc<dyn RateLimiter>,
    /// Sessions, for the gateway (User).
    pub sessions: Option<Arc<dyn SessionDirectory>>,
    /// Who exists (User).
    pub users: Option<Arc<dyn UserDirectory>>,
    /// The system settings in effect (User, or read from it when it runs elsewhere).
    pub settings: Option<Arc<dyn SettingsSource>>,
    /// The admin audit log, for the gateway (User).
    pub audit: Option<Arc<dyn AuditLog>>,
    /// Holds and charges (Billing).
    pub billing: Option<Arc<dyn BillingApi>>,
    /// API keys, for the gateway (Relay, in process only).
    pub keys: Option<Arc<dyn KeyDirectory>>,
    /// Billed model calls (Relay).
    pub relay: Option<Arc<dyn RelayApi>>,
    /// Stored files (File).
    pub files: Option<Arc<dyn FileApi>>,
    /// Who hears of account events; the User service is told about them once built.
    pub observers: Vec<Arc<dyn AccountEvents>>,
    /// Gauges of parts that are not services (remote clients' caches).
    pub gauges: Vec<Arc<dyn Gauges>>,
    /// The User service when it runs here (the CLI's admin commands, first-run setup).
    pub user_service: Option<Arc<UserService>>,
    /// The Billing service when it runs here (`skein billing verify`).
    pub billing_service: Option<Arc<BillingService>>,
    /// The Relay service when it runs here.
    pub relay_service: Option<Arc<RelayService>>,
    /// The Chat service when it runs here.
    pub chat_service: Option<Arc<ChatService>>,
    /// The File service when it runs here.
    pub file_service: Option<Arc<FileService>>,
    /// Knowledge-base search (Knowledge).
    pub knowledge: Option<Arc<dyn KnowledgeApi>>,
    /// Tools (Plugin).
    pub plugins: Option<Arc<dyn PluginApi>>,
    /// The assistant version a conversation is pinned to (Agent).
    pub agents: Option<Arc<dyn AgentApi>>,
    /// Where the Agent service starts conversations (Chat).
    pub opener: Option<Arc<dyn ConversationOpener>>,
    /// The Plugin service when it runs here.
    pub plugin_service: Option<Arc<PluginService>>,
    /// The Agent service when it runs here.
    pub agent_service: Option<Arc<AgentService>>,
    /// The User service's client, when it runs elsewhere (its session cache joins the bus).
    pub remote_users: Option<Arc<skein_user::remote::RemoteUsers>>,
    /// The system settings read from the User service, when it runs elsewhere (they follow
    /// the bus's settings notes).
    pub remote_settings: Option<Arc<skein_user::remote::RemoteSettings>>,
    /// The built-in embedding model: `None` until first asked for, then whether it loaded.
    pub local_embed: Option<Option<Arc<skein_embed::StaticModel>>>,
}

impl Wiring {
    /// Shared parts, and no service yet.
    pub fn new(config: Config, db: Db, jwt: JwtKeys, limiter: Arc<dyn RateLimiter>) -> Self {
        Wiring {
            config,
            db,
            jwt,
            limiter,
            sessions: None,
            users: None,
            settings: None,
            audit: None,
            billing: None,
            keys: None,
            relay: None,
            files: None,
            observers: Vec::new(),
            gauges: Vec::new(),
            user_service: None,
            billing_service: None,
            relay_service: None,
            chat_service: None,
            file_service: None,
            knowledge: None,
            plugins: None,
            agents: None,
            opener: None,
            plugin_service: None,
            agent_service: None,
            remote_users: None,
            remote_settings: None,
            local_embed: None,
        }
    }

    /// The built-in embedding model (`knowledge.local_embed_dir`, else
    /// `<data_dir>/models/skein-local-embed` when present), loaded once for the relay and the
    /// Knowledge service. The server runs without it: a folder that fails to load is logged.
    pub async fn local_embed(&mut self) -> Option<Arc<skein_embed::StaticModel>> {
        if let Some(loaded) = &self.local_embed {
            return loaded.clone();
        }
        let configured = self.config.knowledge.local_embed_dir.clone();
        let dir = configured.clone().unwrap_or_else(|| {
            self.config
                .data_dir
                .join("models")
                .join(skein_embed::MODEL_NAME)
        });
        let loaded = if configured.is_none() && !dir.exists() {
            tracing::info!(
                dir = %dir.display(),
                "the built-in embedding model is not installed (scripts/local-embed-model installs it)"
            );
            None
        } else {
            let at = dir.clone();
            match tokio::task::spawn_blocking(move || skein_embed::StaticModel::load(&at)).await {
                Ok(Ok(model)) => {
                    tracing::info!(dir = %dir.display(), dimensions = model.dimensions(), "loaded the built-in embedding model skein-local-embed");
                    Some(Arc::new(model))
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the built-in embedding model could not be loaded; serving without it");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "loading the built-in embedding model failed");
                    None
                }
            }
        };
        self.local_embed = Some(loaded.clone());
        loaded
    }

    /// Connects to the services that run elsewhere (`services.<name>_url`): their APIs are
    /// HTTP clients of their internal routes, with the internal token.
    pub fn connect_remote(&mut self, selected: &crate::ServiceSet) -> anyhow::Result<()> {
        for name in [
            ServiceName::User,
            ServiceName::Billing,
            ServiceName::Relay,
            ServiceName::Chat,
            ServiceName::File,
            ServiceName::Knowledge,
            ServiceName::Plugin,
            ServiceName::Agent,
        ] {
            if selected.contains(name) {
                continue;
            }
            let Some(url) = self.config.services.url(name) else {
                continue;
            };
            let token = self.config.internal_token().cloned().with_context(|| {
                format!(
                    "services.{name}_url needs services.internal_token (the same in every process)"
                )
            })?;
            let client = InternalClient::new(name, url, token)
                .map_err(|e| anyhow::anyhow!("cannot make a client of {name}: {e}"))?;
            match name {
                ServiceName::User => {
                    let users = Arc::new(skein_user::remote::RemoteUsers::new(
                        client.clone(),
                        Duration::from_secs(self.config.auth.session_cache_secs),
                    ));
                    self.sessions = Some(users.clone());
                    self.users = Some(users.clone());
                    self.audit = Some(users.clone());
                    self.remote_users = Some(users.clone());
                    self.gauges.push(users);
                    let settings = Arc::new(skein_user::remote::RemoteSettings::new(
                        client,
                        settings_defaults(&self.config).system,
                    ));
                    settings.start();
                    self.settings = Some(settings.clone());
                    self.remote_settings = Some(settings);
                }
                ServiceName::Billing => {
                    self.billing = Some(Arc::new(skein_billing::remote::RemoteBilling(
                        client.clone(),
                    )));
                    self.observers.push(Arc::new(RemoteAccountEvents(client)));
                }
                ServiceName::Relay => {
                    self.relay = Some(Arc::new(skein_relay::RemoteRelay(client.clone())));
                    self.observers.push(Arc::new(RemoteAccountEvents(client)));
                }
                ServiceName::Chat => {
                    self.opener = Some(Arc::new(skein_chat::remote::RemoteChat(client)));
                }
                ServiceName::File => {
                    // Signed URLs are made where they are needed, so every process must sign
                    // with the same key; one generated into this process's data dir would not
                    // be the File service's.
                    let key = self.config.file.signing_key.as_ref().context(
                        "services.file_url needs file.signing_key (the same in every process)",
                    )?;
                    let files = skein_file::remote::RemoteFiles::new(
                        client,
                        key.expose().as_bytes(),
                        self.config.file.public_base_url.clone(),
                    )
                    .map_err(|e| anyhow::anyhow!("cannot make a client of file: {e}"))?;
                    self.files = Some(Arc::new(files));
                }
                ServiceName::Knowledge => {
                    self.knowledge =
                        Some(Arc::new(skein_knowledge::remote::RemoteKnowledge(client)));
                }
                ServiceName::Plugin => {
                    self.plugins = Some(Arc::new(skein_plugin::remote::RemotePlugins(client)));
                }
                ServiceName::Agent => {
                    self.agents = Some(Arc::new(skein_agent::remote::RemoteAgents(client)));
                }
                ServiceName::Gateway => {}
            }
        }
        Ok(())
    }
}

/// The API `owner` offers, which `who` needs: built here, or reachable at `services.*_url`.
fn need<T: ?Sized>(
    api: &Option<Arc<T>>,
    who: ServiceName,
    owner: ServiceName,
) -> anyhow::Result<Arc<T>> {
    api.clone().with_context(|| {
        format!(
            "{who} needs the {owner} service: run it in this process (--services ...,{owner}) or set services.{owner}_url"
        )
    })
}

/// The system settings the configuration file gives, before any stored change.
fn settings_defaults(config: &Config) -> skein_user::settings::SettingsDefaults {
    skein_user::settings::SettingsDefaults::from_config(
        &config.registration,
        skein_user::settings::Grants {
            signup: config.billing.signup_grant,
            inviter: config.billing.invite_reward_inviter,
            invitee: config.billing.invite_reward_invitee,
        },
        config.chat.default_model.clone(),
        config.chat.title_model.clone(),
        config.billing.quota_per_usd,
        config.billing.cny_per_usd,
    )
}

fn user(w: &mut Wiring) -> BoxFuture<'_, anyhow::Result<Arc<dyn Service>>> {
    Box::pin(async move {
        let settings = UserSettings {
            auth: w.config.auth.clone(),
            registration: w.config.registration.clone(),
            limits: w.config.limits.clone(),
            mail: w.config.mail.clone(),
            oauth: w.config.oauth.clone(),
            system: settings_defaults(&w.config),
            sms: w.config.sms.clone(),
            ldap: w.config.ldap.clone(),
        };
        // Its stored secrets are sealed with a key derived from the relay's, which every
        // process of a deployment shares; older keys still open until everything is re-sealed.
        let sealer = skein_core::seal::Sealer::derived(
            skein_user::secrets::SEAL_LABEL,
            &crate::relay_secret(&w.config)?,
            &crate::previous_relay_secrets(&w.config)?,
        );
        let users = Arc::new(
            UserService::new(
                w.db.clone(),
                w.jwt.clone(),
                settings,
                w.limiter.clone(),
                sealer,
            )
            .map_err(|e| anyhow::anyhow!("cannot start the User service: {e}"))?
            .with_files(w.files.clone()),
        );
        // Plain rows from before sealing, and rows under a rotated-out key, are sealed under
        // the current key before the service answers.
        users
            .seal_stored_secrets()
            .await
            .map_err(|e| anyhow::anyhow!("cannot seal the User service's stored secrets: {e}"))?;
        // Stored settings are in effect before the first request is served.
        users
            .load_settings()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the system settings: {e}"))?;
        users.start();
        w.settings = Some(users.settings_source());
        w.sessions = Some(users.clone());
        w.users = Some(users.clone());
        w.audit = Some(users.clone());
        w.user_service = Some(users.clone());
        Ok(users as Arc<dyn Service>)
    })
}

fn billing(w: &mut Wiring) -> BoxFuture<'_, anyhow::Result<Arc<dyn Service>>> {
    Box::pin(async move {
        let users = need(&w.users, ServiceName::Billing, ServiceName::User)?;
        let billing = BillingService::start(w.db.clone(), w.config.billing.clone(), users);
        // Its stored provider secrets are sealed like the User service's: a key derived from
        // the relay's, older keys opening until start-up has sealed everything again.
        billing.use_sealer(skein_core::seal::Sealer::derived(
            skein_billing::payment::settings::SEAL_LABEL,
            &crate::relay_secret(&w.config)?,
            &crate::previous_relay_secrets(&w.config)?,
        ));
        billing
            .seal_stored_payment_secrets()
            .await
            .map_err(|e| anyhow::anyhow!("cannot seal the stored payment secrets: {e}"))?;
        // Stored payment settings are in effect before the first order is taken.
        billing
            .load_payment_settings()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the payment settings: {e}"))?;
        billing.set_files(w.files.clone());
        if let Some(settings) = &w.settings {
            billing.set_settings(settings.clone());
        }
        w.billing = Some(billing.clone());
        w.observers.push(billing.clone());
        w.billing_service = Some(billing.clone());
        Ok(billing as Arc<dyn Service>)
    })
}

fn relay(w: &mut Wiring) -> BoxFuture<'_, anyhow::Result<Arc<dyn Service>>> {
    Box::pin(async move {
        let users = need(&w.users, ServiceName::Relay, ServiceName::User)?;
        let billing = need(&w.billing, ServiceName::Relay, ServiceName::Billing)?;
        let config = &w.config;
        let relay_key = crate::relay_secret(config)?;
        let relay = RelayService::start(
            w.db.clone(),
            users,
            billing,
            w.limiter.clone(),
            config.relay.groups.clone(),
            skein_relay::KeyPolicy {
                default_groups: config.relay.default_user_groups.clone(),
                max_rpm: config.limits.api_per_key_per_minute,
                max_tpm: Some(config.limits.max_tokens_per_key_per_minute).filter(|&n| n > 0),
            },
            &relay_key,
            Duration::from_secs(config.relay.probe_interval_secs),
            skein_relay::upstream::ImagePolicy {
                allow_private: config.relay.allow_private_image_urls,
            },
            config.relay.allow_unpriced,
            skein_relay::Tuning::from_config(&config.relay),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the Relay service: {e}"))?;
        if let Some(model) = w.local_embed().await {
            relay.serve_local_embeddings(model);
        }
        w.keys = Some(relay.clone());
        w.observers.push(relay.clone());
        // Billing here tells the relay at once when a user's plans change.
        if let Some(billing) = &w.billing_service {
            billing.watch_entitlements(relay.clone());
        }
        w.relay = Some(Arc::new(skein_relay::InProcessRelay(relay.clone())));
        w.relay_service = Some(relay.clone());
        Ok(relay as Arc<dyn Service>)
    })
}

fn chat(w: &mut Wiring) -> BoxFuture<'_, anyhow::Result<Arc<dyn Service>>> {
    Box::pin(async move {
        // Answers are billed in the user's own group, which the relay decides.
        let relay = need(&w.relay, ServiceName::Chat, ServiceName::Relay)?;
        // Only a process that serves chat starts it: starting marks answers it finds cut off
        // as failed, which is only this process's business when it writes them.
        let chat = ChatService::start(w.db.clone(), relay, w.files.clone(), w.config.chat.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the Chat service: {e}"))?;
        if let Some(settings) = &w.settings {
            chat.set_settings(settings.clone());
        }
        // Knowledge, Plugin and Agent built later in this process join Chat as they are
        // built; those that run elsewhere (known already) join it here.
        if let Some(knowledge) = &w.knowledge {
            chat.add_context_source(Arc::new(crate::rag::KnowledgeRetrieval::new(
                knowledge.clone(),
            )));
        }
        if let Some(plugins) = &w.plugins {
            chat.add_tool_runner(Arc::new(skein_chat::plugin_tools::PluginTools(
                plugins.clone(),
            )));
        }
        if let Some(agents) = &w.agents {
            chat.add_context_source(Arc::new(crate::agent_chat::AgentPersona(agents.clone())));
        }
        w.chat_service = Some(chat.clone());
        Ok(chat as Arc<dyn Service>)
    })
}

fn file(w: &mut Wiring) -> BoxFuture<'_, anyhow::Result<Arc<dyn Service>>> {
    Box::pin(async move {
        let files = file_service(&w.config, w.db.clone(), w.limiter.clone()).await?;
        w.files = Some(files.clone() as Arc<dyn FileApi>);
        w.file_service = Some(files.clone());
        Ok(files as Arc<dyn Service>)
    })
}

/// The File service over `config`, as `skein serve` builds it (and `skein migrate`, which
/// moves chat images into it).
pub async fn file_service(
    config: &Config,
    db: Db,
    limiter: Arc<dyn RateLimiter>,
) -> anyhow::Result<Arc<FileService>> {
    let signing_key = skein_file::signing_key(&config.file, &config.data_dir)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let deps = skein_file::FileDeps {
        db,
        data_dir: config.data_dir.clone(),
        signing_key,
        limiter,
        sweep_every: Duration::from_secs(config.file.sweep_interval_secs),
        // Knowledge's extractors preview Office documents and EPUBs.
        documents: Some(Arc::new(skein_knowledge::extract::DocumentPreviews)),
    };
    FileService::start(config.file.clone(), deps)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the File service: {e}"))
}

fn knowledge(w: &mut Wiring) -> BoxFuture<'_, anyhow::Result<Arc<dyn Service>>> {
    Box::pin(async move {
        let files = need(&w.files, ServiceName::Knowledge, ServiceName::File)?;
        let relay = need(&w.relay, ServiceName::Knowledge, ServiceName::Relay)?;
        let knowledge =
            KnowledgeService::start(w.db.clone(), w.config.knowledge.clone(), files, relay);
        if let Some(model) = w.local_embed().await {
            knowledge.set_local_model(model);
        }
        w.knowledge = Some(knowledge.clone() as Arc<dyn KnowledgeApi>);
        // Chat in this process answers from the bases a conversation attached.
        if let Some(chat) = &w.chat_service {
            chat.add_context_source(Arc::new(crate::rag::KnowledgeRetrieval::new(
                knowledge.clone(),
            )));
        }
        Ok(knowledge as Arc<dyn Service>)
    })
}

fn plugin(w: &mut Wiring) -> BoxFuture<'_, anyhow::Result<Arc<dyn Service>>> {
    Box::pin(async move {
        // Plugin secrets are sealed with a key derived from the relay's, which every process
        // of a deployment shares.
        let vault = skein_plugin::Vault::derived(&crate::relay_secret(&w.config)?);
        let plugins = PluginService::new(
            w.db.clone(),
            vault,
            w.relay.clone(),
            w.files.clone(),
            w.billing.clone(),
            w.config.plugin.clone(),
        )
        .map_err(|e| anyhow::anyhow!("cannot start the Plugin service: {e}"))?;
        // Chat in this process offers the tools its users enabled.
        if let Some(chat) = &w.chat_service {
            chat.add_tool_runner(Arc::new(skein_chat::plugin_tools::PluginTools(
                plugins.clone() as Arc<dyn PluginApi>,
            )));
        }
        w.plugins = Some(plugins.clone() as Arc<dyn PluginApi>);
        w.plugin_service = Some(plugins.clone());
        Ok(plugins as Arc<dyn Service>)
    })
}

fn agent(w: &mut Wiring) -> BoxFuture<'_, anyhow::Result<Arc<dyn Service>>> {
    Box::pin(async move {
        // Conversations start in this process's Chat, or in the one at services.chat_url;
        // with neither, starting a conversation answers 503.
        let peers = skein_agent::Peers {
            opener: w
                .chat_service
                .clone()
                .map(|chat| chat as Arc<dyn ConversationOpener>)
                .or_else(|| w.opener.clone()),
            knowledge: w.knowledge.clone(),
            plugins: w.plugins.clone(),
            relay: w.relay.clone(),
            files: w.files.clone(),
        };
        let agents = AgentService::new(w.db.clone(), peers);
        if let Some(chat) = &w.chat_service {
            chat.add_context_source(Arc::new(crate::agent_chat::AgentPersona(
                agents.clone() as Arc<dyn AgentApi>
            )));
        }
        w.agents = Some(agents.clone() as Arc<dyn AgentApi>);
        w.agent_service = Some(agents.clone());
        Ok(agents as Arc<dyn Service>)
    })
}
