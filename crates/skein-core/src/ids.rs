//! Identifiers that sort by creation time, and the clock.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A new time-ordered (UUID v7) identifier in its canonical hyphenated form.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Milliseconds since the Unix epoch, UTC. Stored times are always this unit.
pub fn now_ms() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// Renders a stored millisecond timestamp as RFC 3339 (what the API answers).
pub fn ms_to_rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp from the API into stored milliseconds.
pub fn rfc3339_to_ms(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// An optional expiry from the API: absent is `None`; present must be a future RFC 3339 time,
/// else a 422 naming `expires_at`.
pub fn future_expiry(text: Option<&str>, now_ms: i64) -> crate::ApiResult<Option<i64>> {
    match text {
        None => Ok(None),
        Some(text) => match rfc3339_to_ms(text) {
            Some(ms) if ms > now_ms => Ok(Some(ms)),
            _ => Err(crate::ApiError::invalid_field(
                "expires_at",
                "expires_at must be a future RFC 3339 time.",
                "过期时间必须是未来的 RFC 3339 时间。",
            )),
        },
    }
}

/// Whether a string has the shape of an id this crate hands out; lets handlers answer 404
/// for garbage without a database round trip.
pub fn looks_like_id(text: &str) -> bool {
    uuid::Uuid::try_parse(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(a < b, "{a} should sort before {b}");
        assert!(looks_like_id(&a));
        assert!(!looks_like_id("1 OR 1=1"));
    }

    #[test]
    fn rfc3339_round_trip() {
        let ms = 1_764_000_000_123;
        let text = ms_to_rfc3339(ms);
        assert_eq!(text, "2025-11-24T16:00:00.123Z");
        assert_eq!(rfc3339_to_ms(&text), Some(ms));
        assert_eq!(rfc3339_to_ms("yesterday"), None);
    }
}
