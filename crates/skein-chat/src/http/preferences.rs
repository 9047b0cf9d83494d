//! Each user's chat preferences, kept on the server so every device starts the same: the model
//! a new chat starts with, which key sends, and the thread's text size.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use super::nullable;
use crate::ChatService;
use crate::store::{self, PreferencesRow};

/// A user's chat preferences.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatPreferences {
    /// The model a new chat starts with; `null`: the server's default.
    pub default_model: Option<String>,
    /// `enter` (Shift+Enter adds a line) or `mod_enter` (Ctrl/⌘+Enter sends, Enter adds a line).
    pub send_key: String,
    /// The thread's text size: `small`, `medium` or `large`.
    pub font_size: String,
}

/// A change of chat preferences: fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatPreferencesUpdate {
    /// A model name, or `null` for the server's default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub default_model: Option<Option<String>>,
    /// `enter` or `mod_enter`.
    pub send_key: Option<String>,
    /// `small`, `medium` or `large`.
    pub font_size: Option<String>,
}

fn view(p: PreferencesRow) -> ChatPreferences {
    ChatPreferences {
        default_model: p.default_model,
        send_key: p.send_key,
        font_size: p.font_size,
    }
}

/// The caller's chat preferences (the defaults until they change one).
#[utoipa::path(get, path = "/chat/preferences", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = ChatPreferences), (status = 401, body = ErrorEnvelope)))]
pub async fn get_preferences(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<ChatPreferences>> {
    let stored = store::preferences(&svc.db, &user.user_id).await?;
    Ok(ApiJson(view(stored.unwrap_or_default())))
}

/// Change chat preferences; every invalid field is refused and nothing is stored then.
#[utoipa::path(put, path = "/chat/preferences", tag = "chat", security(("bearer" = [])),
    request_body = ChatPreferencesUpdate,
    responses((status = 200, body = ChatPreferences), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_preferences(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<ChatPreferencesUpdate>,
) -> ApiResult<ApiJson<ChatPreferences>> {
    let mut p = store::preferences(&svc.db, &user.user_id)
        .await?
        .unwrap_or_default();
    if let Some(model) = req.default_model {
        let model = model
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
        if model.as_ref().is_some_and(|m| m.chars().count() > 200) {
            return Err(ApiError::invalid_field(
                "default_model",
                "default_model is at most 200 characters.",
                "default_model 最多 200 个字符。",
            ));
        }
        p.default_model = model;
    }
    if let Some(key) = req.send_key {
        if key != "enter" && key != "mod_enter" {
            return Err(ApiError::invalid_field(
                "send_key",
                "send_key is enter or mod_enter.",
                "send_key 须为 enter 或 mod_enter。",
            ));
        }
        p.send_key = key;
    }
    if let Some(size) = req.font_size {
        if !matches!(size.as_str(), "small" | "medium" | "large") {
            return Err(ApiError::invalid_field(
                "font_size",
                "font_size is small, medium or large.",
                "font_size 须为 small、medium 或 large。",
            ));
        }
        p.font_size = size;
    }
    store::put_preferences(&svc.db, &user.user_id, &p, ids::now_ms()).await?;
    Ok(ApiJson(view(p)))
}
