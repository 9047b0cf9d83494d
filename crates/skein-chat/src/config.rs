//! The `[chat]` section of the configuration.

use serde::{Deserialize, Serialize};

/// Chat: which models make titles and summaries, and how much history fits a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Model a new conversation uses when it names none (`None`: the first priced model).
    pub default_model: Option<String>,
    /// Model that writes conversation titles (`None`: the conversation's own model; empty
    /// string: no generated titles).
    pub title_model: Option<String>,
    /// A cheap model that summarises turns too old to fit the window (`None`: older turns are
    /// dropped, not summarised).
    pub summary_model: Option<String>,
    /// Tokens of a model's window kept free for its answer when the conversation sets no
    /// `max_tokens`.
    pub output_reserve: u32,
    /// Longest message a user may send, in characters.
    pub max_message_chars: usize,
    /// Speech-to-text model for voice input.
    pub transcription_model: String,
    /// Text-to-speech model that reads answers aloud (it needs a channel and a price; without
    /// them the web app reads with the browser's own voice).
    pub speech_model: String,
    /// The voice it reads with, as the model names its voices.
    pub speech_voice: String,
    /// Context windows (tokens) by model name, over the built-in table.
    pub context_windows: std::collections::BTreeMap<String, u32>,
    /// Window assumed for a model neither table knows.
    pub default_context_window: u32,
    /// Longest a tool call that needs the user's approval waits for it, seconds; then it
    /// does not run and the model hears so.
    pub tool_approval_timeout_secs: u64,
    /// Most chat WebSockets (`/chat/socket`) one user may keep open on one instance; a
    /// browser tab needs one.
    pub max_sockets_per_user: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            default_model: None,
            title_model: None,
            summary_model: None,
            output_reserve: 4096,
            max_message_chars: 100_000,
            transcription_model: "whisper-1".into(),
            speech_model: "tts-1".into(),
            speech_voice: "alloy".into(),
            context_windows: Default::default(),
            default_context_window: 16_384,
            tool_approval_timeout_secs: 120,
            max_sockets_per_user: 8,
        }
    }
}

impl ChatConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        // An answer unsaved for 5 minutes counts as abandoned; a wait stays well inside that.
        if !(1..=240).contains(&self.tool_approval_timeout_secs) {
            return Err("chat.tool_approval_timeout_secs must be 1 to 240".into());
        }
        if self.max_sockets_per_user == 0 {
            return Err("chat.max_sockets_per_user must be at least 1".into());
        }
        if self.max_message_chars == 0 || self.default_context_window < 512 {
            return Err(
                "chat.max_message_chars must be at least 1 and chat.default_context_window at least 512"
                    .into(),
            );
        }
        Ok(())
    }
}
