//! A channel's kind: the upstream wire format it speaks, as an enum the compiler checks, and
//! as stored (where a kind this build does not know stays readable).

use serde::{Deserialize, Serialize};
use skein_db::sqlx;
use utoipa::ToSchema;

/// The upstream wire format a channel speaks, stored and sent as its lower-case name.
// One variant per vendor module; `crate::vendor::adapter` is the one match that wires a variant
// to its adapter (this doc comment is the API's schema description, so it names no code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// OpenAI, or any OpenAI-compatible API (DeepSeek, Qwen, Moonshot, vLLM, Ollama, ...).
    #[serde(rename = "openai")]
    OpenAi,
    /// Azure OpenAI: OpenAI's wire format behind per-resource URLs and an `api-key` header.
    Azure,
    /// Anthropic Messages.
    Anthropic,
    /// Google's Gemini API (`generativelanguage`).
    Gemini,
    /// DeepSeek (OpenAI-compatible; `reasoning_content`, 402 when the balance is spent).
    #[serde(rename = "deepseek")]
    DeepSeek,
    /// Alibaba Cloud Model Studio / DashScope, Qwen models, in OpenAI-compatible mode.
    #[serde(rename = "dashscope")]
    DashScope,
    /// Zhipu AI BigModel (GLM), API v4.
    Zhipu,
    /// Moonshot AI (Kimi).
    Moonshot,
    /// SiliconFlow (SiliconCloud).
    #[serde(rename = "siliconflow")]
    SiliconFlow,
    /// ByteDance Volcengine Ark (Doubao).
    Volcengine,
    /// MiniMax.
    #[serde(rename = "minimax")]
    MiniMax,
    /// Tencent Hunyuan, OpenAI-compatible endpoint.
    Hunyuan,
    /// Baidu Qianfan (ERNIE), API v2.
    Qianfan,
    /// iFlytek Spark, OpenAI-compatible HTTP API.
    Spark,
    /// Ollama's native API (`/api/chat`, `/api/tags`).
    Ollama,
    /// Alibaba Cloud Model Studio's native DashScope API for Qwen text generation
    /// (`/api/v1/services/aigc/text-generation/generation`).
    #[serde(rename = "dashscope_native")]
    DashScopeNative,
}

impl ChannelKind {
    /// Every kind, in the order error messages list them.
    pub const ALL: [ChannelKind; 16] = [
        ChannelKind::OpenAi,
        ChannelKind::Azure,
        ChannelKind::Anthropic,
        ChannelKind::Gemini,
        ChannelKind::DeepSeek,
        ChannelKind::DashScope,
        ChannelKind::Zhipu,
        ChannelKind::Moonshot,
        ChannelKind::SiliconFlow,
        ChannelKind::Volcengine,
        ChannelKind::MiniMax,
        ChannelKind::Hunyuan,
        ChannelKind::Qianfan,
        ChannelKind::Spark,
        ChannelKind::Ollama,
        ChannelKind::DashScopeNative,
    ];

    /// The name stored in `channels.kind` and shown in the API (`type`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::OpenAi => "openai",
            ChannelKind::Azure => "azure",
            ChannelKind::Anthropic => "anthropic",
            ChannelKind::Gemini => "gemini",
            ChannelKind::DeepSeek => "deepseek",
            ChannelKind::DashScope => "dashscope",
            ChannelKind::Zhipu => "zhipu",
            ChannelKind::Moonshot => "moonshot",
            ChannelKind::SiliconFlow => "siliconflow",
            ChannelKind::Volcengine => "volcengine",
            ChannelKind::MiniMax => "minimax",
            ChannelKind::Hunyuan => "hunyuan",
            ChannelKind::Qianfan => "qianfan",
            ChannelKind::Spark => "spark",
            ChannelKind::Ollama => "ollama",
            ChannelKind::DashScopeNative => "dashscope_native",
        }
    }

    /// Every kind's name, for messages that list them.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.as_str()).collect()
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name this build does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl std::fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown channel kind `{}` (this version knows {})",
            self.0,
            ChannelKind::names().join(", ")
        )
    }
}

impl std::error::Error for UnknownKind {}

impl std::str::FromStr for ChannelKind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ChannelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| UnknownKind(name.to_string()))
    }
}

impl sqlx::Type<sqlx::Any> for ChannelKind {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <&str as sqlx::Type<sqlx::Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Any>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for ChannelKind {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<'q, sqlx::Any>>::encode(self.as_str(), buf)
    }
}

/// Strict: a kind this build does not know is a decode error that names it. Rows of
/// `channels` read the column as a [`StoredKind`] instead, so one such row cannot fail every
/// read of the table.
impl<'r> sqlx::Decode<'r, sqlx::Any> for ChannelKind {
    fn decode(
        value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let name = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
        Ok(name.parse::<ChannelKind>()?)
    }
}

/// A `channels.kind` value as read: a kind this build knows, or the name of one it does not
/// (a channel written by a newer version). Such a channel is skipped by routing and shown to
/// admins as disabled, with the reason, instead of failing every read of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredKind {
    /// A kind with an adapter.
    Known(ChannelKind),
    /// A name with no adapter in this build.
    Unknown(String),
}

impl StoredKind {
    /// The stored name.
    pub fn as_str(&self) -> &str {
        match self {
            StoredKind::Known(kind) => kind.as_str(),
            StoredKind::Unknown(name) => name,
        }
    }

    /// The kind, or why this build cannot use it.
    pub fn known(&self) -> Result<ChannelKind, UnknownKind> {
        match self {
            StoredKind::Known(kind) => Ok(*kind),
            StoredKind::Unknown(name) => Err(UnknownKind(name.clone())),
        }
    }
}

impl From<String> for StoredKind {
    fn from(name: String) -> Self {
        match name.parse() {
            Ok(kind) => StoredKind::Known(kind),
            Err(UnknownKind(name)) => StoredKind::Unknown(name),
        }
    }
}

impl From<ChannelKind> for StoredKind {
    fn from(kind: ChannelKind) -> Self {
        StoredKind::Known(kind)
    }
}

/// Written as the stored name, so a known kind reads exactly as [`ChannelKind`] does.
impl Serialize for StoredKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_and_write_their_names() {
        for kind in ChannelKind::ALL {
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ChannelKind>(&json).ok(), Some(kind));
            assert_eq!(kind.as_str().parse::<ChannelKind>(), Ok(kind));
            let stored = StoredKind::from(kind.as_str().to_string());
            assert_eq!(stored, StoredKind::Known(kind));
            assert_eq!(serde_json::to_string(&stored).unwrap_or_default(), json);
        }
        assert!(serde_json::from_str::<ChannelKind>("\"open_ai\"").is_err());
        let unknown = "baichuan".parse::<ChannelKind>().err();
        assert_eq!(
            unknown.map(|e| e.to_string()).as_deref(),
            Some(
                "unknown channel kind `baichuan` (this version knows openai, azure, anthropic, gemini, deepseek, dashscope, zhipu, moonshot, siliconflow, volcengine, minimax, hunyuan, qianfan, spark, ollama, dashscope_native)"
            )
        );
    }

    #[tokio::test]
    async fn kinds_round_trip_through_the_database_as_text() {
        let db = skein_db::Db::connect("sqlite::memory:", 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for kind in ChannelKind::ALL {
            let (text, back): (String, ChannelKind) = sqlx::query_as("SELECT $1, $2")
                .bind(kind)
                .bind(kind)
                .fetch_one(db.pool())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((text.as_str(), back), (kind.as_str(), kind));
        }
        let unknown = sqlx::query_as::<_, (ChannelKind,)>("SELECT 'baichuan'")
            .fetch_one(db.pool())
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            unknown.contains("unknown channel kind `baichuan`"),
            "{unknown}"
        );
    }
}
