//! Audio uploads: `POST /v1/audio/transcriptions` and `/v1/audio/translations`. The multipart
//! form's fields are checked (each known field once, no unknown one) and the form sent upstream
//! is rebuilt from those parts, with the file byte for byte and the `model` field mapped;
//! billing is [`crate::pipeline::calls::audio`]'s.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use skein_core::auth::ApiKeyCaller;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult};

use super::reply::answer;
use crate::RelayService;
use crate::errors;
use crate::multipart;
use crate::pipeline::Caller;
use crate::pipeline::calls::{self, AudioForm};

/// Largest audio upload, as OpenAI documents it: 25 MB.
pub(crate) const AUDIO_FILE_LIMIT: usize = 25 * 1024 * 1024;
/// The body limit of the audio upload routes: the file plus room for the other form fields.
pub(crate) const AUDIO_BODY_LIMIT: usize = AUDIO_FILE_LIMIT + 256 * 1024;

/// Relays an audio transcription (speech to text in its own language).
pub(crate) async fn transcriptions(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    audio_form(
        svc,
        key,
        id.into_string(),
        &headers,
        body,
        "/v1/audio/transcriptions",
    )
    .await
}

/// Relays an audio translation (speech to English text).
pub(crate) async fn translations(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    audio_form(
        svc,
        key,
        id.into_string(),
        &headers,
        body,
        "/v1/audio/translations",
    )
    .await
}

/// Checks a client's audio form (transcription or translation) and relays it: the form sent
/// upstream is rebuilt from the checked parts, the file byte for byte, the model mapped.
async fn audio_form(
    svc: Arc<RelayService>,
    key: skein_core::api::KeyInfo,
    request_id: String,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    path: &'static str,
) -> ApiResult<Response> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            errors::audio_too_large(AUDIO_FILE_LIMIT)
        } else {
            ApiError::bad_request(
                "unreadable_body",
                "The request body could not be read.",
                "无法读取请求体。",
            )
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multipart::boundary(content_type).ok_or_else(errors::audio_not_multipart)?;
    let parts = multipart::parse(&body, &boundary).map_err(|reason| {
        ApiError::bad_request(
            "invalid_form",
            format!("The multipart form is malformed: {reason}."),
            format!("multipart 表单格式错误：{reason}。"),
        )
    })?;
    // Every field once, none the vendor might read but the relay did not check: the form
    // sent upstream is rebuilt from these parts only.
    let allowed = if path == "/v1/audio/translations" {
        TRANSLATION_FIELDS
    } else {
        TRANSCRIPTION_FIELDS
    };
    if let Err((field, why)) = multipart::check_fields(&parts, allowed) {
        return Err(ApiError::bad_request(
            "invalid_form",
            format!("The form field {field} is {why}: send each known field once."),
            format!("表单字段 {field} 不被接受（{why}）：每个已知字段只能发送一次。"),
        )
        .with_details(json!({ "field": field })));
    }
    let file = parts
        .iter()
        .find(|p| p.name == "file" && p.filename.is_some())
        .ok_or_else(|| {
            errors::invalid_input(
                "file",
                "must be an uploaded audio file.",
                "必须是上传的音频文件。",
            )
        })?;
    if file.content.len() > AUDIO_FILE_LIMIT {
        return Err(errors::audio_too_large(AUDIO_FILE_LIMIT));
    }
    if multipart::text_field(&body, &parts, "stream") == Some("true") {
        // A streamed transcription reports its token usage in its last event; until that is
        // read, relaying it would bill only the per-call price.
        return Err(ApiError::bad_request(
            "stream_not_supported",
            "Streamed transcriptions are not supported yet; leave out stream.",
            "暂不支持流式转写，请去掉 stream 参数。",
        ));
    }
    let model = multipart::text_field(&body, &parts, "model").map(str::to_string);
    let file_len = file.content.len();
    let form = AudioForm {
        model,
        file_len,
        content_type: content_type.to_string(),
        body: Box::new(move |upstream_model: &str| {
            Bytes::from(multipart::rebuild(
                &body,
                &parts,
                &boundary,
                Some(("model", upstream_model.as_bytes())),
            ))
        }),
    };
    answer(calls::audio(svc, Caller::Key(key), request_id, form, path).await)
}

/// The fields OpenAI's transcription endpoint reads; `[]` marks the array fields, which may
/// repeat.
const TRANSCRIPTION_FIELDS: &[&str] = &[
    "file",
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "include[]",
    "stream",
    "chunking_strategy",
];

/// The fields OpenAI's translation endpoint reads.
const TRANSLATION_FIELDS: &[&str] = &["file", "model", "prompt", "response_format", "temperature"];
