//! Parsing of what people type: each function accepts raw input once and answers the
//! normalised value or a 422 that names the field.

use serde_json::json;
use skein_core::i18n::Lang;
use skein_core::{ApiError, ApiResult};

/// One 422 for every field that failed, so a form shows them all at once: the first error
/// as usual (`details.field` names its field) and `details.errors` listing each failed
/// field with its message in `lang`.
pub fn all(errors: Vec<ApiError>, lang: Lang) -> ApiResult<()> {
    let listed: Vec<_> = errors
        .iter()
        .map(|e| {
            json!({
                "field": e.details().and_then(|d| d.get("field")).cloned(),
                "message": e.message(lang),
            })
        })
        .collect();
    match errors.into_iter().next() {
        None => Ok(()),
        Some(first) => {
            let field = first.details().and_then(|d| d.get("field")).cloned();
            Err(first.with_details(json!({ "field": field, "errors": listed })))
        }
    }
}

/// Shortest password accepted.
pub const PASSWORD_MIN: usize = 8;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const PASSWORD_MAX: usize = 128;

/// A lower-cased email address of plausible shape.
pub fn email(raw: &str) -> ApiResult<String> {
    let email = raw.trim().to_lowercase();
    let bad = || {
        ApiError::invalid_field(
            "email",
            "The email address is not valid.",
            "邮箱地址格式不正确。",
        )
    };
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.len() < 3
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(email)
}

/// A username: 3 to 32 letters (any script), digits, `_`, `.` or `-`.
pub fn username(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    let count = name.chars().count();
    if !(3..=32).contains(&count) {
        return Err(ApiError::invalid_field(
            "username",
            "The username must be 3 to 32 characters long.",
            "用户名长度必须为 3 到 32 个字符。",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ApiError::invalid_field(
            "username",
            "The username may contain only letters, digits, '_', '.' and '-'.",
            "用户名只能包含字母、数字、“_”、“.”和“-”。",
        ));
    }
    Ok(name.to_string())
}

/// A new password: 8 to 128 characters, not only spaces.
pub fn password(raw: &str, field: &str) -> ApiResult<()> {
    let count = raw.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&count) || raw.trim().is_empty() {
        return Err(ApiError::invalid_field(
            field,
            format!("The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long."),
            format!("密码长度必须为 {PASSWORD_MIN} 到 {PASSWORD_MAX} 个字符。"),
        ));
    }
    Ok(())
}

/// A display name: 1 to 64 characters, no control characters.
pub fn display_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    let count = name.chars().count();
    if !(1..=64).contains(&count) || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "display_name",
            "The display name must be 1 to 64 characters without control characters.",
            "显示名称必须为 1 到 64 个字符，且不能包含控制字符。",
        ));
    }
    Ok(name.to_string())
}

/// An avatar URL: `http(s)://`, at most 2048 characters, no spaces.
pub fn avatar_url(raw: &str) -> ApiResult<String> {
    let url = raw.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ApiError::invalid_field(
            "avatar_url",
            "The avatar URL must be an http(s) URL of at most 2048 characters.",
            "头像地址必须是不超过 2048 个字符的 http(s) 链接。",
        ));
    }
    Ok(url.to_string())
}

/// A UI language: `en` or `zh-CN`.
pub fn language(raw: &str) -> ApiResult<String> {
    match raw {
        "en" | "zh-CN" => Ok(raw.to_string()),
        _ => Err(ApiError::invalid_field(
            "language",
            "The language must be \"en\" or \"zh-CN\".",
            "语言必须是 \"en\" 或 \"zh-CN\"。",
        )),
    }
}

/// A UI theme: `system`, `light` or `dark`.
pub fn theme(raw: &str) -> ApiResult<String> {
    match raw {
        "system" | "light" | "dark" => Ok(raw.to_string()),
        _ => Err(ApiError::invalid_field(
            "theme",
            "The theme must be \"system\", \"light\" or \"dark\".",
            "主题必须是 \"system\"、\"light\" 或 \"dark\"。",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email("  Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.io",
            "a@b",
            "a@@b.io",
            "a b@c.io",
            "a@.io",
            "a@b..io",
            "x@y.io'; DROP TABLE users;--",
        ] {
            assert!(email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn usernames() {
        assert!(username("ada_l.ove-1").is_ok());
        assert!(username("张三丰").is_ok());
        for bad in [
            "ab",
            "a b c",
            "robert'); DROP TABLE users;--",
            "x@y",
            &"a".repeat(33),
        ] {
            assert!(username(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn passwords_and_profile_fields() {
        assert!(password("correct horse", "password").is_ok());
        assert!(password("short", "password").is_err());
        assert!(password("        ", "password").is_err());
        assert!(password(&"x".repeat(129), "password").is_err());
        assert!(display_name(&"名".repeat(64)).is_ok());
        assert!(display_name(&"名".repeat(65)).is_err());
        assert!(display_name("a\u{0007}b").is_err());
        assert!(avatar_url("https://cdn.example.com/a.png").is_ok());
        assert!(avatar_url("javascript:alert(1)").is_err());
        assert!(language("zh-CN").is_ok() && language("fr").is_err());
        assert!(theme("dark").is_ok() && theme("neon").is_err());
    }
}
