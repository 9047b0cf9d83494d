//! The response cache: an opt-in (per group) exact-match cache of whole OpenAI chat
//! completions that ask for a deterministic answer (`temperature: 0`, or a `seed`). The key is
//! a hash of the request with its object keys sorted, the group, and — unless the admin lets
//! the group share — the user, so one user's answers never reach another. Entries live for
//! the group's TTL, and the whole cache is bounded in bytes (moka evicts the least useful).
//! A hit is billed at the group's `price_percent` of what the answer cost (0: free) and
//! answered with `x-skein-cache: hit`; a miss that was stored says `x-skein-cache: miss`.
//! Only whole answers are stored, but `stream` is not part of the key: a streamed request
//! whose answer is kept gets it replayed as server-sent chunks ([`replay_as_stream`]), the
//! usage last when `stream_options.include_usage` asks, as OpenAI streams it. A streamed miss
//! is relayed as usual and not stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use skein_db::sqlx;
use skein_db::{Db, DbResult};
use utoipa::ToSchema;

/// The most bytes of answers kept (all groups together).
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The longest TTL a group may set (a day); also moka's own bound on every entry.
pub const MAX_TTL_SECS: i64 = 86_400;
/// The largest answer kept (bigger ones are not cached).
const MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// A group's cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    /// Whether the group's deterministic chat completions are cached.
    pub enabled: bool,
    /// How long an answer is kept, seconds (1–86,400).
    pub ttl_secs: i64,
    /// Whether users of the group share answers (an identical request by another user of the
    /// group is a hit); off by default, so answers stay with their user.
    pub share_across_users: bool,
    /// What a hit costs, as a percentage of what the answer cost (0: free, 100: full price).
    pub price_percent: i64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            enabled: false,
            ttl_secs: 3600,
            share_across_users: false,
            price_percent: 0,
        }
    }
}

/// A kept answer.
#[derive(Debug)]
pub struct Entry {
    /// The answer's JSON body, as the client got it.
    pub body: Bytes,
    /// The model that served it.
    pub model: String,
    /// Its usage: prompt, completion and cached tokens.
    pub tokens: (i64, i64, i64),
    /// When it stops being served.
    pub expires: Instant,
}

/// The cache of every group.
pub struct ResponseCache {
    entries: moka::sync::Cache<[u8; 32], Arc<Entry>>,
}

impl Default for ResponseCache {
    fn default() -> Self {
        ResponseCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(MAX_BYTES)
                .weigher(|_, entry: &Arc<Entry>| {
                    u32::try_from(entry.body.len() + 128).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(MAX_TTL_SECS as u64))
                .build(),
        }
    }
}

impl ResponseCache {
    /// The fresh entry under `key`.
    pub fn get(&self, key: &[u8; 32], now: Instant) -> Option<Arc<Entry>> {
        let entry = self.entries.get(key)?;
        if entry.expires > now {
            Some(entry)
        } else {
            self.entries.invalidate(key);
            None
        }
    }

    /// Keeps `entry` under `key` (an answer too large to keep is not).
    pub fn put(&self, key: [u8; 32], entry: Entry) {
        if entry.body.len() <= MAX_ENTRY_BYTES {
            self.entries.insert(key, Arc::new(entry));
        }
    }

    /// How many answers are kept now.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every answer.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}

/// Whether a chat request asks for a deterministic answer (whole or streamed).
pub fn cacheable(request: &Value) -> bool {
    let deterministic = request["temperature"].as_f64() == Some(0.0)
        || request["seed"].is_i64()
        || request["seed"].is_u64();
    deterministic && request.get("model").is_some()
}

/// Whether a chat request asks for a stream.
pub fn streamed(request: &Value) -> bool {
    request["stream"].as_bool() == Some(true)
}

/// Fields that change how an answer is delivered, not what it says: left out of the key, so
/// a streamed request finds the answer a whole one stored.
const DELIVERY_FIELDS: &[&str] = &["stream", "stream_options"];

/// A kept whole chat completion replayed as OpenAI's stream: a first chunk with the role,
/// then each choice's reasoning, text and tool calls (each call whole, with its index), its
/// finish reason, the usage when `include_usage`, and `[DONE]`. The text goes in one chunk:
/// the answer is already whole, and splitting it would only cost the client more parsing.
pub fn replay_as_stream(answer: &Value, include_usage: bool) -> String {
    let id = answer["id"].as_str().unwrap_or("chatcmpl-cached");
    let created = answer["created"].as_i64().unwrap_or(0);
    let model = answer["model"].as_str().unwrap_or("");
    let chunk = |index: usize, delta: Value, finish: Value| {
        serde_json::json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [{"index": index, "delta": delta, "logprobs": null,
            "finish_reason": finish}]})
    };
    let mut out = String::new();
    let mut push = |value: Value| {
        out.push_str("data: ");
        out.push_str(&value.to_string());
        out.push_str("\n\n");
    };
    for (i, choice) in answer["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let message = &choice["message"];
        push(chunk(
            i,
            serde_json::json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        if let Some(reasoning) = message["reasoning_content"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            push(chunk(
                i,
                serde_json::json!({"reasoning_content": reasoning}),
                Value::Null,
            ));
        }
        if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
            push(chunk(i, serde_json::json!({"content": text}), Value::Null));
        }
        if let Some(calls) = message["tool_calls"].as_array().filter(|c| !c.is_empty()) {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(n, call)| {
                    let mut call = call.clone();
                    call["index"] = serde_json::json!(n);
                    call
                })
                .collect();
            push(chunk(
                i,
                serde_json::json!({"tool_calls": calls}),
                Value::Null,
            ));
        }
        push(chunk(
            i,
            serde_json::json!({}),
            choice["finish_reason"].clone(),
        ));
    }
    if include_usage && answer["usage"].is_object() {
        push(
            serde_json::json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [], "usage": answer["usage"]}),
        );
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// The key of `request` by `user` in `group`: the user is left out when the group shares.
pub fn key(policy: &CachePolicy, group: &str, user: &str, request: &Value) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"skein-cache-v1\0");
    hash.update(group.as_bytes());
    hash.update(b"\0");
    if !policy.share_across_users {
        hash.update(user.as_bytes());
    }
    hash.update(b"\0");
    match request.as_object() {
        Some(fields) if DELIVERY_FIELDS.iter().any(|f| fields.contains_key(*f)) => {
            let mut kept = fields.clone();
            for field in DELIVERY_FIELDS {
                kept.remove(*field);
            }
            canonical(&Value::Object(kept), &mut hash);
        }
        _ => canonical(request, &mut hash),
    }
    hash.finalize().into()
}

/// Feeds `value` to `hash` with object keys sorted, so two requests differing only in field
/// order are the same request.
fn canonical(value: &Value, hash: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hash.update(b"{");
            for k in keys {
                hash.update(serde_json::to_string(k).unwrap_or_default().as_bytes());
                hash.update(b":");
                canonical(&map[k], hash);
                hash.update(b",");
            }
            hash.update(b"}");
        }
        Value::Array(items) => {
            hash.update(b"[");
            for item in items {
                canonical(item, hash);
                hash.update(b",");
            }
            hash.update(b"]");
        }
        other => hash.update(other.to_string().as_bytes()),
    }
}

/// The usage of an OpenAI chat completion body: prompt, completion and cached tokens.
pub fn usage_of(body: &Value) -> (i64, i64, i64) {
    let usage = &body["usage"];
    (
        usage["prompt_tokens"].as_i64().unwrap_or(0),
        usage["completion_tokens"].as_i64().unwrap_or(0),
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_i64()
            .unwrap_or(0),
    )
}

/// Every group's stored policy.
pub async fn all(db: &Db) -> DbResult<std::collections::HashMap<String, (CachePolicy, i64)>> {
    // Flags are stored as 0/1: the database layer decodes no booleans on SQLite.
    let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT group_name, enabled, ttl_secs, share_across_users, price_percent, updated_at FROM relay_cache_policies",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(group, enabled, ttl_secs, share_across_users, price_percent, at)| {
                let policy = CachePolicy {
                    enabled: enabled != 0,
                    ttl_secs,
                    share_across_users: share_across_users != 0,
                    price_percent,
                };
                (group, (policy, at))
            },
        )
        .collect())
}

/// Sets a group's policy.
pub async fn set(db: &Db, group: &str, p: &CachePolicy, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO relay_cache_policies (group_name, enabled, ttl_secs, share_across_users, price_percent, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (group_name) DO UPDATE SET enabled = $2, ttl_secs = $3, \
         share_across_users = $4, price_percent = $5, updated_at = $6",
    )
    .bind(group)
    .bind(i64::from(p.enabled))
    .bind(p.ttl_secs)
    .bind(i64::from(p.share_across_users))
    .bind(p.price_percent)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_deterministic_whole_requests_are_cached_and_keys_ignore_field_order() {
        assert!(cacheable(
            &json!({"model": "m", "temperature": 0, "messages": []})
        ));
        assert!(cacheable(&json!({"model": "m", "seed": 7, "messages": []})));
        assert!(!cacheable(
            &json!({"model": "m", "temperature": 0.7, "messages": []})
        ));
        assert!(cacheable(
            &json!({"model": "m", "temperature": 0, "stream": true})
        ));
        let private = CachePolicy::default();
        let a =
            json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "x"}]});
        let b =
            json!({"messages": [{"content": "x", "role": "user"}], "temperature": 0, "model": "m"});
        assert_eq!(key(&private, "g", "u1", &a), key(&private, "g", "u1", &b));
        assert_ne!(
            key(&private, "g", "u1", &a),
            key(&private, "g", "u2", &a),
            "per user"
        );
        assert_ne!(
            key(&private, "g", "u1", &a),
            key(&private, "h", "u1", &a),
            "per group"
        );
        let shared = CachePolicy {
            share_across_users: true,
            ..private
        };
        assert_eq!(key(&shared, "g", "u1", &a), key(&shared, "g", "u2", &a));
        // Delivery is not content: a streamed ask finds the whole answer.
        let mut streamed_a = a.clone();
        streamed_a["stream"] = json!(true);
        streamed_a["stream_options"] = json!({"include_usage": true});
        assert_eq!(
            key(&private, "g", "u1", &a),
            key(&private, "g", "u1", &streamed_a)
        );
    }

    #[test]
    fn a_kept_answer_replays_as_openai_chunks() {
        let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": "hi", "reasoning_content": "think",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
        let text = replay_as_stream(&answer, true);
        let events: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap_or_default())
            .collect();
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            events[1]["choices"][0]["delta"]["reasoning_content"],
            "think"
        );
        assert_eq!(events[2]["choices"][0]["delta"]["content"], "hi");
        assert_eq!(
            events[3]["choices"][0]["delta"]["tool_calls"][0]["index"],
            0
        );
        assert_eq!(events[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(events[5]["usage"]["total_tokens"], 5);
        assert!(
            events
                .iter()
                .all(|e| e["object"] == "chat.completion.chunk" && e["id"] == "chatcmpl-1")
        );
        assert!(!replay_as_stream(&answer, false).contains("total_tokens"));
    }
}
