//! Export (Markdown, standalone HTML, JSON with the whole tree) and import (Skein's JSON and
//! ChatGPT's `conversations.json`).

use std::collections::HashMap;

use serde_json::{Value, json};
use skein_core::{ApiError, ApiResult, ids};
use skein_db::Db;

use crate::active_path;
use crate::store::{self, ConversationRow, MessageRow};
use crate::tree::Tree;

/// The `format` of one exported conversation.
pub const CONVERSATION_FORMAT: &str = "skein.conversation.v1";
/// The `format` of an export of every conversation.
pub const ARCHIVE_FORMAT: &str = "skein.archive.v1";
/// Most conversations one import takes.
const MAX_IMPORT_CONVERSATIONS: usize = 10_000;
/// Most messages one import takes in all.
const MAX_IMPORT_TOTAL: usize = 200_000;
/// Most messages one imported conversation takes.
const MAX_IMPORT_MESSAGES: usize = 20_000;

fn title_or_default(c: &ConversationRow) -> &str {
    if c.title.is_empty() {
        "Untitled conversation"
    } else {
        &c.title
    }
}

/// The branch on screen as Markdown.
pub fn markdown(c: &ConversationRow, rows: &[MessageRow]) -> String {
    let tree = Tree::new(rows);
    let mut out = format!("# {}\n\n", title_or_default(c).replace('\n', " "));
    if let Some(prompt) = &c.system_prompt {
        out.push_str("> **System:** ");
        out.push_str(&prompt.replace('\n', "\n> "));
        out.push_str("\n\n");
    }
    for m in active_path(&tree, c.active_leaf_id.as_deref()) {
        let who = match (m.role.as_str(), &m.model) {
            ("user", _) => "User".to_string(),
            (_, Some(model)) => format!("Assistant ({model})"),
            _ => "Assistant".to_string(),
        };
        out.push_str(&format!("## {who}\n\n{}\n\n", m.content.trim_end()));
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// The branch on screen as one HTML page with no outside resources. Text is escaped, never
/// interpreted, so a hostile answer cannot run script in the page.
pub fn html(c: &ConversationRow, rows: &[MessageRow]) -> String {
    let tree = Tree::new(rows);
    let title = escape(title_or_default(c));
    let mut body = String::new();
    if let Some(prompt) = &c.system_prompt {
        body.push_str(&format!(
            "<section class=\"system\"><h2>System</h2><div class=\"text\">{}</div></section>\n",
            escape(prompt)
        ));
    }
    for m in active_path(&tree, c.active_leaf_id.as_deref()) {
        let who = if m.role == "user" {
            "User"
        } else {
            "Assistant"
        };
        let model = m
            .model
            .as_deref()
            .map(|m| format!(" <small>{}</small>", escape(m)))
            .unwrap_or_default();
        body.push_str(&format!(
            "<section class=\"{}\"><h2>{who}{model}</h2><div class=\"text\">{}</div></section>\n",
            escape(&m.role),
            escape(&m.content)
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>{title}</title><style>\
body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.55;color:#1f2328;background:#fff}}\
@media (prefers-color-scheme: dark){{body{{color:#e6edf3;background:#0d1117}}section.user{{background:#161b22}}}}\
section{{padding:.75rem 1rem;border-radius:.5rem;margin:1rem 0}}section.user{{background:#f6f8fa}}\
h2{{font-size:.85rem;margin:0 0 .4rem;text-transform:uppercase;letter-spacing:.04em;opacity:.7}}\
.text{{white-space:pre-wrap;word-wrap:break-word}}</style></head>\n<body><h1>{title}</h1>\n{body}</body></html>\n"
    )
}

/// The whole tree as JSON (every branch, with the active leaf), importable again.
pub fn json(c: &ConversationRow, rows: &[MessageRow]) -> Value {
    json!({
        "format": CONVERSATION_FORMAT,
        "id": c.id,
        "title": c.title,
        "created_at": ids::ms_to_rfc3339(c.created_at),
        "updated_at": ids::ms_to_rfc3339(c.updated_at),
        "settings": {
            "model": c.model,
            "system_prompt": c.system_prompt,
            "temperature": c.temperature,
            "top_p": c.top_p,
            "max_tokens": c.max_tokens,
            "history_limit": c.history_limit,
        },
        "active_leaf_id": c.active_leaf_id,
        "messages": rows.iter().map(|m| json!({
            "id": m.id,
            "parent_id": m.parent_id,
            "role": m.role,
            "content": m.content,
            "reasoning": m.reasoning,
            "model": m.model,
            "status": m.status,
            "created_at": ids::ms_to_rfc3339(m.created_at),
        })).collect::<Vec<_>>(),
    })
}

/// A conversation read from an import, before it gets new ids.
#[derive(Debug)]
pub struct Imported {
    title: String,
    created_at: i64,
    settings: Value,
    /// (old id, old parent id, role, content, model, created_at ms), parents before children.
    messages: Vec<ImportedMessage>,
    active: Option<String>,
}

fn invalid(en: &str, zh: &str) -> ApiError {
    ApiError::invalid_field("body", en.to_string(), zh.to_string())
}

/// Recognises and reads an import.
pub fn parse(body: &Value) -> ApiResult<Vec<Imported>> {
    let found = match body {
        Value::Object(o)
            if o.get("format").and_then(Value::as_str) == Some(CONVERSATION_FORMAT) =>
        {
            vec![skein_conversation(body)?]
        }
        Value::Object(o) if o.get("format").and_then(Value::as_str) == Some(ARCHIVE_FORMAT) => {
            let list = body["conversations"].as_array().ok_or_else(|| {
                invalid(
                    "The archive has no conversations list.",
                    "归档中没有 conversations 列表。",
                )
            })?;
            list.iter()
                .map(skein_conversation)
                .collect::<ApiResult<_>>()?
        }
        Value::Array(list) if list.iter().all(|c| c.get("mapping").is_some()) => list
            .iter()
            .map(chatgpt_conversation)
            .collect::<ApiResult<_>>()?,
        Value::Object(o) if o.contains_key("mapping") => vec![chatgpt_conversation(body)?],
        _ => {
            return Err(invalid(
                "Import Skein's JSON export or ChatGPT's conversations.json.",
                "请导入 Skein 的 JSON 导出文件或 ChatGPT 的 conversations.json。",
            ));
        }
    };
    let total: usize = found.iter().map(|c| c.messages.len()).sum();
    if total > MAX_IMPORT_TOTAL {
        return Err(invalid(
            "At most 200,000 messages per import; split the file.",
            "每次最多导入 200,000 条消息，请拆分文件。",
        ));
    }
    if found.len() > MAX_IMPORT_CONVERSATIONS {
        return Err(invalid(
            "At most 10,000 conversations per import.",
            "每次最多导入 10,000 个对话。",
        ));
    }
    Ok(found)
}

fn time_of(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => ids::rfc3339_to_ms(text),
        // ChatGPT writes seconds as a float.
        Value::Number(n) => n.as_f64().map(|s| (s * 1000.0) as i64),
        _ => None,
    }
}

fn skein_conversation(c: &Value) -> ApiResult<Imported> {
    let list = c["messages"].as_array().ok_or_else(|| {
        invalid(
            "A conversation needs a messages list.",
            "对话需要 messages 列表。",
        )
    })?;
    if list.len() > MAX_IMPORT_MESSAGES {
        return Err(invalid(
            "A conversation may have at most 20,000 messages.",
            "单个对话最多 20,000 条消息。",
        ));
    }
    let mut messages = Vec::with_capacity(list.len());
    for m in list {
        let (Some(id), Some(role), Some(content)) =
            (m["id"].as_str(), m["role"].as_str(), m["content"].as_str())
        else {
            return Err(invalid(
                "Every message needs id, role and content.",
                "每条消息都需要 id、role 和 content。",
            ));
        };
        if !matches!(role, "user" | "assistant") {
            continue;
        }
        messages.push((
            id.to_string(),
            m["parent_id"].as_str().map(str::to_string),
            role.to_string(),
            content.to_string(),
            m["model"].as_str().map(str::to_string),
            time_of(&m["created_at"]).unwrap_or_else(ids::now_ms),
        ));
    }
    Ok(Imported {
        title: c["title"].as_str().unwrap_or_default().to_string(),
        created_at: time_of(&c["created_at"]).unwrap_or_else(ids::now_ms),
        settings: c["settings"].clone(),
        messages: order_parents_first(messages),
        active: c["active_leaf_id"].as_str().map(str::to_string),
    })
}

/// Text of a ChatGPT message: the string parts of its content.
fn chatgpt_text(message: &Value) -> String {
    let content = &message["content"];
    if let Some(parts) = content["parts"].as_array() {
        return parts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n");
    }
    content["text"].as_str().unwrap_or_default().to_string()
}

/// Whether a ChatGPT node is user or assistant text. Others (the hidden root, system and tool
/// messages) are skipped; their children hang from the nearest kept ancestor.
fn kept(node: &Value) -> bool {
    let message = &node["message"];
    let role = message["author"]["role"].as_str().unwrap_or_default();
    matches!(role, "user" | "assistant")
        && matches!(
            message["content"]["content_type"]
                .as_str()
                .unwrap_or("text"),
            "text" | "multimodal_text"
        )
        && !chatgpt_text(message).trim().is_empty()
}

/// For every node, itself or its nearest ancestor that is kept (`None` above the first kept
/// one). Resolved once per node, so deep chains of skipped nodes cost linear time.
fn nearest_kept_map(mapping: &serde_json::Map<String, Value>) -> HashMap<&str, Option<&str>> {
    let mut resolved: HashMap<&str, Option<&str>> = HashMap::with_capacity(mapping.len());
    for start in mapping.keys() {
        let mut chain: Vec<&str> = Vec::new();
        let mut at: Option<&str> = Some(start.as_str());
        let answer = loop {
            let Some(id) = at else { break None };
            if let Some(known) = resolved.get(id) {
                break *known;
            }
            let Some((key, node)) = mapping.get_key_value(id) else {
                break None;
            };
            if kept(node) {
                break Some(key.as_str());
            }
            if chain.len() > mapping.len() || chain.contains(&key.as_str()) {
                // A cycle of skipped nodes.
                break None;
            }
            chain.push(key.as_str());
            at = node["parent"].as_str();
        };
        for id in chain {
            resolved.insert(id, answer);
        }
        if let Some(id) = answer {
            resolved.insert(id, Some(id));
        }
    }
    resolved
}

fn chatgpt_conversation(c: &Value) -> ApiResult<Imported> {
    let mapping = c["mapping"].as_object().ok_or_else(|| {
        invalid(
            "A ChatGPT conversation needs a mapping object.",
            "ChatGPT 对话需要 mapping 对象。",
        )
    })?;
    if mapping.len() > MAX_IMPORT_MESSAGES {
        return Err(invalid(
            "A conversation may have at most 20,000 messages.",
            "单个对话最多 20,000 条消息。",
        ));
    }
    let nearest = nearest_kept_map(mapping);
    let nearest_of = |id: Option<&str>| -> Option<String> {
        id.and_then(|id| nearest.get(id).copied().flatten())
            .map(str::to_string)
    };
    let mut messages = Vec::new();
    for (id, node) in mapping {
        if !kept(node) {
            continue;
        }
        let message = &node["message"];
        messages.push((
            id.clone(),
            nearest_of(node["parent"].as_str()),
            message["author"]["role"]
                .as_str()
                .unwrap_or("user")
                .to_string(),
            chatgpt_text(message),
            message["metadata"]["model_slug"]
                .as_str()
                .map(str::to_string),
            time_of(&message["create_time"])
                .unwrap_or_else(|| time_of(&c["create_time"]).unwrap_or_else(ids::now_ms)),
        ));
    }
    messages.sort_by_key(|m| m.5);
    Ok(Imported {
        title: c["title"].as_str().unwrap_or_default().to_string(),
        created_at: time_of(&c["create_time"]).unwrap_or_else(ids::now_ms),
        settings: Value::Null,
        messages: order_parents_first(messages),
        active: nearest_of(c["current_node"].as_str()),
    })
}

/// An imported message: (old id, old parent id, role, content, model, created_at ms).
type ImportedMessage = (String, Option<String>, String, String, Option<String>, i64);

/// Orders messages so every parent comes before its children; a message whose parent is not
/// in the import becomes a root.
fn order_parents_first(messages: Vec<ImportedMessage>) -> Vec<ImportedMessage> {
    let known: HashMap<String, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.0.clone(), i))
        .collect();
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let parent =
            m.1.as_ref()
                .and_then(|p| known.get(p).copied())
                .filter(|p| *p != i);
        children.entry(parent).or_default().push(i);
    }
    let mut order = Vec::with_capacity(messages.len());
    let mut stack: Vec<usize> = children.get(&None).cloned().unwrap_or_default();
    stack.reverse();
    let mut seen = vec![false; messages.len()];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push(i);
        if let Some(kids) = children.get(&Some(i)) {
            stack.extend(kids.iter().rev());
        }
    }
    let mut slots: Vec<Option<ImportedMessage>> = messages.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| {
            let mut m = slots[i].take()?;
            if m.1.as_ref().is_some_and(|p| !known.contains_key(p)) {
                m.1 = None;
            }
            Some(m)
        })
        .collect()
}

/// Longest message text an import keeps, in characters.
const MAX_IMPORT_CHARS: usize = 1_000_000;

/// Rows of one imported conversation under new ids, ready to insert.
fn rows_of(user_id: &str, imported: Imported, now: i64) -> (ConversationRow, Vec<MessageRow>) {
    let conversation_id = ids::new_id();
    let mut new_ids: HashMap<String, String> = HashMap::new();
    let mut rows = Vec::with_capacity(imported.messages.len());
    // A time in the future (or garbage) would order siblings wrongly: clamp to now.
    let clamp = |t: i64| t.clamp(0, now);
    for (old, parent, role, content, model, created_at) in imported.messages {
        // Parents come first, so a parent's new id is known; a message naming itself (or a
        // parent the import lacks) becomes a first message.
        let parent_id = parent.and_then(|p| new_ids.get(&p).cloned());
        let id = ids::new_id();
        new_ids.insert(old, id.clone());
        rows.push(MessageRow {
            id,
            conversation_id: conversation_id.clone(),
            user_id: user_id.to_string(),
            parent_id,
            role,
            content: content
                .replace('\0', "")
                .chars()
                .take(MAX_IMPORT_CHARS)
                .collect(),
            reasoning: None,
            images: None,
            status: "done".into(),
            model: model.filter(|m| !m.is_empty() && m.len() <= 128 && !m.contains('\0')),
            error: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost: None,
            created_at: clamp(created_at),
            updated_at: now,
        });
    }
    let active = imported
        .active
        .and_then(|old| new_ids.get(&old).cloned())
        .or_else(|| rows.last().map(|m| m.id.clone()));
    let settings = &imported.settings;
    let text = |v: &Value, max: usize| {
        v.as_str()
            .filter(|t| !t.is_empty() && t.chars().count() <= max && !t.contains('\0'))
            .map(str::to_string)
    };
    let conversation = ConversationRow {
        id: conversation_id,
        user_id: user_id.to_string(),
        title: imported.title.replace('\0', "").chars().take(200).collect(),
        pinned: 0,
        archived: 0,
        model: text(&settings["model"], 128),
        system_prompt: text(&settings["system_prompt"], MAX_IMPORT_CHARS),
        temperature: settings["temperature"]
            .as_f64()
            .filter(|t| (0.0..=2.0).contains(t)),
        top_p: settings["top_p"]
            .as_f64()
            .filter(|p| (0.0..=1.0).contains(p)),
        max_tokens: settings["max_tokens"]
            .as_i64()
            .filter(|n| (1..=1_000_000).contains(n)),
        history_limit: settings["history_limit"]
            .as_i64()
            .filter(|n| (1..=10_000).contains(n)),
        active_leaf_id: active,
        summary: None,
        summary_upto: None,
        created_at: clamp(imported.created_at),
        updated_at: now,
        deleted_at: None,
    };
    (conversation, rows)
}

/// Stores imported conversations under new ids, all or none; answers their ids.
pub async fn store_import(
    db: &Db,
    user_id: &str,
    imported: Vec<Imported>,
) -> ApiResult<Vec<String>> {
    let now = ids::now_ms();
    let mut made = Vec::with_capacity(imported.len());
    let mut tx = db.begin_write().await?;
    for conversation in imported {
        let (conversation, rows) = rows_of(user_id, conversation, now);
        store::insert_conversation(&mut *tx, &conversation).await?;
        for row in &rows {
            store::insert_message(&mut *tx, row).await?;
        }
        made.push(conversation.id);
    }
    tx.commit().await.map_err(skein_db::DbError::from)?;
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chatgpt_export_keeps_its_branches_and_current_node() {
        let export = json!([{
            "title": "Rust 问题",
            "create_time": 1_700_000_000.5,
            "current_node": "a2",
            "mapping": {
                "root": {"id": "root", "message": null, "parent": null, "children": ["sys"]},
                "sys": {"id": "sys", "parent": "root", "children": ["u1"], "message": {"author": {"role": "system"}, "content": {"content_type": "text", "parts": [""]}}},
                "u1": {"id": "u1", "parent": "sys", "children": ["a1", "a2"], "message": {"author": {"role": "user"}, "create_time": 1_700_000_001.0, "content": {"content_type": "text", "parts": ["什么是所有权？"]}}},
                "a1": {"id": "a1", "parent": "u1", "children": [], "message": {"author": {"role": "assistant"}, "create_time": 1_700_000_002.0, "content": {"content_type": "text", "parts": ["第一个回答"]}, "metadata": {"model_slug": "gpt-4o"}}},
                "a2": {"id": "a2", "parent": "u1", "children": [], "message": {"author": {"role": "assistant"}, "create_time": 1_700_000_003.0, "content": {"content_type": "text", "parts": ["第二个回答"]}}}
            }
        }]);
        let parsed = parse(&export).unwrap();
        assert_eq!(parsed.len(), 1);
        let c = &parsed[0];
        assert_eq!(c.title, "Rust 问题");
        let ids: Vec<&str> = c.messages.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(ids, ["u1", "a1", "a2"]);
        // The hidden root and the system node are skipped; u1 becomes a root.
        assert_eq!(c.messages[0].1, None);
        assert_eq!(c.messages[2].1.as_deref(), Some("u1"));
        assert_eq!(c.active.as_deref(), Some("a2"));
        assert_eq!(c.messages[1].4.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn a_message_naming_itself_as_parent_becomes_a_first_message() {
        let export = json!({"format": CONVERSATION_FORMAT, "title": "t", "messages": [
            {"id": "a", "parent_id": "a", "role": "user", "content": "hi", "created_at": "2999-01-01T00:00:00Z"},
            {"id": "b", "parent_id": "a", "role": "assistant", "content": "hello"}
        ]});
        let parsed = parse(&export).unwrap().pop().unwrap();
        let (_, rows) = rows_of("u", parsed, 1_000);
        assert_eq!(rows[0].parent_id, None);
        assert_eq!(rows[1].parent_id.as_deref(), Some(rows[0].id.as_str()));
        // A time in the future is clamped to now.
        assert_eq!(rows[0].created_at, 1_000);
    }

    #[test]
    fn unknown_imports_are_refused_clearly() {
        assert_eq!(
            parse(&json!({"hello": 1})).unwrap_err().code(),
            "validation_failed"
        );
        assert!(parse(&json!({"format": CONVERSATION_FORMAT, "messages": [{"id": 1}]})).is_err());
    }

    #[test]
    fn parents_come_before_children_whatever_the_input_order() {
        let m = |id: &str, parent: Option<&str>| {
            (
                id.to_string(),
                parent.map(str::to_string),
                "user".to_string(),
                String::new(),
                None,
                0,
            )
        };
        let ordered = order_parents_first(vec![
            m("c", Some("b")),
            m("b", Some("a")),
            m("a", None),
            m("x", Some("gone")),
        ]);
        let ids: Vec<&str> = ordered.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "x"]);
        assert_eq!(ordered[3].1, None);
    }

    #[test]
    fn html_export_escapes_what_the_model_wrote() {
        let c = ConversationRow {
            id: "c".into(),
            user_id: "u".into(),
            title: "<b>t</b>".into(),
            pinned: 0,
            archived: 0,
            model: None,
            system_prompt: None,
            temperature: None,
            top_p: None,
            max_tokens: None,
            history_limit: None,
            active_leaf_id: Some("m".into()),
            summary: None,
            summary_upto: None,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
        };
        let m = MessageRow {
            id: "m".into(),
            conversation_id: "c".into(),
            user_id: "u".into(),
            parent_id: None,
            role: "assistant".into(),
            content: "<script>alert(1)</script><img src=x onerror=alert(1)>".into(),
            reasoning: None,
            images: None,
            status: "done".into(),
            model: None,
            error: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost: None,
            created_at: 0,
            updated_at: 0,
        };
        let page = html(&c, &[m]);
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;t&lt;/b&gt;"));
    }
}
