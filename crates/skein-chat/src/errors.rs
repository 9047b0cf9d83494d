//! The chat service's own error codes, one named constructor each, written once.

use axum::http::StatusCode;
use skein_core::ApiError;

// ---- conversations, messages, prompts, shares ---------------------------------------------

/// 404 for a conversation that does not exist or is not the caller's.
pub(crate) fn not_found() -> ApiError {
    ApiError::not_found("Conversation", "对话")
}

/// 404 for a message that is not in the caller's conversation.
pub(crate) fn message_not_found() -> ApiError {
    ApiError::not_found("Message", "消息")
}

/// 404 for a prompt that does not exist or that the caller may not see.
pub(crate) fn prompt_not_found() -> ApiError {
    ApiError::not_found("Prompt", "提示词")
}

/// 404 for a share link that does not exist or was revoked.
pub(crate) fn share_not_found() -> ApiError {
    ApiError::not_found("Shared conversation", "分享的对话")
}

/// 403 for a user sharing a prompt with everyone: only administrators publish.
pub(crate) fn shared_prompt_admin_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Only an administrator shares a prompt with everyone.",
        "只有管理员可以把提示词共享给所有人。",
    )
}

/// 422 for an optional JSON body that is there but does not fit, with serde's reason.
pub(crate) fn body_does_not_fit(e: serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        format!("The body does not fit: {e}"),
        format!("请求体格式不符：{e}"),
    )
}

/// 422 for an image reference that is no image.
pub(crate) fn not_an_image() -> ApiError {
    ApiError::invalid_field("images", "That file is not an image.", "该文件不是图片。")
}

// ---- answers ------------------------------------------------------------------------------

/// The refusal of a second answer in a conversation.
pub(crate) fn busy() -> ApiError {
    ApiError::conflict(
        "generation_in_progress",
        "An answer is still being written in this conversation. Wait for it or stop it.",
        "该对话仍在生成回答，请等待完成或先停止。",
    )
}

/// The refusal of a continue whose answer is being written again meanwhile.
pub(crate) fn not_finished() -> ApiError {
    ApiError::conflict(
        "generation_in_progress",
        "This answer is being written. Wait for it or stop it.",
        "该回答正在生成，请等待完成或先停止。",
    )
}

/// 422 for a chat with model `name`, which has no channel or no price.
pub(crate) fn model_not_available(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "model_not_available",
        format!("{name} is not available for chat (no channel or no price)."),
        format!("{name} 不可用于对话（没有渠道或未定价）。"),
    )
}

/// 422 for a chat without a model while no model has both a channel and a price.
pub(crate) fn no_model_available() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "model_not_available",
        "No model is available yet: an administrator must add a channel and a price.",
        "暂无可用模型：需要管理员添加渠道并设置价格。",
    )
}

// ---- the chat socket ----------------------------------------------------------------------

/// 429 for opening a socket while the user holds `max` on this instance.
pub(crate) fn too_many_sockets(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_sockets",
        format!("At most {max} chat sockets per user are open at once; close one first."),
        format!("每个用户最多同时打开 {max} 个聊天连接，请先关闭一个。"),
    )
}

/// 429 for a request on a socket already running `max` of them.
pub(crate) fn too_many_streams(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
        format!("At most {max} requests run at once on one socket."),
        format!("每个连接最多同时进行 {max} 个请求。"),
    )
}

/// 400 for a socket frame that is not a request the protocol knows.
pub(crate) fn invalid_request(en: impl Into<String>, zh: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        en.into(),
        zh.into(),
    )
}

/// 422 for a socket request whose fields do not fit its type, with serde's reason.
pub(crate) fn request_does_not_fit(e: serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        format!("The request does not fit: {e}"),
        format!("请求格式不符：{e}"),
    )
}

/// 422 for a socket request with a field its type does not have (a typo is not ignored).
pub(crate) fn unknown_field(field: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        format!("Unknown field `{field}`."),
        format!("未知字段 `{field}`。"),
    )
}

// ---- voice --------------------------------------------------------------------------------

/// 413 for a recording over 25 MB, the speech-to-text limit.
pub(crate) fn audio_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "audio_too_large",
        "A recording may be at most 25 MB.",
        "录音最大 25 MB。",
    )
}

/// 415 for a recording not sent as a multipart form.
pub(crate) fn recording_not_multipart() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the recording as multipart/form-data with a file field.",
        "请以 multipart/form-data 上传录音（file 字段）。",
    )
}

/// 415 for a recording in a format speech-to-text does not take.
pub(crate) fn unsupported_audio() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_audio",
        "Record as webm, ogg, wav or mp3.",
        "请使用 webm、ogg、wav 或 mp3 格式的录音。",
    )
}

/// 422 for reading an answer aloud while the speech `model` has no channel or price.
pub(crate) fn speech_not_available(model: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "speech_not_available",
        format!("{model} has no channel or price: answers cannot be read aloud by the server."),
        format!("{model} 没有渠道或价格：服务器无法朗读回答。"),
    )
}

// ---- import -------------------------------------------------------------------------------

/// 413 for an import over one of its limits.
pub(crate) fn too_large(what_en: &str, what_zh: &str, max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "import_too_large",
        format!("This import is too large: at most {max} {what_en}. Split the file."),
        format!("导入内容过大：最多 {max} {what_zh}，请拆分文件。"),
    )
    .with_details(serde_json::json!({ "limit": what_en, "max": max }))
}

/// 413 for an import with more than `max` conversations.
pub(crate) fn too_many_conversations(max: usize) -> ApiError {
    too_large("conversations per import", "个对话（每次导入）", max)
}

/// 413 for an imported conversation with more than `max` messages.
pub(crate) fn too_many_messages(max: usize) -> ApiError {
    too_large("messages per conversation", "条消息（每个对话）", max)
}

/// 422 for an import whose message tree has a loop: it has no root to store from.
pub(crate) fn cycle() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "import_cycle",
        "The file's messages form a loop (a message is its own ancestor); it cannot be imported.",
        "文件中的消息形成了循环（某条消息是它自己的祖先），无法导入。",
    )
}
