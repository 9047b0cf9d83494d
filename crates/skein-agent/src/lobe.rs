//! Import and export formats: LobeChat's agent JSON (the shape of their market's entries:
//! `identifier`, `meta{title,description,avatar,tags}`, `config{systemRole, model, params,
//! openingMessage, openingQuestions}`) and Skein's own, which carries every version.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::spec::AgentSpec;

/// The format name Skein's own export carries.
pub const SKEIN_FORMAT: &str = "skein.agent";

/// A LobeChat agent, as their market publishes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LobeAgent {
    /// Their slug.
    pub identifier: String,
    /// Who wrote it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// Name, description, avatar, tags.
    pub meta: LobeMeta,
    /// Prompt and settings.
    pub config: LobeConfig,
    /// Their schema's version (1).
    pub schema_version: i64,
}

/// LobeChat's `meta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LobeMeta {
    /// Name.
    pub title: String,
    /// Description.
    pub description: String,
    /// Emoji or URL.
    pub avatar: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Their category name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// LobeChat's `config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LobeConfig {
    /// System prompt.
    pub system_role: String,
    /// Model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Sampling parameters.
    pub params: LobeParams,
    /// Opening message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub opening_message: String,
    /// Opening questions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub opening_questions: Vec<String>,
}

/// LobeChat's `config.params` (snake_case, as OpenAI names them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct LobeParams {
    /// Temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Top-p.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Max tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
}

impl LobeAgent {
    /// The spec it describes (validated by the caller).
    pub fn into_spec(self) -> AgentSpec {
        AgentSpec {
            name: self.meta.title.trim().to_string(),
            avatar: self.meta.avatar,
            description: self.meta.description,
            tags: self.meta.tags,
            category: None,
            system_prompt: self.config.system_role,
            model: self.config.model.filter(|m| !m.is_empty()),
            temperature: self.config.params.temperature,
            top_p: self.config.params.top_p,
            max_tokens: self.config.params.max_tokens,
            allow_model_override: true,
            opening_message: self.config.opening_message,
            suggested_questions: self.config.opening_questions,
            knowledge_base_ids: Vec::new(),
            plugin_ids: Vec::new(),
        }
    }

    /// `spec` in LobeChat's format, under `identifier`.
    pub fn from_spec(identifier: &str, spec: &AgentSpec) -> LobeAgent {
        LobeAgent {
            identifier: identifier.to_string(),
            author: String::new(),
            meta: LobeMeta {
                title: spec.name.clone(),
                description: spec.description.clone(),
                avatar: spec.avatar.clone(),
                tags: spec.tags.clone(),
                category: spec.category.clone(),
            },
            config: LobeConfig {
                system_role: spec.system_prompt.clone(),
                model: spec.model.clone(),
                params: LobeParams {
                    temperature: spec.temperature,
                    top_p: spec.top_p,
                    max_tokens: spec.max_tokens,
                },
                opening_message: spec.opening_message.clone(),
                opening_questions: spec.suggested_questions.clone(),
            },
            schema_version: 1,
        }
    }
}

/// Skein's own export: the draft, the visibility and every version, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkeinExport {
    /// Always `skein.agent`.
    pub format: String,
    /// `private`, `link` or `public`.
    pub visibility: String,
    /// The draft.
    pub draft: AgentSpec,
    /// Every version, oldest first.
    pub versions: Vec<ExportedVersion>,
}

/// A version in Skein's export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExportedVersion {
    /// Its number where it was exported.
    pub version: i64,
    /// What changed.
    pub changelog: String,
    /// Published, RFC 3339.
    pub created_at: String,
    /// Its content.
    pub spec: AgentSpec,
}

/// What an import holds, whichever format it came in.
#[derive(Debug)]
pub enum Imported {
    /// A LobeChat agent: one draft, published once.
    Lobe(AgentSpec),
    /// Skein's own, with its versions.
    Skein(SkeinExport),
}

/// Reads an import: Skein's format when `format` says so, else LobeChat's (which has
/// `meta` and `config`). Anything else is a clear 422.
pub fn parse(body: &Value) -> ApiResult<Imported> {
    let unknown = || {
        ApiError::invalid_field(
            "format",
            "Not an agent file: expected LobeChat's agent JSON (meta, config) or Skein's export (format: skein.agent).",
            "不是助手文件：需要 LobeChat 助手 JSON（含 meta、config）或 Skein 导出文件（format: skein.agent）。",
        )
    };
    if body.get("format").and_then(Value::as_str) == Some(SKEIN_FORMAT) {
        let export: SkeinExport = serde_json::from_value(body.clone()).map_err(|e| {
            ApiError::invalid_field(
                "format",
                format!("The Skein export is malformed: {e}"),
                format!("Skein 导出文件格式错误：{e}"),
            )
        })?;
        return Ok(Imported::Skein(export));
    }
    if body.get("meta").is_some_and(Value::is_object)
        && body.get("config").is_some_and(Value::is_object)
    {
        let lobe: LobeAgent = serde_json::from_value(body.clone()).map_err(|e| {
            ApiError::invalid_field(
                "config",
                format!("The LobeChat agent is malformed: {e}"),
                format!("LobeChat 助手格式错误：{e}"),
            )
        })?;
        return Ok(Imported::Lobe(lobe.into_spec()));
    }
    Err(unknown())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_lobechat_market_entry_becomes_a_spec_and_back() {
        let entry = json!({
            "author": "someone",
            "config": {
                "systemRole": "你是一名学术写作助手。",
                "openingMessage": "你好！",
                "openingQuestions": ["如何写摘要？"],
                "params": {"temperature": 0.6}
            },
            "createdAt": "2024-01-24",
            "homepage": "https://example.com",
            "identifier": "academic-writing",
            "meta": {"avatar": "📘", "description": "学术写作", "tags": ["写作", "academic"], "title": "学术写作助手"},
            "schemaVersion": 1
        });
        let Imported::Lobe(spec) = parse(&entry).unwrap() else {
            panic!("a LobeChat entry")
        };
        assert_eq!(spec.name, "学术写作助手");
        assert_eq!(spec.system_prompt, "你是一名学术写作助手。");
        assert_eq!(spec.temperature, Some(0.6));
        assert_eq!(spec.suggested_questions, ["如何写摘要？"]);
        let back = serde_json::to_value(LobeAgent::from_spec("academic-writing", &spec)).unwrap();
        assert_eq!(back["config"]["systemRole"], entry["config"]["systemRole"]);
        assert_eq!(back["meta"]["tags"], entry["meta"]["tags"]);
        assert_eq!(back["config"]["params"]["temperature"], 0.6);
        assert!(parse(&json!({"name": "x"})).is_err());
    }
}
