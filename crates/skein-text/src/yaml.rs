//! YAML documents (OpenAPI documents and channel files are often written in YAML) read into
//! JSON values, with YAML 1.2's core schema: a plain `yes` or `on` stays a string, `3.0.3` a
//! string, `200` an integer (and, as a mapping key, the text `"200"`).
//!
//! Built on `saphyr-parser`'s events rather than a serde YAML crate: the parser is pure safe
//! Rust and YAML 1.2 compliant, and reading its events lets this module bound what a hostile
//! document can cost. Every node, and every byte of text, counts against a budget, aliases
//! included, so an alias bomb (a few lines that expand to gigabytes) is refused as it grows,
//! before it is built. Merge keys (`<<: *base`) are honoured, since hand-written OpenAPI
//! documents use them; tags other than the core ones are ignored (their value is read as
//! plain YAML), and complex (non-scalar) mapping keys are refused, since JSON has none.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

/// The most nodes a document may expand to (aliases counted each time they are used).
pub const MAX_NODES: usize = 300_000;

/// The most bytes of text (keys and scalars) a document may expand to.
pub const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// The deepest nesting read.
pub const MAX_DEPTH: usize = 128;

/// A value being built, with what it cost.
struct Built {
    value: Value,
    nodes: usize,
    bytes: usize,
}

/// A collection still open.
enum Frame {
    Sequence {
        anchor: usize,
        items: Vec<Value>,
        nodes: usize,
        bytes: usize,
    },
    Mapping {
        anchor: usize,
        entries: Map<String, Value>,
        /// The key read, waiting for its value.
        key: Option<String>,
        /// Mappings merged in with `<<`, applied under the explicit keys at the end.
        merges: Vec<Map<String, Value>>,
        nodes: usize,
        bytes: usize,
    },
}

/// Reads one YAML document into a JSON value; the error says what is wrong and where.
pub fn to_json(text: &str) -> Result<Value, String> {
    let mut reader = Reader::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| format!("it is not valid YAML: {e}"))?;
        reader.on(event).map_err(|e| {
            format!(
                "{e} (line {}, column {})",
                span.start.line(),
                span.start.col() + 1
            )
        })?;
    }
    reader
        .root
        .ok_or_else(|| "the YAML document is empty".to_string())
}

#[derive(Default)]
struct Reader {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Built>,
    root: Option<Value>,
    documents: usize,
    nodes: usize,
    bytes: usize,
}

impl Reader {
    fn on(&mut self, event: Event<'_>) -> Result<(), String> {
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err("the YAML has more than one document".into());
                }
                Ok(())
            }
            Event::Alias(id) => {
                let Some(anchored) = self.anchors.get(&id) else {
                    return Err("an alias names no anchor".into());
                };
                let (value, nodes, bytes) =
                    (anchored.value.clone(), anchored.nodes, anchored.bytes);
                if self.key_expected() {
                    return match value {
                        Value::Object(_) | Value::Array(_) => {
                            Err("a mapping key is not a scalar".into())
                        }
                        scalar => self.set_key(key_text(&scalar), bytes),
                    };
                }
                self.spend(nodes, bytes)?;
                self.finish(Built {
                    value,
                    nodes,
                    bytes,
                })
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.key_expected() {
                    let key = text.into_owned();
                    let bytes = key.len();
                    self.spend(1, bytes)?;
                    if anchor > 0 {
                        self.anchors.insert(
                            anchor,
                            Built {
                                value: Value::String(key.clone()),
                                nodes: 1,
                                bytes,
                            },
                        );
                    }
                    return self.set_key(key, bytes);
                }
                let bytes = text.len();
                self.spend(1, bytes)?;
                let value = scalar(&text, style, tag.as_deref());
                self.anchor(anchor, &value, 1, bytes);
                self.finish(Built {
                    value,
                    nodes: 1,
                    bytes,
                })
            }
            Event::SequenceStart(anchor, _) => {
                self.open()?;
                self.stack.push(Frame::Sequence {
                    anchor,
                    items: Vec::new(),
                    nodes: 1,
                    bytes: 0,
                });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.open()?;
                self.stack.push(Frame::Mapping {
                    anchor,
                    entries: Map::new(),
                    key: None,
                    merges: Vec::new(),
                    nodes: 1,
                    bytes: 0,
                });
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Sequence {
                    anchor,
                    items,
                    nodes,
                    bytes,
                }) => {
                    let value = Value::Array(items);
                    self.anchor(anchor, &value, nodes, bytes);
                    self.finish(Built {
                        value,
                        nodes,
                        bytes,
                    })
                }
                _ => Err("a sequence ends that did not start".into()),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Mapping {
                    anchor,
                    mut entries,
                    merges,
                    nodes,
                    bytes,
                    ..
                }) => {
                    // Explicit keys win over merged ones; earlier merges over later ones.
                    for merged in merges {
                        for (key, value) in merged {
                            entries.entry(key).or_insert(value);
                        }
                    }
                    let value = Value::Object(entries);
                    self.anchor(anchor, &value, nodes, bytes);
                    self.finish(Built {
                        value,
                        nodes,
                        bytes,
                    })
                }
                _ => Err("a mapping ends that did not start".into()),
            },
        }
    }

    /// Counts `nodes` and `bytes` more against the document's budget.
    fn spend(&mut self, nodes: usize, bytes: usize) -> Result<(), String> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.nodes > MAX_NODES {
            return Err(format!(
                "the YAML expands to more than {MAX_NODES} values (aliases counted each time)"
            ));
        }
        if self.bytes > MAX_TEXT_BYTES {
            return Err(format!(
                "the YAML expands to more than {MAX_TEXT_BYTES} bytes of text (aliases counted each time)"
            ));
        }
        Ok(())
    }

    /// A collection starts: never as a key, never deeper than [`MAX_DEPTH`].
    fn open(&mut self) -> Result<(), String> {
        if self.key_expected() {
            return Err("a mapping key is not a scalar".into());
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("the YAML is nested deeper than {MAX_DEPTH}"));
        }
        self.spend(1, 0)
    }

    fn key_expected(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { key: None, .. }))
    }

    fn set_key(&mut self, key: String, bytes: usize) -> Result<(), String> {
        if let Some(Frame::Mapping {
            entries,
            key: slot,
            bytes: total,
            ..
        }) = self.stack.last_mut()
        {
            if key != "<<" && entries.contains_key(&key) {
                return Err(format!("the key {key:?} appears twice in one mapping"));
            }
            *slot = Some(key);
            *total += bytes;
        }
        Ok(())
    }

    fn anchor(&mut self, anchor: usize, value: &Value, nodes: usize, bytes: usize) {
        if anchor > 0 {
            self.anchors.insert(
                anchor,
                Built {
                    value: value.clone(),
                    nodes,
                    bytes,
                },
            );
        }
    }

    /// Puts a finished value where it belongs: the open collection, or the root.
    fn finish(&mut self, built: Built) -> Result<(), String> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(built.value);
                Ok(())
            }
            Some(Frame::Sequence {
                items,
                nodes,
                bytes,
                ..
            }) => {
                items.push(built.value);
                *nodes += built.nodes;
                *bytes += built.bytes;
                Ok(())
            }
            Some(Frame::Mapping {
                entries,
                key,
                merges,
                nodes,
                bytes,
                ..
            }) => {
                *nodes += built.nodes;
                *bytes += built.bytes;
                match key.take() {
                    Some(k) if k == "<<" => match built.value {
                        Value::Object(map) => merges.push(map),
                        Value::Array(list) => {
                            for item in list {
                                match item {
                                    Value::Object(map) => merges.push(map),
                                    _ => return Err("`<<` merges only mappings".into()),
                                }
                            }
                        }
                        _ => return Err("`<<` merges only mappings".into()),
                    },
                    Some(k) => {
                        entries.insert(k, built.value);
                    }
                    None => return Err("a mapping value came without its key".into()),
                }
                Ok(())
            }
        }
    }
}

/// A scalar used as a mapping key through an alias, as text.
fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A scalar's value under YAML 1.2's core schema: only plain scalars are resolved; quoted
/// and block scalars, and those tagged `!!str`, are strings.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    let core = tag
        .filter(|t| t.is_yaml_core_schema())
        .map(|t| t.suffix.as_str());
    if core == Some("str") || style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = integer(text) {
        return Value::Number(n.into());
    }
    if is_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    // `.inf` and `.nan` have no JSON form: they stay text.
    Value::String(text.to_string())
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`, when it fits an i64.
fn integer(text: &str) -> Option<i64> {
    if let Some(octal) = text.strip_prefix("0o") {
        return i64::from_str_radix(octal, 8).ok();
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && digits(whole),
        Some(f) => digits(whole) && digits(f) && !(whole.is_empty() && f.is_empty()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Writes a JSON value as a block-style YAML document that [`to_json`] reads back as the same
/// value: every string double-quoted (JSON's escapes are YAML's), so no text is read as
/// another type; empty maps and lists as `{}` and `[]`.
pub fn from_json(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => emit_map(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => emit_list(items, 0, &mut out),
        other => {
            out.push_str(&emit_scalar(other));
            out.push('\n');
        }
    }
    out
}

/// A scalar (or an empty collection) on one line.
fn emit_scalar(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

/// Whether a value is written on its key's line.
fn emit_inline(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => true,
    }
}

/// A mapping's entries at `indent`.
fn emit_map(map: &Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&Value::String(key.clone()).to_string());
        if emit_inline(value) {
            out.push_str(": ");
            out.push_str(&emit_scalar(value));
            out.push('\n');
        } else {
            out.push_str(":\n");
            match value {
                Value::Object(inner) => emit_map(inner, indent + 2, out),
                Value::Array(items) => emit_list(items, indent + 2, out),
                _ => {}
            }
        }
    }
}

/// A sequence's items at `indent`.
fn emit_list(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        if emit_inline(item) {
            out.push_str("- ");
            out.push_str(&emit_scalar(item));
            out.push('\n');
        } else {
            out.push_str("-\n");
            match item {
                Value::Object(inner) => emit_map(inner, indent + 2, out),
                Value::Array(inner) => emit_list(inner, indent + 2, out),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_openapi_document_in_yaml_reads_as_its_json() {
        let yaml = r#"
openapi: 3.0.3   # a string: two dots
info: {title: "Pets", version: '1'}
servers:
  - url: https://pets.example.com/v1
x-common: &limit
  name: limit
  in: query
  schema: {type: integer, maximum: 100}
paths:
  /pets:
    get:
      operationId: listPets
      summary: >
        List the
        pets
      parameters:
        - *limit
        - <<: *limit
          name: offset
      responses:
        200:
          description: ok
        default: {description: "error"}
  /flags:
    get:
      parameters: [{name: on, in: query, required: yes, example: ~}]
"#;
        let doc = to_json(yaml).unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(doc["info"]["version"], "1");
        assert_eq!(doc["servers"][0]["url"], "https://pets.example.com/v1");
        let get = &doc["paths"]["/pets"]["get"];
        assert_eq!(get["summary"], "List the pets\n");
        assert_eq!(
            get["parameters"][0],
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}})
        );
        assert_eq!(get["parameters"][1]["name"], "offset", "explicit keys win");
        assert_eq!(get["parameters"][1]["in"], "query", "merged keys fill in");
        assert_eq!(get["responses"]["200"]["description"], "ok");
        // YAML 1.2: `on` and `yes` are strings, `~` is null.
        assert_eq!(
            doc["paths"]["/flags"]["get"]["parameters"][0],
            json!({"name": "on", "in": "query", "required": "yes", "example": null})
        );
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let doc = to_json(
            "[1, -2, 0x1f, 0o17, 1.5, .5, 1e3, 3.0, '7', \"true\", true, FALSE, null, .inf, 1.2.3, !!str 9]",
        )
        .unwrap();
        assert_eq!(
            doc,
            json!([
                1, -2, 31, 15, 1.5, 0.5, 1000.0, 3.0, "7", "true", true, false, null, ".inf",
                "1.2.3", "9"
            ])
        );
        assert_eq!(
            to_json("|\n  line one\n  line two\n").unwrap(),
            "line one\nline two\n"
        );
    }

    #[test]
    fn hostile_and_broken_documents_are_refused_clearly() {
        // A billion laughs: ten aliases of ten aliases of ... refused as it grows.
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = to_json(&bomb).unwrap_err();
        assert!(e.contains("more than 300000 values"), "{e}");
        let long = "x".repeat(100_000);
        let e = to_json(&format!("s: &s {long}\nl: [{}]\n", ["*s"; 60].join(", "))).unwrap_err();
        assert!(e.contains("bytes of text"), "{e}");
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(to_json(&deep).unwrap_err().contains("deeper than 128"));
        assert!(
            to_json("a: 1\na: 2\n")
                .unwrap_err()
                .contains("appears twice")
        );
        assert!(
            to_json("? [a, b]\n: 1\n")
                .unwrap_err()
                .contains("not a scalar")
        );
        assert!(
            to_json("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .contains("more than one document")
        );
        let e = to_json("paths:\n  - a\n b: [\n").unwrap_err();
        assert!(e.contains("line"), "{e}");
        let e = to_json("paths: [a, b\n").unwrap_err();
        assert!(e.contains("not valid YAML") && e.contains("line"), "{e}");
        assert!(to_json("").unwrap_err().contains("empty"));
        assert!(to_json("a: *nope\n").is_err());
    }

    #[test]
    fn written_yaml_reads_back_as_the_same_value() {
        let value = json!({
            "channel": [
                {"name": "yes", "type": "openai", "models": ["3.0", "on", "null", "~"],
                 "weight": 10, "ratio": 0.5, "enabled": true, "headers": {}, "groups": [],
                 "note": "line one\nline \"two\" # not a comment: [x] {y}"},
                {"name": "中文渠道", "nested": [[1, 2], [], {"a": null}]}
            ],
            "prices": {"gpt-4o": {"input": 2500}},
            "empty": {}
        });
        let text = from_json(&value);
        assert_eq!(to_json(&text).ok(), Some(value), "{text}");
        assert_eq!(
            to_json(&from_json(&json!("plain"))).ok(),
            Some(json!("plain"))
        );
    }
}
