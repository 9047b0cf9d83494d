//! The profile table: one row of data per OpenAI-compatible vendor, OpenAI and Azure first.
//! Everything a vendor does differently from OpenAI that the relay must know — where it lives, how it
//! switches reasoning on, where it reports reasoning and cached tokens, which tool choices it
//! takes, and what its error codes mean — is a field here, so a new vendor of this family is a
//! new row, not new code.
//!
//! Sources (read 2025-12): each vendor's OpenAI-compatibility and error-code pages, named on
//! its row. Where a vendor documents an error by HTTP status only, the shared status rules of
//! [`crate::vendor::classify`] apply and the row lists no code for it.

use super::{Class, Endpoints, History, Profile, Reasoning, Thinking, ToolChoice};
use crate::channels::ChannelKind;

/// OpenAI, and any OpenAI-compatible API behind OpenAI's paths (vLLM, LiteLLM, one-api, ...):
/// the pivot is its own format, so nothing is rewritten either way. Compatible servers'
/// tokenizers (DeepSeek, Qwen, GLM, ...) differ from o200k by up to about a tenth.
pub static OPENAI: Profile = Profile {
    kind: ChannelKind::OpenAi,
    vendor: "OpenAI",
    default_base_url: Some("https://api.openai.com"),
    endpoints: Endpoints::Paths {
        chat: "/v1/chat/completions",
        models: Some("/v1/models"),
    },
    openai_paths: true,
    pass_through: true,
    thinking: Thinking::AsSent,
    reasoning: Reasoning::Content,
    history: History::Keep,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[],
    safety_permille: 1_100,
};

/// Azure OpenAI: OpenAI's formats at each resource's own URL (so no default), the key in an
/// `api-key` header; its models are OpenAI's own, counted by o200k exactly.
pub static AZURE: Profile = Profile {
    kind: ChannelKind::Azure,
    vendor: "Azure OpenAI",
    default_base_url: None,
    endpoints: Endpoints::Azure,
    openai_paths: false,
    pass_through: true,
    thinking: Thinking::AsSent,
    reasoning: Reasoning::Content,
    history: History::Keep,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[],
    safety_permille: 1_000,
};

/// DeepSeek ("Error Codes", "Reasoning Model", "Thinking Mode" pages of api-docs.deepseek.com):
/// 402 is an empty balance (the shared rules read it), reasoning arrives as
/// `reasoning_content`, and an earlier question's `reasoning_content` must not be sent back.
pub static DEEPSEEK: Profile = Profile {
    kind: ChannelKind::DeepSeek,
    vendor: "DeepSeek",
    default_base_url: Some("https://api.deepseek.com"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::TypeObject,
    reasoning: Reasoning::Content,
    history: History::StripBeforeLastUser,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[],
    safety_permille: 1_100,
};

/// Alibaba Cloud Model Studio (DashScope) in OpenAI-compatible mode ("OpenAI compatible -
/// Chat", "Error messages" pages of help.aliyun.com): `enable_thinking` and `thinking_budget`
/// switch Qwen's reasoning, streamed tool-call pieces after the first carry empty ids.
pub static DASHSCOPE: Profile = Profile {
    kind: ChannelKind::DashScope,
    vendor: "Alibaba DashScope",
    default_base_url: Some("https://dashscope.aliyuncs.com/compatible-mode/v1"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::EnableFlag { budget: true },
    reasoning: Reasoning::Content,
    history: History::Keep,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[
        ("Arrearage", Class::Quota),
        ("AllocationQuota.FreeTierOnly", Class::Quota),
        ("insufficient_quota", Class::Quota),
        ("InvalidApiKey", Class::Auth),
        ("invalid_api_key", Class::Auth),
        ("Throttling*", Class::RateLimit),
        ("limit_requests", Class::RateLimit),
        ("data_inspection_failed", Class::ContentFilter),
        ("DataInspectionFailed", Class::ContentFilter),
    ],
    safety_permille: 1_100,
};

/// Zhipu AI BigModel API v4 ("API 错误码" page of docs.bigmodel.cn): business codes in
/// `error.code` as strings — 1113 (account in arrears) comes with HTTP 429, so the status
/// alone would retry it — `thinking.type` switches GLM's reasoning, and `tool_choice` takes
/// only `auto`.
pub static ZHIPU: Profile = Profile {
    kind: ChannelKind::Zhipu,
    vendor: "Zhipu BigModel",
    default_base_url: Some("https://open.bigmodel.cn/api/paas/v4"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::TypeObject,
    reasoning: Reasoning::Content,
    history: History::Keep,
    tool_choice: ToolChoice::AutoOnly,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[
        ("1000", Class::Auth),
        ("1001", Class::Auth),
        ("1002", Class::Auth),
        ("1003", Class::Auth),
        ("1004", Class::Auth),
        ("1110", Class::Quota),
        ("1111", Class::Quota),
        ("1112", Class::Quota),
        ("1113", Class::Quota),
        ("1121", Class::Quota),
        ("1301", Class::ContentFilter),
        ("1302", Class::RateLimit),
        ("1303", Class::RateLimit),
        ("1304", Class::RateLimit),
        ("1305", Class::RateLimit),
    ],
    safety_permille: 1_100,
};

/// Moonshot AI / Kimi ("错误说明" page of platform.moonshot.cn): errors named by `error.type`;
/// a stream's usage comes inside its last choice and cached prompt tokens as a top-level
/// `usage.cached_tokens`.
pub static MOONSHOT: Profile = Profile {
    kind: ChannelKind::Moonshot,
    vendor: "Moonshot",
    default_base_url: Some("https://api.moonshot.cn/v1"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::ModelSelected,
    reasoning: Reasoning::Content,
    history: History::Keep,
    tool_choice: ToolChoice::Any,
    usage_in_choice: true,
    cached_at_top: true,
    errors_in_ok: false,
    codes: &[
        ("exceeded_current_quota_error", Class::Quota),
        ("invalid_authentication_error", Class::Auth),
        ("incorrect_api_key_error", Class::Auth),
        ("content_filter", Class::ContentFilter),
        ("rate_limit_reached_error", Class::RateLimit),
        ("engine_overloaded_error", Class::RateLimit),
    ],
    safety_permille: 1_100,
};

/// SiliconFlow ("Error handling" page of docs.siliconflow.cn): errors as a top-level
/// `{"code": 30001, "message": ...}`, 30001 and 30011 an empty (paid) balance behind a 403.
pub static SILICONFLOW: Profile = Profile {
    kind: ChannelKind::SiliconFlow,
    vendor: "SiliconFlow",
    default_base_url: Some("https://api.siliconflow.cn/v1"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::EnableFlag { budget: true },
    reasoning: Reasoning::Content,
    history: History::Keep,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[
        ("30001", Class::Quota),
        ("30011", Class::Quota),
        ("50505", Class::RateLimit),
    ],
    safety_permille: 1_100,
};

/// Volcengine Ark / Doubao ("错误码" page of volcengine.com/docs/82379): `error.code` names,
/// AccountOverdueError behind a 403 (an unpaid account, not a bad key), `thinking.type`
/// switches Doubao's reasoning.
pub static VOLCENGINE: Profile = Profile {
    kind: ChannelKind::Volcengine,
    vendor: "Volcengine Ark",
    default_base_url: Some("https://ark.cn-beijing.volces.com/api/v3"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::TypeObject,
    reasoning: Reasoning::Content,
    history: History::Keep,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[
        ("AccountOverdueError", Class::Quota),
        ("QuotaExceeded", Class::Quota),
        ("AuthenticationError", Class::Auth),
        ("RateLimitExceeded*", Class::RateLimit),
        ("ServerOverloaded", Class::RateLimit),
        ("SensitiveContentDetected*", Class::ContentFilter),
        ("InputTextSensitiveContentDetected", Class::ContentFilter),
        ("InputImageSensitiveContentDetected", Class::ContentFilter),
        ("OutputTextSensitiveContentDetected", Class::ContentFilter),
    ],
    safety_permille: 1_100,
};

/// MiniMax ("OpenAI API compatible", "Error codes" pages of platform.minimaxi.com): errors
/// as `base_resp.status_code`, possibly inside a 200; reasoning separated into
/// `reasoning_details` when `reasoning_split` is set (else it is `<think>` text inside
/// `content`); `tool_choice` takes `auto` or `none`.
pub static MINIMAX: Profile = Profile {
    kind: ChannelKind::MiniMax,
    vendor: "MiniMax",
    default_base_url: Some("https://api.minimaxi.com/v1"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::ReasoningSplit,
    reasoning: Reasoning::Details,
    history: History::Details,
    tool_choice: ToolChoice::AutoOrNone,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: true,
    codes: &[
        ("1004", Class::Auth),
        ("2049", Class::Auth),
        ("1008", Class::Quota),
        ("1002", Class::RateLimit),
        ("1039", Class::RateLimit),
        ("1000", Class::Overloaded),
        ("1001", Class::Overloaded),
        ("1024", Class::Overloaded),
        ("1033", Class::Overloaded),
        ("1026", Class::ContentFilter),
        ("1027", Class::ContentFilter),
    ],
    safety_permille: 1_100,
};

/// Tencent Hunyuan's OpenAI-compatible endpoint ("OpenAI 兼容接口", "错误码" pages of
/// cloud.tencent.com/document/product/1729): Tencent Cloud error codes in `error.code`.
pub static HUNYUAN: Profile = Profile {
    kind: ChannelKind::Hunyuan,
    vendor: "Tencent Hunyuan",
    default_base_url: Some("https://api.hunyuan.cloud.tencent.com/v1"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::ModelSelected,
    reasoning: Reasoning::Content,
    history: History::Strip,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[
        ("ResourceInsufficient.ChargeResourceExhaust", Class::Quota),
        ("ResourceUnavailable.InArrears", Class::Quota),
        ("ResourceUnavailable.LowBalance", Class::Quota),
        ("FailedOperation.ServiceStopArrears", Class::Quota),
        ("AuthFailure*", Class::Auth),
        ("LimitExceeded*", Class::RateLimit),
        (
            "FailedOperation.EngineServerLimitExceeded",
            Class::RateLimit,
        ),
    ],
    safety_permille: 1_100,
};

/// Baidu Qianfan API v2 ("错误码" page of cloud.baidu.com/doc/qianfan-api): `error.code`
/// names for rate limits and arrears.
pub static QIANFAN: Profile = Profile {
    kind: ChannelKind::Qianfan,
    vendor: "Baidu Qianfan",
    default_base_url: Some("https://qianfan.baidubce.com/v2"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: Some("/models"),
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::ModelSelected,
    reasoning: Reasoning::Content,
    history: History::Strip,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: false,
    codes: &[
        ("ServiceArrears", Class::Quota),
        ("account_arrears", Class::Quota),
        ("invalid_iam_token", Class::Auth),
        ("IAMCertificationFailed", Class::Auth),
        ("rpm_rate_limit_exceeded", Class::RateLimit),
        ("tpm_rate_limit_exceeded", Class::RateLimit),
        ("qps_rate_limit_exceeded", Class::RateLimit),
        ("ServerHighLoad", Class::RateLimit),
    ],
    safety_permille: 1_100,
};

/// iFlytek Spark's OpenAI-compatible HTTP API ("Spark HTTP 调用文档" of xfyun.cn): numeric
/// codes, in `error.code` or as a top-level `code` beside the answer's fields (0 is success):
/// 10013/10014/10019 content review, 11200 no licence or quota, 11201 the daily quota,
/// 11202/11203 rate and concurrency limits. It has no model list.
pub static SPARK: Profile = Profile {
    kind: ChannelKind::Spark,
    vendor: "iFlytek Spark",
    default_base_url: Some("https://spark-api-open.xf-yun.com/v1"),
    endpoints: Endpoints::Paths {
        chat: "/chat/completions",
        models: None,
    },
    openai_paths: false,
    pass_through: false,
    thinking: Thinking::ModelSelected,
    reasoning: Reasoning::Content,
    history: History::Strip,
    tool_choice: ToolChoice::Any,
    usage_in_choice: false,
    cached_at_top: false,
    errors_in_ok: true,
    codes: &[
        ("11200", Class::Quota),
        ("11201", Class::Quota),
        ("11202", Class::RateLimit),
        ("11203", Class::RateLimit),
        ("10007", Class::RateLimit),
        ("10013", Class::ContentFilter),
        ("10014", Class::ContentFilter),
        ("10019", Class::ContentFilter),
    ],
    safety_permille: 1_100,
};

/// Every profile, for tests and listings.
pub static ALL: [&Profile; 12] = [
    &OPENAI,
    &AZURE,
    &DEEPSEEK,
    &DASHSCOPE,
    &ZHIPU,
    &MOONSHOT,
    &SILICONFLOW,
    &VOLCENGINE,
    &MINIMAX,
    &HUNYUAN,
    &QIANFAN,
    &SPARK,
];
