//! OpenAPI tools: an OpenAPI 3 document (JSON or YAML) becomes one tool per operation, named after
//! its `operationId` (or method and path) made safe for vendors (`^[a-zA-Z0-9_-]{1,64}$`),
//! its parameters and JSON body turned into one JSON Schema object; a call is made by the
//! server ([`crate::net`], with its SSRF guard), with the plugin's auth.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The largest OpenAPI document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The most operations one document may turn into tools.
pub const MAX_OPERATIONS: usize = 128;

/// The most characters of an answer given to the model.
pub const MAX_RESULT_CHARS: usize = 16_000;

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// In the path (`/pets/{id}`).
    Path,
    /// In the query string.
    Query,
    /// A header.
    Header,
}

/// A parameter of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Where it goes.
    pub location: Location,
}

/// A tool a plugin offers, as stored in `plugins.tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// The name the model calls it by.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: Value,
    /// The HTTP method (OpenAPI tools).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// The path template (OpenAPI tools).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Where each argument goes (OpenAPI tools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Whether the `body` argument is sent as the JSON body (OpenAPI tools).
    #[serde(default)]
    pub body: bool,
}

/// A vendor-safe tool name: characters outside `[a-zA-Z0-9_-]` become `_`, at most 64.
pub fn sanitise_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name = name.trim_matches('_').to_string();
    if name.is_empty() {
        name = "operation".into();
    }
    name.chars().take(64).collect()
}

/// Whether `name` is one vendors accept.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Follows a local `$ref` (`#/components/...`), a few levels deep at most.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(pointer) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        let Some(path) = pointer.strip_prefix('#') else {
            return value;
        };
        match doc.pointer(path) {
            Some(target) => value = target,
            None => return value,
        }
    }
    value
}

/// Copies a schema with local references inlined (to a depth), so the model gets a
/// self-contained schema.
fn inline(doc: &Value, schema: &Value, depth: usize) -> Value {
    if depth == 0 {
        return json!({});
    }
    let schema = resolve(doc, schema);
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if key == "$ref" {
                    continue;
                }
                out.insert(key.clone(), inline(doc, value, depth - 1));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| inline(doc, v, depth - 1)).collect())
        }
        other => other.clone(),
    }
}

/// The document's first server URL, if any.
pub fn server_url(doc: &Value) -> Option<String> {
    doc["servers"][0]["url"]
        .as_str()
        .map(|s| s.trim_end_matches('/').to_string())
}

/// Reads an OpenAPI document given as text: JSON when it opens with `{`, else YAML (1.2,
/// bounded against alias bombs: [`skein_text::yaml`]). The error says what is wrong and where.
pub fn parse_document(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).map_err(|e| format!("it is not valid JSON: {e}"));
    }
    let document = skein_text::yaml::to_json(trimmed)?;
    if !document.is_object() {
        return Err("it is not a mapping of OpenAPI fields".into());
    }
    Ok(document)
}

/// The tools of an OpenAPI 3 document, or what is wrong with it.
pub fn tools_of(doc: &Value) -> Result<Vec<ToolDef>, String> {
    // `openapi: 3.1` unquoted in YAML is a number; its text is what counts.
    let version = match &doc["openapi"] {
        Value::String(v) => v.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if !version.starts_with("3.") {
        return Err("the document is not OpenAPI 3 (its `openapi` field must be 3.x)".into());
    }
    let paths = doc["paths"]
        .as_object()
        .ok_or("the document has no `paths`")?;
    let mut tools: Vec<ToolDef> = Vec::new();
    for (path, item) in paths {
        let item = resolve(doc, item);
        let shared: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            if tools.len() >= MAX_OPERATIONS {
                return Err(format!(
                    "the document has more than {MAX_OPERATIONS} operations"
                ));
            }
            let raw_name = operation["operationId"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{method}_{path}"));
            let mut name = sanitise_name(&raw_name);
            let mut n = 2;
            while tools.iter().any(|t| t.name == name) {
                let suffix = format!("_{n}");
                name = format!(
                    "{}{suffix}",
                    name.chars().take(64 - suffix.len()).collect::<String>()
                );
                n += 1;
            }
            let description = [&operation["summary"], &operation["description"]]
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" — ");
            let mut properties = Map::new();
            let mut required: Vec<Value> = Vec::new();
            let mut params = Vec::new();
            let own: Vec<Value> = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for parameter in shared.iter().chain(own.iter()) {
                let parameter = resolve(doc, parameter);
                let Some(pname) = parameter["name"].as_str() else {
                    continue;
                };
                let location = match parameter["in"].as_str() {
                    Some("path") => Location::Path,
                    Some("query") => Location::Query,
                    Some("header") => Location::Header,
                    _ => continue,
                };
                let mut schema = inline(doc, &parameter["schema"], 12);
                if !schema.is_object() {
                    schema = json!({"type": "string"});
                }
                if let Some(text) = parameter["description"].as_str() {
                    schema["description"] = json!(text);
                }
                params.retain(|p: &Param| p.name != pname);
                params.push(Param {
                    name: pname.to_string(),
                    location,
                });
                properties.insert(pname.to_string(), schema);
                if location == Location::Path || parameter["required"].as_bool() == Some(true) {
                    required.push(json!(pname));
                }
            }
            let body_schema = resolve(doc, &operation["requestBody"]);
            let body = body_schema["content"]["application/json"]["schema"].is_object();
            if body {
                properties.insert(
                    "body".into(),
                    inline(
                        doc,
                        &body_schema["content"]["application/json"]["schema"],
                        12,
                    ),
                );
                if body_schema["required"].as_bool() == Some(true) {
                    required.push(json!("body"));
                }
            }
            tools.push(ToolDef {
                name,
                description: if description.is_empty() {
                    format!("{} {path}", method.to_uppercase())
                } else {
                    description
                },
                parameters: json!({"type": "object", "properties": properties, "required": required}),
                method: method.to_uppercase(),
                path: path.clone(),
                params,
                body,
            });
        }
    }
    if tools.is_empty() {
        return Err("the document has no operations".into());
    }
    Ok(tools)
}

/// Percent-encodes a path segment.
fn encode_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of an argument as it goes into a URL or header.
fn arg_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The request for a call of `tool` on `base_url` with `arguments` (a JSON object), or what
/// is wrong with the arguments.
pub fn request_for(
    base_url: &str,
    tool: &ToolDef,
    arguments: &Value,
) -> Result<crate::net::Outgoing, String> {
    let args = arguments
        .as_object()
        .ok_or("the arguments must be a JSON object")?;
    let mut path = tool.path.clone();
    let mut query: Vec<(String, String)> = Vec::new();
    let mut headers = Vec::new();
    for param in &tool.params {
        let value = args.get(&param.name);
        match (param.location, value) {
            (Location::Path, Some(v)) => {
                let text = arg_text(v);
                // URL parsing resolves `.` and `..` segments (encoded ones too), which would
                // let a steered model reach other paths of the plugin's host with its key.
                if text.is_empty() || text == "." || text == ".." {
                    return Err(format!(
                        "the argument `{}` is not a valid path segment",
                        param.name
                    ));
                }
                path = path.replace(&format!("{{{}}}", param.name), &encode_segment(&text));
            }
            (Location::Path, None) => {
                return Err(format!("the argument `{}` is required", param.name));
            }
            (Location::Query, Some(v)) => query.push((param.name.clone(), arg_text(v))),
            (Location::Header, Some(v)) => headers.push((param.name.clone(), arg_text(v))),
            (_, None) => {}
        }
    }
    let mut url = reqwest::Url::parse(&format!("{}{path}", base_url.trim_end_matches('/')))
        .map_err(|_| "the plugin's server address is not a URL".to_string())?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let method = reqwest::Method::from_bytes(tool.method.as_bytes())
        .map_err(|_| "bad method".to_string())?;
    Ok(crate::net::Outgoing {
        method,
        url,
        headers,
        body: if tool.body {
            args.get("body").cloned()
        } else {
            None
        },
    })
}

/// What the model reads of an answer: its JSON (re-serialised, so it is known to be JSON) or
/// its text, cut to [`MAX_RESULT_CHARS`]; an answer that says it is JSON and is not, or a
/// failed status, is an error.
pub fn result_text(answer: &crate::net::Answer) -> Result<String, String> {
    let text = if answer.content_type.contains("json") {
        let value: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| format!("the service answered invalid JSON (HTTP {})", answer.status))?;
        value.to_string()
    } else {
        String::from_utf8_lossy(&answer.body).into_owned()
    };
    let text: String = if text.chars().count() > MAX_RESULT_CHARS {
        let mut cut: String = text.chars().take(MAX_RESULT_CHARS).collect();
        cut.push_str(" …(cut)");
        cut
    } else {
        text
    };
    if !(200..300).contains(&answer.status) {
        return Err(format!(
            "the service answered HTTP {}: {text}",
            answer.status
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn petstore() -> Value {
        json!({
            "openapi": "3.0.3",
            "servers": [{"url": "https://pets.example.com/v1/"}],
            "components": {"schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "parameters": {"Limit": {"name": "limit", "in": "query", "schema": {"type": "integer"}}}},
            "paths": {
                "/pets": {
                    "get": {"operationId": "list pets!", "summary": "List pets",
                        "parameters": [{"$ref": "#/components/parameters/Limit"}]},
                    "post": {"operationId": "createPet", "requestBody": {"required": true,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
                },
                "/pets/{petId}": {
                    "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "get": {"summary": "One pet"}
                }
            }
        })
    }

    #[test]
    fn operations_become_tools_with_safe_names_and_schemas() {
        let doc = petstore();
        assert_eq!(
            server_url(&doc).as_deref(),
            Some("https://pets.example.com/v1")
        );
        let tools = tools_of(&doc).unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["list_pets", "createPet", "get__pets__petId"]);
        assert!(names.iter().all(|n| is_valid_name(n)));
        assert_eq!(
            tools[0].parameters["properties"]["limit"]["type"],
            "integer"
        );
        assert_eq!(
            tools[1].parameters["properties"]["body"]["properties"]["name"]["type"],
            "string"
        );
        assert_eq!(tools[1].parameters["required"], json!(["body"]));
        assert_eq!(tools[2].parameters["required"], json!(["petId"]));

        let call = request_for(
            "https://pets.example.com/v1",
            &tools[2],
            &json!({"petId": "a b/c"}),
        )
        .unwrap();
        assert_eq!(
            call.url.as_str(),
            "https://pets.example.com/v1/pets/a%20b%2Fc"
        );
        let call = request_for(
            "https://pets.example.com/v1",
            &tools[0],
            &json!({"limit": 3}),
        )
        .unwrap();
        assert_eq!(
            call.url.as_str(),
            "https://pets.example.com/v1/pets?limit=3"
        );
        assert!(request_for("https://x", &tools[2], &json!({})).is_err());
        assert!(request_for("https://x", &tools[2], &json!([1])).is_err());
        // A dot segment would climb out of the operation's path (URL parsing resolves it).
        for climb in ["..", ".", ""] {
            assert!(request_for("https://x", &tools[2], &json!({"petId": climb})).is_err());
        }
        let call = request_for("https://x", &tools[2], &json!({"petId": "..%2e"})).unwrap();
        assert_eq!(call.url.as_str(), "https://x/pets/..%252e");
    }

    #[test]
    fn malformed_documents_are_refused_clearly() {
        assert!(
            tools_of(&json!({"swagger": "2.0"}))
                .unwrap_err()
                .contains("OpenAPI 3")
        );
        assert!(
            tools_of(&json!({"openapi": "3.1.0"}))
                .unwrap_err()
                .contains("paths")
        );
        assert!(
            tools_of(&json!({"openapi": "3.1.0", "paths": {}}))
                .unwrap_err()
                .contains("no operations")
        );
        let long = "x".repeat(200);
        assert_eq!(sanitise_name(&long).len(), 64);
        assert_eq!(sanitise_name("天气"), "operation");
    }
}
