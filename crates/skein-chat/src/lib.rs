//! Skein's Chat service (`/api/v1/chat`): conversations whose messages form a tree (edits and
//! regenerations add siblings; nothing is overwritten), answers streamed over SSE through the
//! relay (in this process or another, through [`RelayApi`]) and billed to the user, history
//! trimmed to the model's window, titles, export and import.
//!
//! What an answer sends upstream is decided outside HTTP: a [`turn::Turn`] gathers what the
//! answer needs and the [`sources::ContextSource`]s assemble its context (the system prompt
//! and the history today; an agent's settings and knowledge retrieval plug in through
//! [`ChatService::add_context_source`]). The model's tool calls run in the answer's task,
//! between relay calls, with the runners added through [`ChatService::add_tool_runner`] (see
//! [`tools`]).
//!
//! **Architecture Invariant:** only this crate touches `chat_conversations` and
//! `chat_messages`; every model call goes through [`RelayApi`], so chat usage lands in the
//! user's consumption records and ledger like any API call, with the conversation id.

mod answer;
pub mod config;
pub mod context;
pub(crate) mod errors;
pub mod event;
pub mod export;
pub mod generate;
mod http;
pub mod images;
pub mod import;
pub mod live;
pub mod markdown;
pub mod plugin_tools;
pub mod remote;
mod service;
pub mod sources;
pub mod store;
pub mod tools;
pub mod tree;
pub mod turn;

use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use config::ChatConfig;
use futures::StreamExt;
use serde_json::{Value, json};
use skein_core::ApiError;
use skein_core::api::{FileApi, RelayApi, RelayCaller};
use skein_core::ids;
use skein_core::service::{BackgroundTasks, FirstRun};
use skein_db::{Db, ServiceMigrations};
use utoipa_axum::router::OpenApiRouter;

use sources::ContextSource;
use store::MessageRow;
use tools::ToolRunner;
use tree::Tree;

// The answer's task (`generate.rs`) names the summary step from the crate root.
pub(crate) use sources::summarize;
pub use sources::{SUMMARY_TOKENS, Summarize};

/// The Chat service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: skein_core::service::ServiceName::Chat,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// How often deleted conversations past their restore window are purged and abandoned answers
/// are failed.
const PURGE_EVERY: Duration = Duration::from_secs(120);

/// An answer `streaming` but unwritten this long lost its server.
const STALE_AFTER_MS: i64 = 5 * 60 * 1000;

/// The Chat service.
pub struct ChatService {
    db: Db,
    relay: Arc<dyn RelayApi>,
    /// Where images are kept (see [`images`]); without it they stay inline in messages.
    files: Option<Arc<dyn FileApi>>,
    config: ChatConfig,
    running: generate::Registry,
    /// Answers still being written; shutdown waits for them.
    tasks: tokio_util::task::TaskTracker,
    /// What assembles each answer's context, in the order added (run by stage).
    sources: RwLock<Vec<Arc<dyn ContextSource>>>,
    /// What runs the tools the model may call (none by default; see `tools.rs`).
    tool_runners: RwLock<Vec<Arc<dyn ToolRunner>>>,
    /// The purge of abandoned answers and deleted conversations, and the bus listeners.
    background: BackgroundTasks,
    /// This instance's name in answer locks (random per process).
    instance: String,
    /// The deployment's bus, once joined (see [`live`]).
    bus: std::sync::OnceLock<Arc<dyn skein_core::bus::Bus>>,
    /// Clients here attached to answers written on other instances.
    watches: live::Watches,
    /// The system settings (default and title model), when the User service runs here.
    settings: std::sync::OnceLock<Arc<dyn skein_core::api::SettingsSource>>,
    /// The chat WebSockets open here, by user (see `http/socket.rs`).
    sockets: http::socket::Sockets,
    /// Whether a session still stands, for requests on a socket opened earlier.
    sessions: std::sync::OnceLock<Arc<dyn skein_core::api::SessionDirectory>>,
}

impl ChatService {
    /// Reads the default and title model from the system settings (composition time: the
    /// User service's own, or those read from it in another process); without them, `[chat]`
    /// decides them.
    pub fn set_settings(&self, settings: Arc<dyn skein_core::api::SettingsSource>) {
        let _ = self.settings.set(settings);
    }

    /// Checks each request on a chat socket against the sessions (composition time): a
    /// session that ended stops its sockets as it stops its HTTP requests.
    pub fn set_sessions(&self, sessions: Arc<dyn skein_core::api::SessionDirectory>) {
        let _ = self.sessions.set(sessions);
    }

    /// The default model in effect.
    pub(crate) fn default_model(&self) -> Option<String> {
        match self.settings.get() {
            Some(source) => source.current().default_model.clone(),
            None => self.config.default_model.clone(),
        }
    }

    /// The title model in effect (`""`: no generated titles).
    pub(crate) fn title_model(&self) -> Option<String> {
        match self.settings.get() {
            Some(source) => source.current().title_model.clone(),
            None => self.config.title_model.clone(),
        }
    }

    /// Starts the service: answers left half-written by a previous process are marked failed,
    /// and deleted conversations are purged once their restore window has passed.
    pub async fn start(
        db: Db,
        relay: Arc<dyn RelayApi>,
        files: Option<Arc<dyn FileApi>>,
        config: ChatConfig,
    ) -> Result<Arc<Self>, ApiError> {
        // SQLite has one writing process, so whatever it left streaming was cut off; with
        // PostgreSQL other instances may be writing, so only answers gone quiet are failed.
        let now = ids::now_ms();
        let before = match db.backend() {
            skein_db::Backend::Sqlite => now + 1,
            skein_db::Backend::Postgres => now - STALE_AFTER_MS,
        };
        let interrupted = store::fail_interrupted(&db, before, now).await?;
        if db.backend() == skein_db::Backend::Sqlite {
            // The only writer: any lock left was a stopped process's. (On PostgreSQL locks
            // of a crashed instance lapse with their lease.)
            store::clear_answer_locks(&db).await?;
        }
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "answers cut off by a stopped server were marked failed"
            );
        }
        let builtin: Vec<Arc<dyn ContextSource>> = vec![
            Arc::new(sources::SystemPrompt),
            Arc::new(sources::History::new(config.summary_model.clone())),
        ];
        let service = Arc::new(ChatService {
            db,
            relay,
            files,
            config,
            running: generate::Registry::default(),
            tasks: tokio_util::task::TaskTracker::new(),
            sources: RwLock::new(builtin),
            tool_runners: RwLock::new(Vec::new()),
            background: BackgroundTasks::new(),
            instance: skein_core::bus::instance_id(),
            bus: std::sync::OnceLock::new(),
            watches: live::Watches::default(),
            settings: std::sync::OnceLock::new(),
            sockets: http::socket::Sockets::default(),
            sessions: std::sync::OnceLock::new(),
        });
        service.background.every(
            "chat.purge",
            PURGE_EVERY,
            FirstRun::Now,
            &service,
            |service| async move { service.purge().await },
        );
        Ok(service)
    }

    /// Fails answers whose writer went away and purges conversations past their restore
    /// window; the purge task's tick.
    async fn purge(&self) {
        let now = ids::now_ms();
        match store::fail_interrupted(&self.db, now - STALE_AFTER_MS, now).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                answers = n,
                "answers whose server went away were marked failed"
            ),
            Err(error) => tracing::warn!(%error, "failing abandoned answers failed"),
        }
        match store::purge_deleted(&self.db, ids::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(conversations = n, "purged deleted conversations"),
            Err(error) => tracing::warn!(%error, "purging deleted conversations failed"),
        }
    }

    /// Creates an empty conversation of `user_id` titled `title` (at most 200 characters
    /// kept) and returns its id: how another service (Agent) starts a conversation it then
    /// configures through a context source.
    pub async fn open_conversation(&self, user_id: &str, title: &str) -> Result<String, ApiError> {
        let now = ids::now_ms();
        let title: String = title.chars().take(200).collect();
        let row = store::ConversationRow::new(ids::new_id(), user_id, title, now);
        store::insert_conversation(self.db.pool(), &row).await?;
        Ok(row.id)
    }

    /// The service's `/api/v1` routes.
    pub fn routes(self: Arc<Self>) -> OpenApiRouter {
        http::routes(self)
    }

    /// Adds a source of context for every later answer (an agent's settings, knowledge
    /// retrieval), after the conversation's system prompt and history, which are built in; it
    /// runs in its [`Stage`](sources::Stage), after the sources of that stage added before it.
    pub fn add_context_source(&self, source: Arc<dyn ContextSource>) {
        // A writer that panicked left a whole list behind (a push cannot half-happen).
        let mut sources = self.sources.write().unwrap_or_else(|e| e.into_inner());
        sources.push(source);
    }

    /// The sources of context, as added.
    pub fn context_sources(&self) -> Vec<Arc<dyn ContextSource>> {
        self.sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds a runner of tools the model may call in every later answer (the Plugin service's
    /// seam); see [`tools`] for how the generation loop runs them.
    pub fn add_tool_runner(&self, runner: Arc<dyn ToolRunner>) {
        let mut runners = self.tool_runners.write().unwrap_or_else(|e| e.into_inner());
        runners.push(runner);
    }

    /// The runners of tools, as added.
    pub fn tool_runners(&self) -> Vec<Arc<dyn ToolRunner>> {
        self.tool_runners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (up to `limit`) for answers still being written, so they are saved whole. Past
    /// the limit they are stopped, keeping what was written.
    pub async fn drain(&self, limit: Duration) {
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            self.running.stop_all();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        }
        // After the answers: a socket still carries the last of them until they end.
        self.sockets.close_all();
    }
}

/// Collects the whole text of a relayed call (titles and summaries, which nobody watches);
/// `None` if it was refused or broke off.
async fn complete(svc: &ChatService, caller: &RelayCaller, request: Value) -> Option<String> {
    let mut events = match svc.relay.chat(caller.clone(), request).await {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, "an auxiliary chat call was refused");
            return None;
        }
    };
    let mut text = String::new();
    while let Some(event) = events.next().await {
        match event {
            skein_core::api::ChatEvent::Delta(part) => text.push_str(&part),
            skein_core::api::ChatEvent::Error(_) => return None,
            _ => {}
        }
    }
    Some(text)
}

/// Asks the title model for a short title in the conversation's language.
async fn make_title(
    svc: &ChatService,
    caller: &RelayCaller,
    conversation_model: &str,
    question: &str,
    answer: &str,
) -> Option<String> {
    let title_model = svc.title_model();
    let model = match title_model.as_deref() {
        Some("") => return None,
        Some(model) => model.to_string(),
        None => conversation_model.to_string(),
    };
    let excerpt = |text: &str| text.chars().take(1000).collect::<String>();
    let request = json!({
        "model": model,
        "max_tokens": 40,
        "messages": [
            {"role": "system", "content": "Write a title of at most 8 words for this conversation, in the language the user wrote in. Answer with the title only: no quotes, no punctuation at the end."},
            {"role": "user", "content": format!("User: {}\n\nAssistant: {}", excerpt(question), excerpt(answer))},
        ],
    });
    let title = complete(svc, caller, request).await?;
    Some(clean_title(&title)).filter(|t| !t.is_empty())
}

/// A title as the sidebar shows it: models answer in Markdown even when asked not to
/// (`**Rust lifetimes**`), so the marks go, then any quotes around it and a final full stop.
pub fn clean_title(raw: &str) -> String {
    let quote = |c: char| matches!(c, '"' | '\'' | '“' | '”' | '「' | '」' | '《' | '》');
    // The full stop may sit inside the quotes or after them: trim quotes on both sides of it.
    markdown::plain_text(raw)
        .trim_matches(quote)
        .trim_end_matches(['.', '。'])
        .trim_matches(quote)
        .trim()
        .chars()
        .take(80)
        .collect()
}

/// Whether a priced model can hold a conversation: not a speech, image, embedding or rerank
/// model, and not priced per call alone.
pub fn is_chat_model(model: &skein_core::api::PricedModel) -> bool {
    const NOT_CHAT: &[&str] = &[
        "whisper",
        "tts",
        "dall-e",
        "gpt-image",
        "embedding",
        "embed",
        "rerank",
        "transcribe",
        "moderation",
        "speech",
        "audio",
    ];
    let name = model.id.to_ascii_lowercase();
    let tokens_priced = model.input_price > 0 || model.output_price > 0 || model.per_call == 0;
    tokens_priced && !NOT_CHAT.iter().any(|word| name.contains(word))
}

/// A message as the API shows it, with its place among its siblings. Borrowed from the row
/// and serialized directly: a history of thousands of messages builds no JSON tree.
#[derive(serde::Serialize)]
pub(crate) struct MessageView<'a> {
    id: &'a str,
    conversation_id: &'a str,
    parent_id: Option<&'a str>,
    role: &'a str,
    content: &'a str,
    reasoning: Option<&'a str>,
    status: store::MessageStatus,
    /// Why the model stopped (`length`: cut at its limit, and can be continued).
    finish_reason: Option<&'a str>,
    model: Option<&'a str>,
    error: Value,
    images: Value,
    /// `images` as the browser loads them: stored images as signed URLs.
    image_urls: Value,
    /// What the answer drew on (citations), left out when nothing.
    #[serde(skip_serializing_if = "Value::is_null")]
    sources: Value,
    /// The tools the answer called and their results, left out when none.
    #[serde(skip_serializing_if = "Value::is_null")]
    tool_calls: Value,
    sibling_ids: Vec<&'a str>,
    sibling_index: usize,
    sibling_count: usize,
    usage: Option<UsageView>,
    created_at: String,
    /// The reader's verdict on an answer (`up` or `down`), left out when none; only the
    /// history sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) feedback: Option<String>,
}

/// What an answer used and cost.
#[derive(serde::Serialize)]
pub(crate) struct UsageView {
    prompt_tokens: i64,
    completion_tokens: i64,
    cost: i64,
}

/// The API's view of `row` within `tree`.
pub(crate) fn view<'a>(
    row: &'a MessageRow,
    tree: &Tree<'a, MessageRow>,
    files: Option<&Arc<dyn FileApi>>,
) -> MessageView<'a> {
    let (sibling_ids, sibling_index) = tree.siblings(row);
    let parse = |text: &Option<String>, empty: Value| {
        text.as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(empty)
    };
    MessageView {
        id: &row.id,
        conversation_id: &row.conversation_id,
        parent_id: row.parent_id.as_deref(),
        role: &row.role,
        content: &row.content,
        reasoning: row.reasoning.as_deref(),
        status: row.status,
        finish_reason: row.finish_reason.as_deref(),
        model: row.model.as_deref(),
        error: parse(&row.error, Value::Null),
        image_urls: images::shown_urls(files, &parse(&row.images, json!([]))),
        images: parse(&row.images, json!([])),
        sources: parse(&row.sources, Value::Null),
        tool_calls: parse(&row.tool_calls, Value::Null),
        sibling_count: sibling_ids.len(),
        sibling_ids,
        sibling_index,
        usage: match (row.prompt_tokens, row.completion_tokens, row.cost) {
            (Some(prompt_tokens), Some(completion_tokens), Some(cost)) => Some(UsageView {
                prompt_tokens,
                completion_tokens,
                cost,
            }),
            _ => None,
        },
        created_at: ids::ms_to_rfc3339(row.created_at),
        feedback: None,
    }
}

/// One message of a conversation as the API shows it.
pub(crate) async fn message_view(
    svc: &ChatService,
    user_id: &str,
    conversation_id: &str,
    message_id: &str,
) -> Result<Option<Value>, ApiError> {
    let rows = store::messages(&svc.db, user_id, conversation_id).await?;
    let tree = Tree::new(&rows);
    Ok(tree
        .get(message_id)
        .map(|row| serde_json::to_value(view(row, &tree, svc.files.as_ref())).unwrap_or_default()))
}

/// The branch on screen: from the root to the active leaf (or the newest leaf when the
/// pointer is missing).
pub(crate) fn active_path<'a>(
    tree: &Tree<'a, MessageRow>,
    active: Option<&str>,
) -> Vec<&'a MessageRow> {
    let leaf = active
        .filter(|id| tree.get(id).is_some())
        .map(str::to_string)
        .or_else(|| tree.newest_root_leaf().map(str::to_string));
    match leaf {
        Some(leaf) => tree.path_to(&leaf),
        None => Vec::new(),
    }
}
/// Sizes for the runtime report: answers being written (one per conversation at most, each
/// with its re-attach buffer, gone when the answer ends).
impl skein_core::runtime::Gauges for ChatService {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        vec![(
            "chat.running_answers",
            skein_core::runtime::count(self.running.len()),
        )]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_generated_title_keeps_no_markdown_or_quotes() {
        assert_eq!(super::clean_title("**Rust lifetimes**"), "Rust lifetimes");
        assert_eq!(super::clean_title("\"`sqlx` *pools*.\"\n"), "sqlx pools");
        assert_eq!(
            super::clean_title("「数据库 **连接池**」。"),
            "数据库 连接池"
        );
    }
}
