//! The mock's answers to OpenAI's other endpoints, in their documented wire formats:
//! embeddings (float or base64, `dimensions`), legacy completions (whole and streamed), image
//! generation (`url` or `b64_json`), audio transcription and translation (multipart; `json`,
//! `text`, `verbose_json`, `srt`, `vtt`), speech (raw audio bytes, streamed), and a
//! Jina-style rerank.
//!
//! Everything is deterministic so tests can compute what a client should see and what it
//! should cost: the `pub fn`s here are the formulas.

// A refusal here is the HTTP answer itself, so helpers return `Result<_, Response>`.
#![allow(clippy::result_large_err)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{OpenAi, error};
use crate::mock_vendor::{self, Shared};

/// Length of the mock's embedding vectors when a request does not ask for `dimensions`.
pub const EMBEDDING_DIMENSIONS: usize = 8;

/// The mock's "tokens" of an embeddings input or a completions prompt: words of each string,
/// ids of each token array.
pub fn input_tokens(input: &Value) -> i64 {
    match input {
        Value::String(text) => text.split_whitespace().count() as i64,
        Value::Array(items) if items.iter().all(Value::is_i64) => items.len() as i64,
        Value::Array(items) => items.iter().map(input_tokens).sum(),
        _ => 0,
    }
}

/// The items of an embeddings input, one vector each.
fn input_items(input: &Value) -> Vec<Value> {
    match input {
        Value::Array(items) if !items.iter().all(Value::is_i64) => items.clone(),
        other => vec![other.clone()],
    }
}

/// The mock's embedding of one input item: `dimensions` values that are exact in `f32` (steps
/// of 1/8 in [-1, 1)), derived from the item's text.
pub fn embedding_of(item: &Value, dimensions: usize) -> Vec<f32> {
    let seed: u64 = item
        .to_string()
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..dimensions as u64)
        .map(|j| ((seed.wrapping_add(j * 5)) % 16) as f32 / 8.0 - 1.0)
        .collect()
}

/// A little-endian `f32` vector in base64, as OpenAI sends `encoding_format: "base64"`.
pub fn embedding_base64(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The mock's completion of a prompt.
pub fn completion_of(prompt: &str) -> String {
    format!("echo: {prompt}")
}

/// The mock's audio for `input` in `format`: a few bytes of the format's magic, then the input
/// repeated to at least 64 KiB (so it streams in many pieces).
pub fn speech_audio(input: &str, format: &str) -> Vec<u8> {
    let magic: &[u8] = match format {
        "wav" => b"RIFF",
        "flac" => b"fLaC",
        "opus" => b"OggS",
        "aac" => b"\xff\xf1",
        "pcm" => b"",
        _ => b"ID3",
    };
    let mut audio = magic.to_vec();
    while audio.len() < 64 * 1024 {
        audio.extend_from_slice(input.as_bytes());
        audio.push(0);
    }
    audio
}

fn speech_content_type(format: &str) -> &'static str {
    match format {
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "opus" => "audio/opus",
        "aac" => "audio/aac",
        "pcm" => "audio/pcm",
        _ => "audio/mpeg",
    }
}

/// The mock's transcript of an uploaded file.
pub fn transcript_of(file_name: &str, file: &[u8]) -> String {
    format!("transcript of {file_name}: {} bytes", file.len())
}

/// FNV-1a of bytes: the mock records it for each uploaded file so tests can check the file
/// arrived byte for byte.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `usage` of a transcription, as OpenAI reports it: token counts for the `gpt-4o-*` models
/// (one input token per KiB of audio, one output token per word), a duration in seconds
/// (16 KiB a second) for the others.
pub fn transcription_usage(model: &str, file: &[u8], text: &str) -> Value {
    if model.starts_with("gpt-4o") {
        let input = file.len().div_ceil(1024) as i64;
        let output = text.split_whitespace().count() as i64;
        json!({"type": "tokens", "input_tokens": input, "output_tokens": output, "total_tokens": input + output,
            "input_token_details": {"text_tokens": 0, "audio_tokens": input}})
    } else {
        json!({"type": "duration", "seconds": file.len().div_ceil(16 * 1024)})
    }
}

/// The mock's tokens for a rerank: the query's words once per document, plus the documents'.
pub fn rerank_tokens(query: &str, documents: &[Value]) -> i64 {
    let query = query.split_whitespace().count() as i64;
    documents
        .iter()
        .map(|d| query + document_text(d).split_whitespace().count() as i64)
        .sum()
}

fn document_text(document: &Value) -> String {
    match document {
        Value::String(text) => text.clone(),
        other => other["text"].as_str().unwrap_or_default().to_string(),
    }
}

/// The relevance the mock gives a document: the share of the query's words it contains.
pub fn relevance(query: &str, document: &str) -> f64 {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return 0.0;
    }
    let document = document.to_lowercase();
    let found = words
        .iter()
        .filter(|w| document.split_whitespace().any(|d| d == w.as_str()))
        .count();
    found as f64 / words.len() as f64
}

/// Records the request, checks the key, and applies a queued fault: `Err` is the answer to
/// send instead; `Ok` says after how many pieces a stream should die, if it should (an error
/// event, which only chat streams carry, breaks these streams the same way).
async fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    seen: Value,
) -> Result<Option<usize>, Response> {
    let fault = shared.admit(headers, seen).fault;
    if !shared.authorized(headers, "authorization", "Bearer ") {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
        ));
    }
    let cut = mock_vendor::apply::<OpenAi>(fault).await?;
    Ok(cut.die_after.or(cut.error_after))
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message, "invalid_request_error")
}

fn json_body(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice::<Value>(body)
        .map_err(|_| bad_request("We could not parse the JSON body of your request."))
}

/// A body that streams `pieces`, breaking the connection after `die_after` of them if set.
fn streamed(pieces: Vec<Bytes>, die_after: Option<usize>, pause: std::time::Duration) -> Body {
    let died = die_after.is_some_and(|n| n < pieces.len());
    let pieces = pieces
        .into_iter()
        .take(die_after.unwrap_or(usize::MAX))
        .collect();
    mock_vendor::streamed_body(pieces, pause, died)
}

fn pause(shared: &Shared) -> std::time::Duration {
    shared.script().stream_pause
}

pub(super) async fn embeddings(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if let Err(response) = admit(&shared, &headers, request.clone()).await {
        return response;
    }
    let input = &request["input"];
    if !(input.is_string() || input.as_array().is_some_and(|a| !a.is_empty())) {
        return bad_request("'input' must be a string or a non-empty array.");
    }
    let dimensions = request["dimensions"]
        .as_u64()
        .map(|d| d as usize)
        .unwrap_or(EMBEDDING_DIMENSIONS);
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = input_items(input)
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let vector = embedding_of(item, dimensions);
            let embedding = if base64 {
                json!(embedding_base64(&vector))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = input_tokens(input);
    axum::Json(
        json!({"object": "list", "data": data, "model": request["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
    .into_response()
}

pub(super) async fn completions(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let die_after = match admit(&shared, &headers, request.clone()).await {
        Ok(die_after) => die_after,
        Err(response) => return response,
    };
    let prompts: Vec<String> = match &request["prompt"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => return bad_request("'prompt' must be a string or an array of strings."),
    };
    let model = request["model"].as_str().unwrap_or("").to_string();
    let replies: Vec<String> = prompts.iter().map(|p| completion_of(p)).collect();
    let prompt_tokens = input_tokens(&request["prompt"]);
    let completion_tokens: i64 = replies
        .iter()
        .map(|r| r.split_whitespace().count() as i64)
        .sum();
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens});
    let choice = |index: usize, text: &str, finish: Value| json!({"text": text, "index": index, "logprobs": null, "finish_reason": finish});
    if request["stream"].as_bool() != Some(true) {
        let choices: Vec<Value> = replies
            .iter()
            .enumerate()
            .map(|(i, r)| choice(i, r, json!("stop")))
            .collect();
        return axum::Json(
            json!({"id": "cmpl-mock", "object": "text_completion", "created": 1_764_000_000,
            "model": model, "choices": choices, "usage": usage}),
        )
        .into_response();
    }
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let chunk = |choices: Vec<Value>, usage: Option<&Value>| {
        let mut c = json!({"id": "cmpl-mock", "object": "text_completion", "created": 1_764_000_000,
            "model": model, "choices": choices});
        if let Some(usage) = usage {
            c["usage"] = usage.clone();
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut events = Vec::new();
    for (index, reply) in replies.iter().enumerate() {
        for word in reply.split_inclusive(' ') {
            events.push(chunk(vec![choice(index, word, Value::Null)], None));
        }
        events.push(chunk(vec![choice(index, "", json!("stop"))], None));
    }
    if include_usage {
        events.push(chunk(vec![], Some(&usage)));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(streamed(events, die_after, pause(&shared)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub(super) async fn image_generations(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if let Err(response) = admit(&shared, &headers, request.clone()).await {
        return response;
    }
    let Some(prompt) = request["prompt"].as_str() else {
        return bad_request("Missing required parameter: 'prompt'.");
    };
    let n = request["n"].as_u64().unwrap_or(1);
    if !(1..=10).contains(&n) {
        return bad_request("'n' must be between 1 and 10.");
    }
    let model = request["model"].as_str().unwrap_or("dall-e-2");
    // gpt-image-* always answers base64 and reports token usage; DALL·E answers what was asked.
    let token_model = model.starts_with("gpt-image");
    let b64 = token_model || request["response_format"] == "b64_json";
    let data: Vec<Value> = (0..n)
        .map(|i| {
            if b64 {
                let png = [b"\x89PNG\r\n\x1a\n".as_slice(), prompt.as_bytes()].concat();
                json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(png), "revised_prompt": prompt})
            } else {
                json!({"url": format!("https://images.mock.invalid/{i}.png"), "revised_prompt": prompt})
            }
        })
        .collect();
    let mut answer = json!({"created": 1_764_000_000, "data": data});
    if token_model {
        let input = prompt.split_whitespace().count() as i64;
        let output = 1000 * n as i64;
        answer["usage"] = json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output,
            "input_tokens_details": {"text_tokens": input, "image_tokens": 0}});
    }
    axum::Json(answer).into_response()
}

pub(super) async fn speech(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let die_after = match admit(&shared, &headers, request.clone()).await {
        Ok(die_after) => die_after,
        Err(response) => return response,
    };
    let (Some(input), Some(_voice)) = (request["input"].as_str(), request["voice"].as_str()) else {
        return bad_request("'input' and 'voice' are required.");
    };
    let format = request["response_format"].as_str().unwrap_or("mp3");
    let audio = speech_audio(input, format);
    let pieces: Vec<Bytes> = audio.chunks(4096).map(Bytes::copy_from_slice).collect();
    Response::builder()
        .header("content-type", speech_content_type(format))
        .body(streamed(pieces, die_after, pause(&shared)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub(super) async fn transcriptions(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    audio(shared, headers, body, "transcribe").await
}

pub(super) async fn translations(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    audio(shared, headers, body, "translate").await
}

async fn audio(shared: Shared, headers: HeaderMap, body: Bytes, task: &str) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(fields) = form(content_type, &body) else {
        return bad_request("Expected a multipart/form-data body.");
    };
    let text_field = |name: &str| {
        fields
            .iter()
            .find(|f| f.name == name && f.filename.is_none())
            .map(|f| String::from_utf8_lossy(&f.data).to_string())
    };
    let file = fields
        .iter()
        .find(|f| f.name == "file" && f.filename.is_some());
    let model = text_field("model").unwrap_or_default();
    let format = text_field("response_format").unwrap_or_else(|| "json".into());
    let seen = json!({
        "model": model,
        "response_format": format,
        "language": text_field("language"),
        "file_name": file.and_then(|f| f.filename.clone()),
        "file_len": file.map(|f| f.data.len()),
        "file_checksum": file.map(|f| checksum(&f.data).to_string()),
    });
    if let Err(response) = admit(&shared, &headers, seen).await {
        return response;
    }
    let Some(file) = file else {
        return bad_request("Missing required parameter: 'file'.");
    };
    if model.is_empty() {
        return bad_request("Missing required parameter: 'model'.");
    }
    let text = transcript_of(file.filename.as_deref().unwrap_or(""), &file.data);
    let seconds = file.data.len() as f64 / (16.0 * 1024.0);
    let plain = |body: String| {
        Response::builder()
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from(body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    };
    match format.as_str() {
        "json" => axum::Json(json!({"text": text, "usage": transcription_usage(&model, &file.data, &text)}))
            .into_response(),
        "verbose_json" => axum::Json(json!({
            "task": task, "language": "english", "duration": seconds, "text": text,
            "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": text, "tokens": [],
                "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}],
            "usage": transcription_usage(&model, &file.data, &text),
        }))
        .into_response(),
        "text" => plain(format!("{text}\n")),
        "srt" => plain(format!("1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n")),
        "vtt" => plain(format!("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n")),
        other => bad_request(&format!("Unsupported response_format: {other}.")),
    }
}

pub(super) async fn rerank(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match json_body(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if let Err(response) = admit(&shared, &headers, request.clone()).await {
        return response;
    }
    let (Some(query), Some(documents)) =
        (request["query"].as_str(), request["documents"].as_array())
    else {
        return bad_request("'query' and 'documents' are required.");
    };
    let return_documents = request["return_documents"].as_bool().unwrap_or(true);
    let mut results: Vec<(usize, f64)> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| (i, relevance(query, &document_text(d))))
        .collect();
    // Best first; ties keep the documents' order.
    results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top_n = request["top_n"]
        .as_u64()
        .map(|n| n as usize)
        .unwrap_or(results.len());
    let results: Vec<Value> = results
        .into_iter()
        .take(top_n)
        .map(|(index, score)| {
            let mut r = json!({"index": index, "relevance_score": score});
            if return_documents {
                r["document"] = json!({"text": document_text(&documents[index])});
            }
            r
        })
        .collect();
    let with_usage = shared.script().rerank_usage;
    let mut answer = json!({"model": request["model"], "results": results});
    if with_usage {
        answer["usage"] = json!({"total_tokens": rerank_tokens(query, documents)});
    } else {
        // Cohere's shape: search units instead of tokens.
        answer["meta"] = json!({"billed_units": {"search_units": 1}});
    }
    axum::Json(answer).into_response()
}

/// A field of a multipart form.
struct Field {
    name: String,
    filename: Option<String>,
    data: Vec<u8>,
}

/// A plain multipart/form-data reader (kept separate from the relay's, so a bug there cannot
/// hide itself here).
fn form(content_type: &str, body: &[u8]) -> Option<Vec<Field>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("\r\n--{boundary}");
    let mut text = Vec::with_capacity(body.len() + 2);
    text.extend_from_slice(b"\r\n");
    text.extend_from_slice(body);
    let positions: Vec<usize> = text
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    let mut fields = Vec::new();
    for pair in positions.windows(2) {
        let part = &text[pair[0] + delimiter.len() + 2..pair[1]];
        let split = part.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let param = |key: &str| {
            head.split(';')
                .find_map(|p| p.trim().strip_prefix(&format!("{key}=\"")))
                .and_then(|v| v.split('"').next())
                .map(str::to_string)
        };
        fields.push(Field {
            name: param("name")?,
            filename: param("filename"),
            data: part[split + 4..].to_vec(),
        });
    }
    Some(fields)
}
