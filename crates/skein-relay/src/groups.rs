//! Which price groups each user may put API keys in. Groups carry price multipliers, so an
//! admin grants them (per user, or `relay.default_user_groups` for anyone not set); key create,
//! update and every authenticated request check the grant.

use skein_db::sqlx;
use skein_db::{Db, DbResult};

/// A user's own list as an admin set it; `None` when never set (the default applies).
pub async fn stored(db: &Db, user_id: &str) -> DbResult<Option<Vec<String>>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT groups_list FROM relay_user_groups WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    // A list that no longer parses grants nothing rather than everything.
    Ok(row.map(|(list,)| serde_json::from_str(&list).unwrap_or_default()))
}

/// Sets a user's list, or with `None` returns the user to the default.
pub async fn set(db: &Db, user_id: &str, groups: Option<&[String]>, now: i64) -> DbResult<()> {
    match groups {
        Some(groups) => {
            let list = serde_json::to_string(groups).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "INSERT INTO relay_user_groups (user_id, groups_list, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET groups_list = $2, updated_at = $3",
            )
            .bind(user_id)
            .bind(list)
            .bind(now)
            .execute(db.pool())
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM relay_user_groups WHERE user_id = $1")
                .bind(user_id)
                .execute(db.pool())
                .await?;
        }
    }
    Ok(())
}

/// The groups in effect: `granted` (or `default` when none was set) restricted to the
/// configured groups, in configuration order, so a group removed from the configuration drops
/// out of every grant.
pub fn effective(
    configured: &[String],
    granted: Option<&[String]>,
    default: &[String],
) -> Vec<String> {
    let granted = granted.unwrap_or(default);
    configured
        .iter()
        .filter(|g| granted.contains(g))
        .cloned()
        .collect()
}

/// The groups in effect with a user's plans: the plans' groups that are configured, first,
/// then `granted` without repeats.
pub fn with_plans(configured: &[String], plans: &[String], granted: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = plans
        .iter()
        .filter(|g| configured.contains(g))
        .cloned()
        .collect();
    for g in granted {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// A requested per-minute limit, clamped to the server's ceiling (`None` when there is none).
/// Clamping rather than refusing: a key asking for more than the server allows gets the most
/// the server allows, which is what its owner wanted.
pub fn clamp(requested: Option<i64>, ceiling: Option<u32>) -> Option<i64> {
    match (requested, ceiling) {
        (Some(v), Some(max)) => Some(v.min(i64::from(max))),
        (v, _) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grants_follow_the_configuration() {
        let configured = v(&["default", "vip", "cheap"]);
        let default = v(&["default"]);
        assert_eq!(effective(&configured, None, &default), v(&["default"]));
        assert_eq!(
            effective(&configured, Some(&v(&["cheap", "vip"])), &default),
            v(&["vip", "cheap"])
        );
        assert_eq!(
            effective(&configured, Some(&v(&["gone"])), &default),
            Vec::<String>::new()
        );
        assert_eq!(
            effective(&configured, Some(&[]), &default),
            Vec::<String>::new()
        );
    }

    #[test]
    fn plan_groups_come_first_and_only_when_configured() {
        let configured = v(&["default", "vip", "pro"]);
        assert_eq!(
            with_plans(&configured, &v(&["pro", "gone"]), v(&["default", "pro"])),
            v(&["pro", "default"])
        );
        assert_eq!(
            with_plans(&configured, &[], v(&["default"])),
            v(&["default"])
        );
    }

    #[test]
    fn limits_are_clamped_to_the_ceiling() {
        assert_eq!(clamp(Some(10_000), Some(6_000)), Some(6_000));
        assert_eq!(clamp(Some(10), Some(6_000)), Some(10));
        assert_eq!(clamp(None, Some(6_000)), None);
        assert_eq!(clamp(Some(10_000), None), Some(10_000));
    }
}
