//! Voice: a recording transcribed through the relay's speech-to-text route, and an answer
//! read aloud through its text-to-speech route.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult};

use crate::ChatService;
use crate::errors;

/// Largest recording voice input takes.
pub(super) const AUDIO_LIMIT: usize = 25 * 1024 * 1024;

/// Audio formats voice input takes, by MIME type and by file extension.
const AUDIO_TYPES: &[(&str, &str)] = &[
    ("audio/webm", "webm"),
    ("audio/ogg", "ogg"),
    ("audio/wav", "wav"),
    ("audio/x-wav", "wav"),
    ("audio/wave", "wav"),
    ("audio/mpeg", "mp3"),
    ("audio/mp3", "mp3"),
    ("audio/mp4", "m4a"),
    ("video/webm", "webm"),
];

/// Transcribe a recording (multipart `file`: webm, ogg, wav or mp3, at most 25 MB; optional
/// `language`) through the relay's speech-to-text route, billed like any call.
#[utoipa::path(post, path = "/chat/transcriptions", tag = "chat", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", content = String),
    responses((status = 200, body = Object), (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn transcribe(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    request_id: RequestId,
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<ApiJson<Value>> {
    let mut form = form.map_err(|_| errors::recording_not_multipart())?;
    let mut file = None;
    let mut language = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(errors::audio_too_large());
            }
            Err(error) => {
                return Err(ApiError::bad_request(
                    "invalid_form",
                    format!("The form could not be read: {error}"),
                    format!("无法读取表单：{error}"),
                ));
            }
        };
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("audio").to_string();
                let mime = field.content_type().unwrap_or("").to_ascii_lowercase();
                let bytes = field.bytes().await.map_err(|error| {
                    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        errors::audio_too_large()
                    } else {
                        ApiError::bad_request(
                            "invalid_form",
                            "The recording could not be read.",
                            "无法读取录音。",
                        )
                    }
                })?;
                file = Some((name, mime, bytes));
            }
            Some("language") => {
                let text = field.text().await.unwrap_or_default();
                let text = text.trim();
                if !text.is_empty() {
                    if text.len() > 8 || !text.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
                    {
                        return Err(ApiError::invalid_field(
                            "language",
                            "language is an ISO-639-1 code such as en or zh.",
                            "language 须为 ISO-639-1 语言代码，如 en 或 zh。",
                        ));
                    }
                    language = Some(text.to_string());
                }
            }
            _ => {}
        }
    }
    let Some((name, mime, bytes)) = file else {
        return Err(ApiError::invalid_field(
            "file",
            "Attach the recording as the file field.",
            "请在 file 字段上传录音。",
        ));
    };
    if bytes.is_empty() {
        return Err(ApiError::invalid_field(
            "file",
            "The recording is empty.",
            "录音为空。",
        ));
    }
    if bytes.len() > AUDIO_LIMIT {
        return Err(errors::audio_too_large());
    }
    let base_mime = mime.split(';').next().unwrap_or("").trim().to_string();
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let known = AUDIO_TYPES
        .iter()
        .find(|(m, e)| *m == base_mime || extension.as_deref() == Some(*e));
    let Some((known_mime, known_extension)) = known else {
        return Err(errors::unsupported_audio());
    };
    let upload = skein_core::api::AudioUpload {
        model: svc.config.transcription_model.clone(),
        file_name: format!("recording.{known_extension}"),
        content_type: (*known_mime).to_string(),
        bytes,
        language,
    };
    let caller = skein_core::api::RelayCaller {
        user_id: user.user_id.clone(),
        group: None,
        request_id: request_id.into_string(),
        conversation_id: None,
        cancel: None,
    };
    let text = svc.relay.transcribe(caller, upload).await?.text;
    Ok(ApiJson(json!({ "text": text })))
}

/// Most characters one read-aloud sends to the speech model (OpenAI's limit per request).
const SPEECH_CHARS: usize = 4096;

/// Read an answer aloud: its text without Markdown (at most the first 4,096 characters) spoken
/// by `chat.speech_model` in `chat.speech_voice`, answered as the audio itself and billed
/// through the relay per character. 422 `speech_not_available` when that model has no channel
/// or price for the caller (the web app then reads with the browser's own voice).
#[utoipa::path(post, path = "/chat/messages/{id}/speech", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "The spoken answer (audio/mpeg)", content_type = "audio/mpeg", body = Vec<u8>),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn speak(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    request_id: RequestId,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let message = super::owned_message(&svc, &user, &id).await?;
    if message.role != "assistant" {
        return Err(ApiError::invalid_field(
            "id",
            "Only an answer is read aloud.",
            "只能朗读回答。",
        ));
    }
    let text: String = crate::markdown::plain_text(&message.content)
        .trim()
        .chars()
        .take(SPEECH_CHARS)
        .collect();
    if text.is_empty() {
        return Err(ApiError::invalid_field(
            "id",
            "This answer has no text to read.",
            "该回答没有可朗读的文字。",
        ));
    }
    let model = svc.config.speech_model.clone();
    let served = svc
        .relay
        .priced_models(&user.user_id, None)
        .await?
        .iter()
        .any(|m| m.id == model);
    if !served {
        return Err(errors::speech_not_available(&model));
    }
    let caller = skein_core::api::RelayCaller {
        user_id: user.user_id.clone(),
        group: None,
        request_id: request_id.into_string(),
        conversation_id: Some(message.conversation_id.clone()),
        cancel: None,
    };
    let speech = svc
        .relay
        .speak(
            caller,
            skein_core::api::SpeechRequest {
                model,
                input: text,
                voice: svc.config.speech_voice.clone(),
                format: "mp3".into(),
            },
        )
        .await?;
    let content_type = HeaderValue::from_str(&speech.content_type)
        .unwrap_or(HeaderValue::from_static("audio/mpeg"));
    let mut response = Response::new(Body::from(speech.audio));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
