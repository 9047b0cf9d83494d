//! Import of Skein's JSON (one conversation or an archive) and ChatGPT's `conversations.json`,
//! built so that a big import cannot hurt anyone else:
//!
//! - **Sizes are checked while reading, before anything is built.** The body is read into
//!   typed structs that keep only the fields an import uses; every list stops at its limit
//!   (conversations, messages per conversation) and the answer is 413 `import_too_large`
//!   without reading further. Totals (messages, bytes of text) are checked before any row is
//!   made.
//! - **ChatGPT's `mapping` is walked in linear time**, iteratively: each node's nearest kept
//!   ancestor is resolved once (a walk up stops at the first node already resolved), a node met
//!   twice on one walk is a cycle (422 `import_cycle`), and a parent missing from the mapping
//!   makes its child a first message.
//! - **Rows are written in batches of at most [`BATCH_ROWS`] per transaction**, so the write
//!   lock (on SQLite shared with the billing writer) is never held for a whole import, and the
//!   task yields between batches. Conversations are written hidden (a negative `deleted_at`
//!   holding the import's start, [`store::import_marker`]) and shown by one `UPDATE` at the
//!   end, so an import still appears all or nothing; one that dies half way stays hidden and
//!   is purged an hour later.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use skein_core::{ApiError, ApiResult, ids};
use skein_db::{Db, sqlx};

use crate::errors;
use crate::export::{ARCHIVE_FORMAT, CONVERSATION_FORMAT};
use crate::store::{self, ConversationRow, MessageRow};
use crate::tools::ToolRecord;

/// Most conversations one import takes.
pub const MAX_CONVERSATIONS: usize = 10_000;
/// Most messages one import takes in all.
pub const MAX_TOTAL_MESSAGES: usize = 200_000;
/// Most messages (or ChatGPT mapping nodes) one imported conversation takes.
pub const MAX_MESSAGES: usize = 20_000;
/// Most bytes of message text one import takes in all.
pub const MAX_TEXT_BYTES: usize = 48 * 1024 * 1024;
/// Longest message text an import keeps, in characters.
const MAX_CHARS: usize = 1_000_000;
/// Most images one imported message takes (what a message may carry).
const MAX_IMAGES_PER_MESSAGE: usize = 4;
/// Most tool calls read back with one answer (the tool loop makes at most a few rounds of a
/// few calls).
const MAX_TOOL_CALLS_PER_MESSAGE: usize = 64;
/// Longest `data:` URL of an imported image (a 5 MiB image in base64, with room).
const MAX_IMAGE_URL_BYTES: usize = 7 * 1024 * 1024;
/// Most rows (conversations and messages) written in one transaction.
pub const BATCH_ROWS: usize = 500;
/// Most message rows in one `INSERT` statement (18 parameters each).
const ROWS_PER_STATEMENT: usize = 100;

/// What a serde error says when a list passed its limit; the limit follows.
const LIMIT_MARKER: &str = "skein-import-limit:";

fn invalid(en: &str, zh: &str) -> ApiError {
    ApiError::invalid_field("body", en.to_string(), zh.to_string())
}

// ---- Reading: typed, lenient, bounded ----

/// A string where one is expected; any other value (number, object, null) reads as absent
/// rather than failing the whole import, as the untyped reader did.
#[derive(Debug, Default, Clone)]
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text, D::Error> {
                Text::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A time: RFC 3339 text (Skein) or seconds as a number (ChatGPT); anything else is absent.
#[derive(Debug, Default, Clone, Copy)]
struct Time(Option<i64>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a time")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Time, E> {
                Ok(Time(ids::rfc3339_to_ms(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Time, E> {
                // `as` saturates, so a silly number cannot wrap.
                Ok(Time(v.is_finite().then_some((v * 1000.0) as i64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Time, E> {
                Ok(Time(Some(v.saturating_mul(1000))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Time, E> {
                Ok(Time(i64::try_from(v).ok().map(|v| v.saturating_mul(1000))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Time, E> {
                Ok(Time(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Time, E> {
                Ok(Time(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Time, E> {
                Ok(Time(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Time, D::Error> {
                Time::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Time, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Time(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Time, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Time(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list that stops reading at `N` items: the error names the limit, and nothing past it
/// is built.
#[derive(Debug)]
struct Bounded<T, const N: usize>(Vec<T>);

impl<T, const N: usize> Default for Bounded<T, N> {
    fn default() -> Self {
        Bounded(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Bounded<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of at most {N} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
                while let Some(item) = seq.next_element()? {
                    if items.len() == N {
                        return Err(de::Error::custom(format!("{LIMIT_MARKER}{N}")));
                    }
                    items.push(item);
                }
                Ok(Bounded(items))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// ChatGPT's `mapping` as (id, node) pairs in file order, stopping at [`MAX_MESSAGES`].
#[derive(Debug, Default)]
struct Mapping(Vec<(String, GptNode)>);

impl<'de> Deserialize<'de> for Mapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Mapping;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of message nodes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Mapping, A::Error> {
                let mut nodes = Vec::new();
                while let Some((id, node)) = map.next_entry::<String, GptNode>()? {
                    if nodes.len() == MAX_MESSAGES {
                        return Err(de::Error::custom(format!("{LIMIT_MARKER}{MAX_MESSAGES}")));
                    }
                    nodes.push((id, node));
                }
                Ok(Mapping(nodes))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object at the top of an import or in an archive's list: a Skein conversation, a Skein
/// archive or one ChatGPT conversation, told apart by which fields it has.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Doc {
    format: Text,
    conversations: Option<Bounded<Doc, MAX_CONVERSATIONS>>,
    messages: Option<Bounded<SkeinMessage, MAX_MESSAGES>>,
    mapping: Option<Mapping>,
    title: Text,
    created_at: Time,
    create_time: Time,
    settings: Value,
    active_leaf_id: Text,
    current_node: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SkeinMessage {
    id: Text,
    parent_id: Text,
    role: Text,
    content: Text,
    model: Text,
    created_at: Time,
    /// The export's images: `data:` URLs (stored images read back) or `https:` URLs.
    images: Option<Bounded<Text, MAX_IMAGES_PER_MESSAGE>>,
    /// The export's tool calls of an answer, with their results.
    tool_calls: Option<Bounded<SkeinToolCall, MAX_TOOL_CALLS_PER_MESSAGE>>,
}

/// A tool call as Skein's export writes it ([`crate::tools::ToolRecord`]). Its citations are
/// not read back: their links would come from the file, not from a tool.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SkeinToolCall {
    id: Text,
    name: Text,
    arguments: Text,
    result: Text,
    is_error: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GptNode {
    parent: Text,
    message: Option<GptMessage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GptMessage {
    author: GptAuthor,
    content: GptContent,
    create_time: Time,
    metadata: GptMetadata,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GptAuthor {
    role: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GptContent {
    content_type: Text,
    /// Strings are text; other parts (images, files) read as absent.
    parts: Option<Vec<Text>>,
    text: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GptMetadata {
    model_slug: Text,
}

/// The top of the file: a list of ChatGPT conversations, or one object.
enum Top {
    List(Bounded<Doc, MAX_CONVERSATIONS>),
    One(Box<Doc>),
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a conversation, an archive or a list of ChatGPT conversations")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top, A::Error> {
                Bounded::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Top::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top, A::Error> {
                Doc::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|doc| Top::One(Box::new(doc)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Turns a reading error into the API's answer: a limit is 413, broken JSON 400, anything
/// else 422.
fn read_error(error: serde_json::Error) -> ApiError {
    let text = error.to_string();
    if let Some(at) = text.find(LIMIT_MARKER) {
        let rest = &text[at + LIMIT_MARKER.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return match digits.parse::<usize>() {
            Ok(MAX_CONVERSATIONS) => errors::too_many_conversations(MAX_CONVERSATIONS),
            _ => errors::too_many_messages(MAX_MESSAGES),
        };
    }
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ApiError::bad_request(
                "malformed_json",
                "The request body is not valid JSON.",
                "请求体不是合法的 JSON。",
            )
        }
        _ => invalid(
            "Import Skein's JSON export or ChatGPT's conversations.json.",
            "请导入 Skein 的 JSON 导出文件或 ChatGPT 的 conversations.json。",
        ),
    }
}

// ---- Shaping: from what was read to messages in parent-first order ----

/// An imported message, with the ids of the file.
#[derive(Debug, Clone, PartialEq)]
struct ImportedMessage {
    id: String,
    parent: Option<String>,
    role: String,
    content: String,
    model: Option<String>,
    created_at: i64,
    /// `data:image/` and `https:` URLs; `data:` ones become files when stored.
    images: Vec<String>,
    /// An answer's tool calls and their results.
    tool_calls: Vec<ToolRecord>,
}

impl ImportedMessage {
    /// Bytes of text it brings: its content and its tool calls.
    fn text_bytes(&self) -> usize {
        self.content.len()
            + self
                .tool_calls
                .iter()
                .map(|c| c.id.len() + c.name.len() + c.arguments.len() + c.result.len())
                .sum::<usize>()
    }
}

/// A conversation read from an import, before it gets new ids.
#[derive(Debug)]
pub struct Imported {
    title: String,
    created_at: i64,
    settings: Value,
    /// Parents before children.
    messages: Vec<ImportedMessage>,
    active: Option<String>,
}

/// Reads an import body: recognises the format, enforces every limit, walks the trees.
pub fn parse(body: &[u8]) -> ApiResult<Vec<Imported>> {
    let top: Top = serde_json::from_slice(body).map_err(read_error)?;
    let docs: Vec<Doc> = match top {
        Top::List(list) if list.0.iter().all(|c| c.mapping.is_some()) => list.0,
        Top::One(doc) if doc.format.0.as_deref() == Some(ARCHIVE_FORMAT) => match doc.conversations
        {
            Some(list) => list.0,
            None => {
                return Err(invalid(
                    "The archive has no conversations list.",
                    "归档中没有 conversations 列表。",
                ));
            }
        },
        Top::One(doc)
            if doc.format.0.as_deref() == Some(CONVERSATION_FORMAT) || doc.mapping.is_some() =>
        {
            vec![*doc]
        }
        _ => {
            return Err(invalid(
                "Import Skein's JSON export or ChatGPT's conversations.json.",
                "请导入 Skein 的 JSON 导出文件或 ChatGPT 的 conversations.json。",
            ));
        }
    };
    let total: usize = docs
        .iter()
        .map(|d| {
            d.mapping.as_ref().map_or(0, |m| m.0.len())
                + d.messages.as_ref().map_or(0, |m| m.0.len())
        })
        .sum();
    if total > MAX_TOTAL_MESSAGES {
        return Err(errors::too_large(
            "messages per import",
            "条消息（每次导入）",
            MAX_TOTAL_MESSAGES,
        ));
    }
    let found = docs
        .into_iter()
        .map(|doc| {
            if doc.mapping.is_some() {
                chatgpt_conversation(doc)
            } else {
                skein_conversation(doc)
            }
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let text: usize = found
        .iter()
        .flat_map(|c| c.messages.iter())
        .map(ImportedMessage::text_bytes)
        .sum();
    if text > MAX_TEXT_BYTES {
        return Err(errors::too_large(
            "bytes of message text per import",
            "字节的消息文本（每次导入）",
            MAX_TEXT_BYTES,
        ));
    }
    Ok(found)
}

fn skein_conversation(doc: Doc) -> ApiResult<Imported> {
    let Some(list) = doc.messages else {
        return Err(invalid(
            "A conversation needs a messages list.",
            "对话需要 messages 列表。",
        ));
    };
    let mut messages = Vec::with_capacity(list.0.len());
    for m in list.0 {
        let (Some(id), Some(role), Some(content)) = (m.id.0, m.role.0, m.content.0) else {
            return Err(invalid(
                "Every message needs id, role and content.",
                "每条消息都需要 id、role 和 content。",
            ));
        };
        if !matches!(role.as_str(), "user" | "assistant") {
            continue;
        }
        let images = m
            .images
            .map(|list| {
                list.0
                    .into_iter()
                    .filter_map(|t| t.0)
                    .filter(|url| {
                        (url.starts_with("data:image/") && url.len() <= MAX_IMAGE_URL_BYTES)
                            || (url.starts_with("https://") && url.len() <= 2048)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tool_calls = match (role.as_str(), m.tool_calls) {
            ("assistant", Some(list)) => list
                .0
                .into_iter()
                .filter_map(|c| {
                    // A call without a name cannot be replayed to a model.
                    let name = c.name.0.filter(|n| !n.is_empty() && n.len() <= 128)?;
                    Some(ToolRecord {
                        id: c.id.0.unwrap_or_default().chars().take(128).collect(),
                        name,
                        arguments: clip(c.arguments.0.unwrap_or_default()),
                        result: clip(c.result.0.unwrap_or_default()),
                        is_error: c.is_error.as_bool().unwrap_or(false),
                        citations: Vec::new(),
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        messages.push(ImportedMessage {
            id,
            parent: m.parent_id.0,
            role,
            content,
            model: m.model.0,
            created_at: m.created_at.0.unwrap_or_else(ids::now_ms),
            images,
            tool_calls,
        });
    }
    Ok(Imported {
        title: doc.title.0.unwrap_or_default(),
        created_at: doc.created_at.0.unwrap_or_else(ids::now_ms),
        settings: doc.settings,
        messages: order_parents_first(messages)?,
        active: doc.active_leaf_id.0,
    })
}

/// A ChatGPT node's text (its string parts, or `text`) if it is user or assistant text;
/// `None` for what is skipped (the hidden root, system and tool messages, empty text).
fn chatgpt_text(node: &GptNode) -> Option<(String, String)> {
    let message = node.message.as_ref()?;
    let role = message.author.role.0.as_deref()?;
    if !matches!(role, "user" | "assistant") {
        return None;
    }
    let kind = message.content.content_type.0.as_deref().unwrap_or("text");
    if !matches!(kind, "text" | "multimodal_text") {
        return None;
    }
    let text = match &message.content.parts {
        Some(parts) => parts
            .iter()
            .filter_map(|p| p.0.as_deref())
            .collect::<Vec<_>>()
            .join("\n"),
        None => message.content.text.0.clone().unwrap_or_default(),
    };
    (!text.trim().is_empty()).then(|| (role.to_string(), text))
}

/// For every node, itself if kept, else its nearest kept ancestor (`None` above the first
/// kept one). Linear: each walk up stops at the first node already resolved, and each node
/// is resolved once. A node met twice on one walk is a cycle.
fn nearest_kept(parents: &[Option<usize>], kept: &[bool]) -> ApiResult<Vec<Option<usize>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnPath,
        Done,
    }
    let n = parents.len();
    let mut state = vec![State::New; n];
    let mut nearest: Vec<Option<usize>> = vec![None; n];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..n {
        if state[start] == State::Done {
            continue;
        }
        path.clear();
        let mut at = start;
        // What the top of the path inherits: a resolved node's answer, or nothing at a root.
        let mut above = None;
        loop {
            match state[at] {
                State::Done => {
                    above = nearest[at];
                    break;
                }
                State::OnPath => return Err(errors::cycle()),
                State::New => {}
            }
            state[at] = State::OnPath;
            path.push(at);
            match parents[at] {
                Some(parent) => at = parent,
                None => break,
            }
        }
        for &node in path.iter().rev() {
            nearest[node] = if kept[node] { Some(node) } else { above };
            above = nearest[node];
            state[node] = State::Done;
        }
    }
    Ok(nearest)
}

fn chatgpt_conversation(doc: Doc) -> ApiResult<Imported> {
    let nodes = doc.mapping.map(|m| m.0).unwrap_or_default();
    // Index by id; a repeated id keeps its first node.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, (id, _)) in nodes.iter().enumerate() {
        index.entry(id.as_str()).or_insert(i);
    }
    // A parent missing from the mapping makes the node a root.
    let parents: Vec<Option<usize>> = nodes
        .iter()
        .map(|(_, node)| node.parent.0.as_deref().and_then(|p| index.get(p).copied()))
        .collect();
    let texts: Vec<Option<(String, String)>> = nodes.iter().map(|(_, n)| chatgpt_text(n)).collect();
    let kept: Vec<bool> = texts.iter().map(Option::is_some).collect();
    let nearest = nearest_kept(&parents, &kept)?;
    let conversation_time = doc.create_time.0;
    let mut messages = Vec::new();
    for (i, text) in texts.into_iter().enumerate() {
        let Some((role, content)) = text else {
            continue;
        };
        let (id, node) = &nodes[i];
        if index.get(id.as_str()) != Some(&i) {
            continue;
        }
        let message = node.message.as_ref();
        messages.push(ImportedMessage {
            id: id.clone(),
            parent: parents[i]
                .and_then(|p| nearest[p])
                .map(|p| nodes[p].0.clone()),
            role,
            content,
            model: message.and_then(|m| m.metadata.model_slug.0.clone()),
            created_at: message
                .and_then(|m| m.create_time.0)
                .or(conversation_time)
                .unwrap_or_else(ids::now_ms),
            // ChatGPT's export names its images by file ids of its own, not their bytes.
            images: Vec::new(),
            // Its tool messages are skipped (see `chatgpt_text`).
            tool_calls: Vec::new(),
        });
    }
    // Siblings in the order they were written.
    messages.sort_by_key(|m| m.created_at);
    let active = doc
        .current_node
        .0
        .as_deref()
        .and_then(|id| index.get(id).copied())
        .and_then(|i| nearest[i])
        .map(|i| nodes[i].0.clone());
    Ok(Imported {
        title: doc.title.0.unwrap_or_default(),
        created_at: conversation_time.unwrap_or_else(ids::now_ms),
        settings: Value::Null,
        messages: order_parents_first(messages)?,
        active,
    })
}

/// Orders messages so every parent comes before its children (siblings keep their order);
/// a message whose parent is not in the import, or names itself, becomes a root. Messages
/// that no root reaches are in a loop: refused.
fn order_parents_first(messages: Vec<ImportedMessage>) -> ApiResult<Vec<ImportedMessage>> {
    let known: HashMap<&str, usize> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let parent_of: Vec<Option<usize>> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.parent
                .as_deref()
                .and_then(|p| known.get(p).copied())
                .filter(|p| *p != i)
        })
        .collect();
    drop(known);
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); messages.len()];
    let mut roots = Vec::new();
    for (i, parent) in parent_of.iter().enumerate() {
        match parent {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    let mut order = Vec::with_capacity(messages.len());
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children[i].iter().rev());
    }
    if order.len() != messages.len() {
        return Err(errors::cycle());
    }
    let mut slots: Vec<Option<ImportedMessage>> = messages.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| {
            let mut m = slots[i].take()?;
            if parent_of[i].is_none() {
                m.parent = None;
            }
            Some(m)
        })
        .collect())
}

// ---- Writing: new ids, bounded batches ----

/// Imported text without NUL characters (PostgreSQL refuses them) and at most
/// [`MAX_CHARS`] long.
fn clip(text: String) -> String {
    text.replace('\0', "").chars().take(MAX_CHARS).collect()
}

/// Rows of one imported conversation under new ids, ready to insert; `hidden` is the
/// conversation's `deleted_at` until the import is shown.
fn rows_of(
    user_id: &str,
    imported: Imported,
    now: i64,
    hidden: Option<i64>,
) -> (ConversationRow, Vec<MessageRow>) {
    let conversation_id = ids::new_id();
    let mut new_ids: HashMap<String, String> = HashMap::with_capacity(imported.messages.len());
    let mut rows = Vec::with_capacity(imported.messages.len());
    // A time in the future (or garbage) would order siblings wrongly: clamp to now.
    let clamp = |t: i64| t.clamp(0, now);
    for m in imported.messages {
        // Parents come first, so a parent's new id is known.
        let parent_id = m.parent.and_then(|p| new_ids.get(&p).cloned());
        let id = ids::new_id();
        new_ids.insert(m.id, id.clone());
        rows.push(MessageRow {
            id,
            conversation_id: conversation_id.clone(),
            user_id: user_id.to_string(),
            parent_id,
            role: m.role,
            content: clip(m.content),
            reasoning: None,
            images: (!m.images.is_empty())
                .then(|| serde_json::to_string(&m.images).unwrap_or_else(|_| "[]".into())),
            status: crate::store::MessageStatus::Done,
            model: m
                .model
                .filter(|m| !m.is_empty() && m.len() <= 128 && !m.contains('\0')),
            error: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost: None,
            sources: None,
            tool_calls: (!m.tool_calls.is_empty())
                .then(|| serde_json::to_string(&m.tool_calls).ok())
                .flatten(),
            finish_reason: None,
            created_at: clamp(m.created_at),
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
        model: text(&settings["model"], 128),
        system_prompt: text(&settings["system_prompt"], MAX_CHARS),
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
        created_at: clamp(imported.created_at),
        deleted_at: hidden,
        ..ConversationRow::new(
            conversation_id,
            user_id,
            imported
                .title
                .replace('\0', "")
                .chars()
                .take(200)
                .collect::<String>(),
            now,
        )
    };
    (conversation, rows)
}

/// One row to write.
#[derive(Debug)]
enum Row {
    Conversation(ConversationRow),
    Message(MessageRow),
}

/// The rows of an import cut into transactions of at most [`BATCH_ROWS`], in order (a
/// conversation before its messages, parents before children).
fn batches(rows: &[Row]) -> impl Iterator<Item = &[Row]> {
    rows.chunks(BATCH_ROWS)
}

/// A random number 0–1023 (from a new id's random part), so two imports started in the same
/// millisecond get different markers.
fn nonce() -> u16 {
    let id = ids::new_id();
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    let tail = &hex[hex.len().saturating_sub(3)..];
    u16::from_str_radix(tail, 16).unwrap_or(0) % 1024
}

/// What an import made.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// The new conversations' ids.
    pub ids: Vec<String>,
    /// Images stored (as files when the File service runs here).
    pub images: usize,
    /// Images left out: not images after all, too large, or over the storage quota.
    pub images_skipped: usize,
}

/// Stores the images of imported messages the way sent messages' are (`data:` URLs become
/// the user's files, `https:` URLs stay), one at a time; an image the File service refuses is
/// left out of its message and counted, never failing the import.
async fn store_imported_images(
    files: Option<&std::sync::Arc<dyn skein_core::api::FileApi>>,
    user_id: &str,
    imported: &mut [Imported],
    report: &mut ImportReport,
) {
    for message in imported.iter_mut().flat_map(|c| c.messages.iter_mut()) {
        let mut kept = Vec::with_capacity(message.images.len());
        for image in std::mem::take(&mut message.images) {
            match crate::images::store_images(files, user_id, vec![image]).await {
                Ok(mut stored) => {
                    report.images += stored.len();
                    kept.append(&mut stored);
                }
                Err(error) => {
                    tracing::debug!(%error, "an imported image was left out");
                    report.images_skipped += 1;
                }
            }
        }
        message.images = kept;
    }
}

/// Stores imported conversations under new ids (their images first, as files) and answers
/// what was made. Written in batches
/// of at most [`BATCH_ROWS`] rows per transaction, yielding between them, and shown all
/// at once at the end.
pub async fn store_import(
    db: &Db,
    files: Option<&std::sync::Arc<dyn skein_core::api::FileApi>>,
    user_id: &str,
    mut imported: Vec<Imported>,
) -> ApiResult<ImportReport> {
    let mut report = ImportReport::default();
    store_imported_images(files, user_id, &mut imported, &mut report).await;
    let now = ids::now_ms();
    let marker = store::import_marker(now, nonce());
    let mut made = Vec::with_capacity(imported.len());
    let mut rows = Vec::new();
    for conversation in imported {
        let (conversation, messages) = rows_of(user_id, conversation, now, Some(marker));
        made.push(conversation.id.clone());
        rows.push(Row::Conversation(conversation));
        rows.extend(messages.into_iter().map(Row::Message));
    }
    let sqlite = matches!(db.backend(), skein_db::Backend::Sqlite);
    for batch in batches(&rows) {
        let mut tx = db.begin_write().await?;
        let mut messages: Vec<&MessageRow> = Vec::with_capacity(batch.len());
        for row in batch {
            match row {
                Row::Conversation(c) => store::insert_conversation(&mut *tx, c).await?,
                Row::Message(m) => messages.push(m),
            }
        }
        for chunk in messages.chunks(ROWS_PER_STATEMENT) {
            store::insert_messages(&mut *tx, chunk, sqlite).await?;
        }
        tx.commit().await.map_err(skein_db::DbError::from)?;
        // Let waiting writers (billing's settles) take the lock before the next batch.
        tokio::task::yield_now().await;
    }
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE chat_conversations SET deleted_at = NULL WHERE user_id = $1 AND deleted_at = $2",
    )
    .bind(user_id)
    .bind(marker)
    .execute(&mut *tx)
    .await
    .map_err(skein_db::DbError::from)?;
    tx.commit().await.map_err(skein_db::DbError::from)?;
    report.ids = made;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    fn parse_value(v: &Value) -> ApiResult<Vec<Imported>> {
        parse(v.to_string().as_bytes())
    }

    fn ids_of(c: &Imported) -> Vec<&str> {
        c.messages.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn a_chatgpt_export_keeps_its_branches_and_current_node() {
        let export = json!([{
            "title": "Rust 问题",
            "create_time": 1_700_000_000.5,
            "current_node": "a2",
            "mapping": {
                "root": {"id": "root", "message": null, "parent": null, "children": ["sys"]},
                "sys": {"id": "sys", "parent": "root", "children": ["u1"], "message": {"author": {"role": "system"}, "content": {"content_type": "text", "parts": [""]}}},
                "u1": {"id": "u1", "parent": "sys", "children": ["a1", "a2"], "message": {"author": {"role": "user"}, "create_time": 1_700_000_001.0, "content": {"content_type": "text", "parts": ["什么是所有权？", {"asset_pointer": "file-1"}]}}},
                "a1": {"id": "a1", "parent": "u1", "children": [], "message": {"author": {"role": "assistant"}, "create_time": 1_700_000_002.0, "content": {"content_type": "text", "parts": ["第一个回答"]}, "metadata": {"model_slug": "gpt-4o"}}},
                "a2": {"id": "a2", "parent": "u1", "children": [], "message": {"author": {"role": "assistant"}, "create_time": 1_700_000_003.0, "content": {"content_type": "text", "parts": ["第二个回答"]}}}
            }
        }]);
        let parsed = parse_value(&export).unwrap();
        assert_eq!(parsed.len(), 1);
        let c = &parsed[0];
        assert_eq!(c.title, "Rust 问题");
        assert_eq!(ids_of(c), ["u1", "a1", "a2"]);
        // The hidden root and the system node are skipped; u1 becomes a root.
        assert_eq!(c.messages[0].parent, None);
        assert_eq!(c.messages[0].content, "什么是所有权？");
        assert_eq!(c.messages[2].parent.as_deref(), Some("u1"));
        assert_eq!(c.active.as_deref(), Some("a2"));
        assert_eq!(c.messages[1].model.as_deref(), Some("gpt-4o"));
    }

    /// A chain of `n` nodes: a hidden root, then user and assistant turns, each the parent of
    /// the next, listed leaf first so no walk can rely on file order.
    fn chain(n: usize) -> Value {
        chain_skipping(n, |i| i % 7 == 0)
    }

    /// [`chain`] with `skip(i)` choosing the tool messages.
    fn chain_skipping(n: usize, skip: impl Fn(usize) -> bool) -> Value {
        let mut mapping = serde_json::Map::new();
        for i in (0..n).rev() {
            let parent = if i == 0 {
                Value::Null
            } else {
                json!(format!("n{}", i - 1))
            };
            let message = if i == 0 {
                Value::Null
            } else if skip(i) {
                // Every seventh is a tool message, skipped, whose child hangs from above it.
                json!({"author": {"role": "tool"}, "content": {"content_type": "text", "parts": ["tool"]}})
            } else {
                let role = if i % 2 == 1 { "user" } else { "assistant" };
                json!({"author": {"role": role}, "create_time": 1_700_000_000 + i, "content": {"content_type": "text", "parts": [format!("turn {i}")]}})
            };
            mapping.insert(
                format!("n{i}"),
                json!({"parent": parent, "message": message}),
            );
        }
        json!({"title": "long", "current_node": format!("n{}", n - 1), "mapping": mapping})
    }

    #[test]
    fn a_long_chain_is_walked_in_linear_time() {
        let n = MAX_MESSAGES;
        let body = chain(n).to_string();
        let started = std::time::Instant::now();
        let parsed = parse(body.as_bytes()).unwrap().pop().unwrap();
        // Quadratic work over 20,000 nodes would take minutes; linear takes milliseconds.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let kept = (1..n).filter(|i| i % 7 != 0).count();
        assert_eq!(parsed.messages.len(), kept);
        assert_eq!(parsed.messages[0].parent, None);
        for pair in parsed.messages.windows(2) {
            assert_eq!(pair[1].parent.as_deref(), Some(pair[0].id.as_str()));
        }
        // n6's child n7 is skipped, so n8 hangs from n6.
        let n8 = parsed.messages.iter().find(|m| m.id == "n8").unwrap();
        assert_eq!(n8.parent.as_deref(), Some("n6"));
        // The current node, when skipped, resolves to its nearest kept ancestor.
        let last_kept = (1..n).rev().find(|i| i % 7 != 0).unwrap();
        assert_eq!(
            parsed.active.as_deref(),
            Some(format!("n{last_kept}").as_str())
        );
    }

    #[test]
    fn a_long_run_of_skipped_nodes_is_resolved_once() {
        // 19,998 tool messages between the first question and the last answer: each node's
        // nearest kept ancestor must be found without walking the run again (or scanning it).
        let n = MAX_MESSAGES;
        let body = chain_skipping(n, |i| i != 1 && i != n - 1).to_string();
        let started = std::time::Instant::now();
        let parsed = parse(body.as_bytes()).unwrap().pop().unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let ids: Vec<&str> = parsed.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["n1", format!("n{}", n - 1).as_str()]);
        assert_eq!(parsed.messages[1].parent.as_deref(), Some("n1"));
    }

    #[test]
    fn cycles_are_refused_and_missing_parents_make_roots() {
        let looped = json!({"mapping": {
            "a": {"parent": "b", "message": {"author": {"role": "user"}, "content": {"parts": ["a"]}}},
            "b": {"parent": "c", "message": null},
            "c": {"parent": "a", "message": {"author": {"role": "assistant"}, "content": {"parts": ["c"]}}}
        }});
        assert_eq!(parse_value(&looped).unwrap_err().code(), "import_cycle");
        let skipped_loop = json!({"mapping": {
            "x": {"parent": "y", "message": null},
            "y": {"parent": "x", "message": null},
            "u": {"parent": "x", "message": {"author": {"role": "user"}, "content": {"parts": ["hi"]}}}
        }});
        assert_eq!(
            parse_value(&skipped_loop).unwrap_err().code(),
            "import_cycle"
        );
        let skein_loop = json!({"format": CONVERSATION_FORMAT, "messages": [
            {"id": "a", "parent_id": "b", "role": "user", "content": "a"},
            {"id": "b", "parent_id": "a", "role": "assistant", "content": "b"}
        ]});
        assert_eq!(parse_value(&skein_loop).unwrap_err().code(), "import_cycle");
        let orphan = json!({"mapping": {
            "u": {"parent": "gone", "message": {"author": {"role": "user"}, "content": {"parts": ["hi"]}}}
        }});
        let parsed = parse_value(&orphan).unwrap().pop().unwrap();
        assert_eq!(
            (parsed.messages.len(), parsed.messages[0].parent.clone()),
            (1, None)
        );
    }

    #[test]
    fn limits_stop_reading_and_answer_413() {
        let many = Value::Array(
            (0..=MAX_CONVERSATIONS)
                .map(|_| json!({"mapping": {}}))
                .collect(),
        );
        let e = parse_value(&many).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::PAYLOAD_TOO_LARGE, "import_too_large")
        );
        assert_eq!(e.details().unwrap()["max"], MAX_CONVERSATIONS);
        let e = parse_value(&chain(MAX_MESSAGES + 1)).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::PAYLOAD_TOO_LARGE, "import_too_large")
        );
        assert_eq!(e.details().unwrap()["max"], MAX_MESSAGES);
        let messages: Vec<Value> = (0..MAX_MESSAGES)
            .map(|i| json!({"id": i.to_string(), "role": "user", "content": "x"}))
            .collect();
        let archive = json!({"format": ARCHIVE_FORMAT, "conversations":
            (0..=MAX_TOTAL_MESSAGES / MAX_MESSAGES).map(|_| json!({"format": CONVERSATION_FORMAT, "messages": messages})).collect::<Vec<_>>()});
        let e = parse_value(&archive).unwrap_err();
        assert_eq!(
            (e.code(), e.details().unwrap()["max"].as_u64()),
            ("import_too_large", Some(MAX_TOTAL_MESSAGES as u64))
        );
        assert_eq!(
            parse(b"[{\"mapping\": ").unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(
            parse(b"{\"hello\": 1}").unwrap_err().code(),
            "validation_failed"
        );
        assert_eq!(parse(b"[1, 2]").unwrap_err().code(), "validation_failed");
    }

    #[test]
    fn a_message_naming_itself_as_parent_becomes_a_first_message() {
        let export = json!({"format": CONVERSATION_FORMAT, "title": "t", "messages": [
            {"id": "a", "parent_id": "a", "role": "user", "content": "hi", "created_at": "2999-01-01T00:00:00Z"},
            {"id": "b", "parent_id": "a", "role": "assistant", "content": "hello"}
        ]});
        let parsed = parse_value(&export).unwrap().pop().unwrap();
        let (_, rows) = rows_of("u", parsed, 1_000, None);
        assert_eq!(rows[0].parent_id, None);
        assert_eq!(rows[1].parent_id.as_deref(), Some(rows[0].id.as_str()));
        // A time in the future is clamped to now.
        assert_eq!(rows[0].created_at, 1_000);
    }

    #[test]
    fn unknown_imports_are_refused_clearly() {
        assert_eq!(
            parse_value(&json!({"hello": 1})).unwrap_err().code(),
            "validation_failed"
        );
        assert!(
            parse_value(&json!({"format": CONVERSATION_FORMAT, "messages": [{"id": 1}]})).is_err()
        );
    }

    #[test]
    fn an_answers_tool_calls_are_read_back_checked() {
        let doc = json!({"format": CONVERSATION_FORMAT, "messages": [
            {"id": "u", "role": "user", "content": "weather?",
                "tool_calls": [{"id": "x", "name": "forged", "arguments": "{}", "result": "r"}]},
            {"id": "a", "parent_id": "u", "role": "assistant", "content": "Sunny.", "tool_calls": [
                {"id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}", "result": "sunny\u{0}",
                    "is_error": false, "citations": [{"source": "web", "label": "1", "title": "t", "url": "javascript:alert(1)"}]},
                {"id": "call_2", "arguments": "{}", "result": "a call without a name"},
                {"id": "call_3", "name": "weather", "result": "failed", "is_error": true}]}]});
        let found = parse_value(&doc).unwrap();
        let messages = &found[0].messages;
        assert!(
            messages[0].tool_calls.is_empty(),
            "only answers carry tool calls"
        );
        let calls = &messages[1].tool_calls;
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(
            (calls[0].name.as_str(), calls[0].result.as_str()),
            ("weather", "sunny")
        );
        assert!(
            calls[0].citations.is_empty(),
            "links are not taken from a file"
        );
        assert!(calls[1].is_error && calls[1].arguments.is_empty());
        // Their text counts against the import's limit.
        assert!(messages[1].text_bytes() > messages[1].content.len());

        let too_many: Vec<Value> = (0..=MAX_TOOL_CALLS_PER_MESSAGE)
            .map(|i| json!({"id": i.to_string(), "name": "t"}))
            .collect();
        let doc = json!({"format": CONVERSATION_FORMAT, "messages": [
            {"id": "a", "role": "assistant", "content": "x", "tool_calls": too_many}]});
        assert!(parse_value(&doc).is_err());
    }

    #[test]
    fn parents_come_before_children_whatever_the_input_order() {
        let m = |id: &str, parent: Option<&str>| ImportedMessage {
            id: id.to_string(),
            parent: parent.map(str::to_string),
            role: "user".to_string(),
            content: String::new(),
            model: None,
            created_at: 0,
            images: Vec::new(),
            tool_calls: Vec::new(),
        };
        let ordered = order_parents_first(vec![
            m("c", Some("b")),
            m("b", Some("a")),
            m("a", None),
            m("x", Some("gone")),
        ])
        .unwrap();
        let ids: Vec<&str> = ordered.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "x"]);
        assert_eq!(ordered[3].parent, None);
    }

    #[test]
    fn writes_are_cut_into_bounded_batches_in_order() {
        let parsed = parse_value(&chain(MAX_MESSAGES)).unwrap();
        let mut rows = Vec::new();
        for c in parsed {
            let (conversation, messages) = rows_of("u", c, 1_000, Some(-5));
            assert_eq!(
                conversation.deleted_at,
                Some(-5),
                "hidden until the import is done"
            );
            rows.push(Row::Conversation(conversation));
            rows.extend(messages.into_iter().map(Row::Message));
        }
        let all = rows.len();
        let sizes: Vec<usize> = batches(&rows).map(<[Row]>::len).collect();
        assert!(
            sizes.len() > 1 && sizes.iter().all(|&n| (1..=BATCH_ROWS).contains(&n)),
            "{sizes:?}"
        );
        assert_eq!(sizes.iter().sum::<usize>(), all);
        // Every parent is written before (in an earlier or the same batch as) its child.
        let mut written = std::collections::HashSet::new();
        for batch in batches(&rows) {
            for row in batch {
                if let Row::Message(m) = row {
                    assert!(m.parent_id.as_ref().is_none_or(|p| written.contains(p)));
                    written.insert(m.id.clone());
                }
            }
        }
    }
}
