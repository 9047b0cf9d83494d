//! Checks of the fields an administrator gives a channel, shared by the admin API
//! (`http::channels`) and declared channels (`declared`): each returns the value as stored,
//! or a 422 naming the field, in English and Chinese. Its own module so `declared` does not
//! reach into `http`, which serves `declared`.

use std::collections::BTreeMap;

use skein_core::{ApiError, ApiResult};

use crate::RelayService;
use crate::channels::{ChannelKind, ChannelStatus};

/// A low-balance threshold: 0 (or none) is no threshold.
pub(crate) fn threshold(raw: Option<f64>) -> ApiResult<Option<f64>> {
    match raw {
        None => Ok(None),
        Some(0.0) => Ok(None),
        Some(t) if t.is_finite() && t > 0.0 && t <= 1e9 => Ok(Some(t)),
        Some(_) => Err(ApiError::invalid_field(
            "low_balance_threshold",
            "The low-balance threshold must be a positive amount (0 turns it off).",
            "低余额阈值必须是正数（0 表示关闭）。",
        )),
    }
}

/// The channel's `type`, one of the kinds this build knows.
pub(crate) fn kind(raw: &str) -> ApiResult<ChannelKind> {
    raw.parse().map_err(|_| {
        let names = ChannelKind::names();
        ApiError::invalid_field(
            "type",
            format!("type must be one of {}.", names.join(", ")),
            format!("type 必须是 {} 之一。", names.join("、")),
        )
    })
}

/// The channel's label: 1–64 characters, no control characters.
pub(crate) fn name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    if (1..=64).contains(&name.chars().count()) && !name.chars().any(char::is_control) {
        Ok(name.to_string())
    } else {
        Err(ApiError::invalid_field(
            "name",
            "Name the channel (1–64 characters).",
            "请为渠道命名（1–64 个字符）。",
        ))
    }
}

/// The upstream base URL, or the kind's default when none is given; http(s) only.
pub(crate) fn base_url(kind: ChannelKind, raw: Option<&str>) -> ApiResult<String> {
    let url = match raw.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => url,
        None => crate::vendor::adapter(kind)
            .default_base_url()
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "base_url",
                    "This type needs a base_url.",
                    "该类型需要填写 base_url。",
                )
            })?,
    };
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.contains(char::is_whitespace);
    if !ok {
        return Err(ApiError::invalid_field(
            "base_url",
            "base_url must be an http(s) URL.",
            "base_url 必须是 http(s) 地址。",
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The upstream keys, trimmed: 1 to 100, each at most 1 KB.
pub(crate) fn upstream_keys(keys: Vec<String>) -> ApiResult<Vec<String>> {
    let keys: Vec<String> = keys
        .into_iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty()
        || keys.len() > 100
        || keys
            .iter()
            .any(|k| k.len() > 1024 || k.contains(char::is_control))
    {
        return Err(ApiError::invalid_field(
            "keys",
            "Give 1 to 100 upstream keys.",
            "请提供 1 到 100 个上游密钥。",
        ));
    }
    Ok(keys)
}

/// Extra headers sent upstream: at most 32, each a valid HTTP name and value.
pub(crate) fn headers(h: BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    let valid = h.len() <= 32
        && h.iter().all(|(k, v)| {
            axum::http::HeaderName::from_bytes(k.as_bytes()).is_ok()
                && axum::http::HeaderValue::from_str(v).is_ok()
        });
    if valid {
        Ok(h)
    } else {
        Err(ApiError::invalid_field(
            "headers",
            "Header names or values are not valid HTTP.",
            "请求头名称或取值不合法。",
        ))
    }
}

/// The models a channel serves: 1 to 500 names, sorted and without repeats.
pub(crate) fn models(list: Vec<String>) -> ApiResult<Vec<String>> {
    let mut list: Vec<String> = list.into_iter().map(|m| m.trim().to_string()).collect();
    if list.is_empty() || list.len() > 500 || list.iter().any(|m| m.is_empty() || m.len() > 128) {
        return Err(ApiError::invalid_field(
            "models",
            "List 1 to 500 model names.",
            "请列出 1 到 500 个模型名称。",
        ));
    }
    list.sort();
    list.dedup();
    Ok(list)
}

/// Checks parameter overrides: a few plain fields, never the ones the relay itself manages.
pub(crate) fn overrides(
    o: serde_json::Map<String, serde_json::Value>,
) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    const MANAGED: &[&str] = &["model", "messages", "stream", "stream_options"];
    if let Some(key) = o.keys().find(|k| MANAGED.contains(&k.as_str())) {
        return Err(ApiError::invalid_field(
            "param_overrides",
            format!("{key} cannot be overridden: the relay sets it."),
            format!("{key} 不能被覆盖：它由中转服务设置。"),
        ));
    }
    if o.len() > 32 || serde_json::Value::Object(o.clone()).to_string().len() > 16 * 1024 {
        return Err(ApiError::invalid_field(
            "param_overrides",
            "At most 32 overrides and 16 KB.",
            "最多 32 项覆盖参数，总计不超过 16 KB。",
        ));
    }
    Ok(o)
}

/// Client model name → upstream model name: at most 500 pairs.
pub(crate) fn mapping(m: BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    if m.len() > 500
        || m.iter()
            .any(|(k, v)| k.is_empty() || v.is_empty() || k.len() > 128 || v.len() > 128)
    {
        return Err(ApiError::invalid_field(
            "model_mapping",
            "Map model names to model names.",
            "请将模型名称映射到模型名称。",
        ));
    }
    Ok(m)
}

/// The groups a channel serves, each one the relay knows.
pub(crate) fn groups(svc: &RelayService, list: Vec<String>) -> ApiResult<Vec<String>> {
    if list.is_empty() || list.iter().any(|g| !svc.groups.contains(g)) {
        return Err(ApiError::invalid_field(
            "groups",
            format!("groups must be some of: {}.", svc.groups.join(", ")),
            format!("groups 必须取自：{}。", svc.groups.join("、")),
        ));
    }
    Ok(list)
}

/// A whole number `field` between `min` and `max` inclusive.
pub(crate) fn bounded(field: &str, value: i64, min: i64, max: i64) -> ApiResult<i64> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid_field(
            field,
            format!("{field} must be {min} to {max}."),
            format!("{field} 必须在 {min} 到 {max} 之间。"),
        ))
    }
}

/// The status an administrator may set: `enabled` or `disabled`.
pub(crate) fn status(raw: &str) -> ApiResult<ChannelStatus> {
    match ChannelStatus::parse(raw) {
        Some(s @ (ChannelStatus::Enabled | ChannelStatus::Disabled)) => Ok(s),
        _ => Err(ApiError::invalid_field(
            "status",
            "status must be enabled or disabled.",
            "状态必须是 enabled 或 disabled。",
        )),
    }
}
