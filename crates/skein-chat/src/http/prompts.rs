//! The prompt library: text inserted by typing `/command` in the composer. Each user keeps
//! their own; an administrator may share one with everyone.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::principal::Role;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use crate::ChatService;
use crate::errors;
use crate::store::{self, PromptRow};

/// A prompt as its reader sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptView {
    /// Id.
    pub id: String,
    /// What follows `/` in the composer.
    pub command: String,
    /// A short name.
    pub title: String,
    /// The text inserted.
    pub content: String,
    /// Every user sees it.
    pub shared: bool,
    /// The reader's own (they may change or delete it).
    pub mine: bool,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

/// A new prompt, or a change of one (fields left out stay as they are).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptInput {
    /// 1–32 letters, digits, `-` or `_` (no spaces); unique among the caller's prompts.
    pub command: Option<String>,
    /// 1–100 characters.
    pub title: Option<String>,
    /// 1–20,000 characters.
    pub content: Option<String>,
    /// Share with every user (administrators only).
    pub shared: Option<bool>,
}

fn view(p: PromptRow, reader: &str) -> PromptView {
    PromptView {
        mine: p.user_id == reader,
        shared: p.shared == 1,
        updated_at: ids::ms_to_rfc3339(p.updated_at),
        id: p.id,
        command: p.command,
        title: p.title,
        content: p.content,
    }
}

/// Checks and applies `input` to `p` (every rule, in the caller's terms).
async fn apply(
    svc: &ChatService,
    user: &AuthUser,
    p: &mut PromptRow,
    input: PromptInput,
) -> ApiResult<()> {
    if let Some(command) = input.command {
        let command = command.trim().trim_start_matches('/').to_string();
        let ok = (1..=32).contains(&command.chars().count())
            && command
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(ApiError::invalid_field(
                "command",
                "command is 1–32 letters, digits, - or _, without spaces.",
                "command 须为 1–32 个字母、数字、- 或 _，不含空格。",
            ));
        }
        p.command = command;
    }
    if let Some(title) = input.title {
        let title = title.trim().to_string();
        if !(1..=100).contains(&title.chars().count()) {
            return Err(ApiError::invalid_field(
                "title",
                "title is 1–100 characters.",
                "title 须为 1–100 个字符。",
            ));
        }
        p.title = title;
    }
    if let Some(content) = input.content {
        if content.trim().is_empty() || content.chars().count() > 20_000 {
            return Err(ApiError::invalid_field(
                "content",
                "content is 1–20,000 characters.",
                "content 须为 1–20000 个字符。",
            ));
        }
        p.content = content;
    }
    if let Some(shared) = input.shared {
        if shared && !matches!(user.role, Role::Admin | Role::Root) {
            return Err(errors::shared_prompt_admin_only());
        }
        p.shared = i64::from(shared);
    }
    if p.command.is_empty() || p.title.is_empty() || p.content.is_empty() {
        return Err(ApiError::invalid_field(
            "command",
            "A prompt needs a command, a title and its text.",
            "提示词需要命令、标题和内容。",
        ));
    }
    if store::command_taken(&svc.db, &p.user_id, &p.command, &p.id).await? {
        return Err(ApiError::conflict(
            "command_taken",
            format!("You already have a prompt called /{}.", p.command),
            format!("你已有名为 /{} 的提示词。", p.command),
        ));
    }
    Ok(())
}

/// The caller's prompts and the shared ones, by command.
#[utoipa::path(get, path = "/chat/prompts", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Vec<PromptView>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_prompts(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<PromptView>>> {
    let rows = store::prompts(&svc.db, &user.user_id).await?;
    Ok(ApiJson(
        rows.into_iter().map(|p| view(p, &user.user_id)).collect(),
    ))
}

/// Add a prompt to the caller's library.
#[utoipa::path(post, path = "/chat/prompts", tag = "chat", security(("bearer" = [])), request_body = PromptInput,
    responses((status = 201, body = PromptView), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create_prompt(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    ApiJson(input): ApiJson<PromptInput>,
) -> ApiResult<(StatusCode, ApiJson<PromptView>)> {
    let now = ids::now_ms();
    let mut p = PromptRow {
        id: ids::new_id(),
        user_id: user.user_id.clone(),
        command: String::new(),
        title: String::new(),
        content: String::new(),
        shared: 0,
        created_at: now,
        updated_at: now,
    };
    apply(&svc, &user, &mut p, input).await?;
    store::put_prompt(&svc.db, &p).await?;
    Ok((StatusCode::CREATED, ApiJson(view(p, &user.user_id))))
}

/// Change one of the caller's prompts.
#[utoipa::path(patch, path = "/chat/prompts/{id}", tag = "chat", security(("bearer" = [])), request_body = PromptInput,
    responses((status = 200, body = PromptView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_prompt(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PromptInput>,
) -> ApiResult<ApiJson<PromptView>> {
    let mut p = store::own_prompt(&svc.db, &user.user_id, &id)
        .await?
        .ok_or_else(errors::prompt_not_found)?;
    apply(&svc, &user, &mut p, input).await?;
    p.updated_at = ids::now_ms();
    store::put_prompt(&svc.db, &p).await?;
    Ok(ApiJson(view(p, &user.user_id)))
}

/// Delete one of the caller's prompts.
#[utoipa::path(delete, path = "/chat/prompts/{id}", tag = "chat", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_prompt(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if store::delete_prompt(&svc.db, &user.user_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(errors::prompt_not_found())
    }
}
