//! What an assistant is made of ([`AgentSpec`]): the draft and every published version have
//! this shape. Input is parsed once here against the limits; after [`AgentSpec::validate`] the
//! spec is known to fit, and errors name the field in English and Chinese.

use serde::{Deserialize, Serialize};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

/// Longest name, in characters.
pub const MAX_NAME: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 1_000;
/// Most tags, and longest tag.
pub const MAX_TAGS: usize = 10;
/// Longest tag.
pub const MAX_TAG: usize = 32;
/// Longest system prompt.
pub const MAX_PROMPT: usize = 20_000;
/// Longest opening message.
pub const MAX_OPENING: usize = 2_000;
/// Most suggested questions.
pub const MAX_QUESTIONS: usize = 8;
/// Longest suggested question.
pub const MAX_QUESTION: usize = 200;
/// Most bound knowledge bases, and most bound plugins.
pub const MAX_BINDINGS: usize = 20;
/// Longest avatar (an emoji or an `https:` URL).
pub const MAX_AVATAR: usize = 512;
/// Longest model name.
pub const MAX_MODEL: usize = 128;
/// How an avatar names an uploaded image: `file:<id>` (the owner's file, checked on save).
pub const AVATAR_FILE: &str = "file:";
/// Longest changelog.
pub const MAX_CHANGELOG: usize = 2_000;

/// An assistant's content: the draft, and each version (frozen at publish).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct AgentSpec {
    /// Its name (1–64 characters).
    pub name: String,
    /// An emoji or an `https:` image URL.
    pub avatar: String,
    /// What it does (up to 1,000 characters).
    pub description: String,
    /// Up to 10 tags of up to 32 characters.
    pub tags: Vec<String>,
    /// A market category id.
    pub category: Option<String>,
    /// The system prompt (up to 20,000 characters).
    pub system_prompt: String,
    /// The model; none for the user's default.
    pub model: Option<String>,
    /// Sampling temperature, 0–2.
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0–1.
    pub top_p: Option<f64>,
    /// Longest answer in tokens, 1–200,000.
    pub max_tokens: Option<i64>,
    /// Whether users may pick another model for its conversations.
    pub allow_model_override: bool,
    /// The message it opens with (up to 2,000 characters).
    pub opening_message: String,
    /// Up to 8 questions offered to start with.
    pub suggested_questions: Vec<String>,
    /// Bound knowledge bases (checked by the Knowledge service when it runs).
    pub knowledge_base_ids: Vec<String>,
    /// Bound plugins (checked by the Plugin service when it runs).
    pub plugin_ids: Vec<String>,
}

/// A change to the draft: every field is optional; what is given replaces what was.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecPatch {
    /// Name.
    pub name: Option<String>,
    /// Avatar.
    pub avatar: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Category id; an empty string clears it.
    pub category: Option<String>,
    /// System prompt.
    pub system_prompt: Option<String>,
    /// Model; an empty string clears it.
    pub model: Option<String>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Top-p.
    pub top_p: Option<f64>,
    /// Max tokens.
    pub max_tokens: Option<i64>,
    /// Allow model override.
    pub allow_model_override: Option<bool>,
    /// Opening message.
    pub opening_message: Option<String>,
    /// Suggested questions.
    pub suggested_questions: Option<Vec<String>>,
    /// Knowledge base ids.
    pub knowledge_base_ids: Option<Vec<String>>,
    /// Plugin ids.
    pub plugin_ids: Option<Vec<String>>,
    /// `private`, `link` or `public`.
    pub visibility: Option<String>,
}

impl SpecPatch {
    /// Applies the patch to `spec` (validation follows separately).
    pub fn apply(self, spec: &mut AgentSpec) {
        let blank_none = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(v) = self.name {
            spec.name = v.trim().to_string();
        }
        if let Some(v) = self.avatar {
            spec.avatar = v.trim().to_string();
        }
        if let Some(v) = self.description {
            spec.description = v;
        }
        if let Some(v) = self.tags {
            spec.tags = v;
        }
        if let Some(v) = self.category {
            spec.category = blank_none(v);
        }
        if let Some(v) = self.system_prompt {
            spec.system_prompt = v;
        }
        if let Some(v) = self.model {
            spec.model = blank_none(v);
        }
        if self.temperature.is_some() {
            spec.temperature = self.temperature;
        }
        if self.top_p.is_some() {
            spec.top_p = self.top_p;
        }
        if self.max_tokens.is_some() {
            spec.max_tokens = self.max_tokens;
        }
        if let Some(v) = self.allow_model_override {
            spec.allow_model_override = v;
        }
        if let Some(v) = self.opening_message {
            spec.opening_message = v;
        }
        if let Some(v) = self.suggested_questions {
            spec.suggested_questions = v;
        }
        if let Some(v) = self.knowledge_base_ids {
            spec.knowledge_base_ids = v;
        }
        if let Some(v) = self.plugin_ids {
            spec.plugin_ids = v;
        }
    }
}

/// Who may see an assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only its owner.
    Private,
    /// Anyone with its link (its id); not in the market.
    Link,
    /// Everyone; listed in the market once published.
    Public,
}

impl Visibility {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Link => "link",
            Visibility::Public => "public",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(text: &str) -> ApiResult<Visibility> {
        match text {
            "private" => Ok(Visibility::Private),
            "link" => Ok(Visibility::Link),
            "public" => Ok(Visibility::Public),
            _ => Err(ApiError::invalid_field(
                "visibility",
                "visibility is private, link or public.",
                "visibility 须为 private、link 或 public。",
            )),
        }
    }
}

fn too_long(field: &str, max: usize, en_what: &str, zh_what: &str) -> ApiError {
    ApiError::invalid_field(
        field,
        format!("The {en_what} is longer than {max} characters."),
        format!("{zh_what}超过 {max} 个字符。"),
    )
}

fn check_len(value: &str, field: &str, max: usize, en: &str, zh: &str) -> ApiResult<()> {
    if value.chars().count() > max {
        return Err(too_long(field, max, en, zh));
    }
    Ok(())
}

fn check_list(
    items: &[String],
    field: &str,
    max_items: usize,
    max_len: usize,
    en: &str,
    zh: &str,
) -> ApiResult<()> {
    if items.len() > max_items {
        return Err(ApiError::invalid_field(
            field,
            format!("At most {max_items} {en} are allowed."),
            format!("{zh}最多 {max_items} 个。"),
        ));
    }
    for item in items {
        if item.trim().is_empty() {
            return Err(ApiError::invalid_field(
                field,
                format!("The {en} may not be empty."),
                format!("{zh}不能为空。"),
            ));
        }
        if item.chars().count() > max_len {
            return Err(ApiError::invalid_field(
                field,
                format!("Each of the {en} has at most {max_len} characters."),
                format!("每个{zh}最多 {max_len} 个字符。"),
            ));
        }
    }
    Ok(())
}

impl AgentSpec {
    /// Checks every field against its limit; the first that does not fit is the error.
    pub fn validate(&self) -> ApiResult<()> {
        if self.name.trim().is_empty() {
            return Err(ApiError::invalid_field(
                "name",
                "An assistant needs a name.",
                "助手需要一个名称。",
            ));
        }
        check_len(&self.name, "name", MAX_NAME, "name", "名称")?;
        check_len(&self.avatar, "avatar", MAX_AVATAR, "avatar", "头像")?;
        let file_id = self.avatar.strip_prefix(AVATAR_FILE);
        if (self.avatar.contains("://") && !self.avatar.starts_with("https://"))
            || file_id.is_some_and(|id| {
                id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            return Err(ApiError::invalid_field(
                "avatar",
                "An avatar is an emoji, an https:// image URL or an uploaded image (file:<id>).",
                "头像须为表情符号、https:// 图片地址或已上传的图片（file:<id>）。",
            ));
        }
        check_len(
            &self.description,
            "description",
            MAX_DESCRIPTION,
            "description",
            "描述",
        )?;
        check_list(&self.tags, "tags", MAX_TAGS, MAX_TAG, "tags", "标签")?;
        if let Some(category) = &self.category {
            check_len(category, "category", 64, "category", "分类")?;
        }
        check_len(
            &self.system_prompt,
            "system_prompt",
            MAX_PROMPT,
            "system prompt",
            "系统提示词",
        )?;
        if let Some(model) = &self.model {
            check_len(model, "model", MAX_MODEL, "model name", "模型名称")?;
        }
        if self
            .temperature
            .is_some_and(|t| !(0.0..=2.0).contains(&t) || t.is_nan())
        {
            return Err(ApiError::invalid_field(
                "temperature",
                "temperature is between 0 and 2.",
                "temperature 须在 0 到 2 之间。",
            ));
        }
        if self
            .top_p
            .is_some_and(|t| !(0.0..=1.0).contains(&t) || t.is_nan())
        {
            return Err(ApiError::invalid_field(
                "top_p",
                "top_p is between 0 and 1.",
                "top_p 须在 0 到 1 之间。",
            ));
        }
        if self.max_tokens.is_some_and(|n| !(1..=200_000).contains(&n)) {
            return Err(ApiError::invalid_field(
                "max_tokens",
                "max_tokens is between 1 and 200,000.",
                "max_tokens 须在 1 到 200,000 之间。",
            ));
        }
        check_len(
            &self.opening_message,
            "opening_message",
            MAX_OPENING,
            "opening message",
            "开场白",
        )?;
        check_list(
            &self.suggested_questions,
            "suggested_questions",
            MAX_QUESTIONS,
            MAX_QUESTION,
            "suggested questions",
            "推荐问题",
        )?;
        check_list(
            &self.knowledge_base_ids,
            "knowledge_base_ids",
            MAX_BINDINGS,
            64,
            "knowledge base ids",
            "知识库 ID",
        )?;
        check_list(
            &self.plugin_ids,
            "plugin_ids",
            MAX_BINDINGS,
            64,
            "plugin ids",
            "插件 ID",
        )?;
        Ok(())
    }

    /// Tags trimmed, without duplicates, in their order.
    pub fn normalise(&mut self) {
        let mut seen = Vec::new();
        for tag in self.tags.drain(..) {
            let tag = tag.trim().to_string();
            if !tag.is_empty() && !seen.contains(&tag) {
                seen.push(tag);
            }
        }
        self.tags = seen;
        self.name = self.name.trim().to_string();
    }

    /// What market search looks in: name, description and tags, lower-cased.
    pub fn search_text(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.name,
            self.description,
            self.tags.join(" ")
        )
        .to_lowercase()
    }
}

/// Checks a changelog's length.
pub fn check_changelog(text: &str) -> ApiResult<()> {
    check_len(text, "changelog", MAX_CHANGELOG, "changelog", "更新说明")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AgentSpec {
        AgentSpec {
            name: "Translator".into(),
            ..AgentSpec::default()
        }
    }

    #[test]
    fn limits_name_the_field_in_both_languages() {
        assert!(spec().validate().is_ok());
        let mut s = spec();
        s.system_prompt = "x".repeat(MAX_PROMPT + 1);
        let e = s.validate().unwrap_err();
        assert_eq!(e.details().unwrap()["field"], "system_prompt");
        assert!(e.message(skein_core::i18n::Lang::Zh).contains("系统提示词"));
        let mut s = spec();
        s.tags = vec!["a".into(); MAX_TAGS + 1];
        assert!(s.validate().is_err());
        let mut s = spec();
        s.temperature = Some(f64::NAN);
        assert!(s.validate().is_err());
        let mut s = spec();
        s.name = "  ".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.avatar = "http://insecure/x.png".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn a_patch_replaces_only_what_it_names() {
        let mut s = spec();
        s.model = Some("gpt-test".into());
        SpecPatch {
            system_prompt: Some("be kind".into()),
            model: Some(String::new()),
            ..SpecPatch::default()
        }
        .apply(&mut s);
        assert_eq!(s.name, "Translator");
        assert_eq!(s.system_prompt, "be kind");
        assert_eq!(s.model, None);
    }
}
