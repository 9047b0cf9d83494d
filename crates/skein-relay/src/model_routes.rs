//! Model aliases and fallbacks: storage (`relay_model_routes`) and the in-memory table the
//! hot path reads, rebuilt with the channels on every change (and on the bus's notes).
//!
//! An alias serves one public name as another model: its channels, its price, and its name
//! on usage records (the record says which model served). A fallback list names the models
//! tried, in order, each at its own price, once every channel of a model failed; a refusal
//! of the request itself (the upstream's 4xx) never falls back.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use skein_core::ids::ms_to_rfc3339;
use skein_db::{Db, DbResult};
use utoipa::ToSchema;

/// Most fallbacks one model may list.
pub const MAX_FALLBACKS: usize = 5;

/// A model's alias and fallbacks, as admins see and set them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ModelRoute {
    /// The public model name clients ask for.
    pub model: String,
    /// The model it is served as (its channels and price), or `null` when it is not an alias.
    pub alias_of: Option<String>,
    /// Models tried in order, each at its own price, when every channel failed.
    pub fallbacks: Vec<String>,
    /// When it was last changed (RFC 3339).
    pub updated_at: String,
}

/// What an admin sets for a model.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRouteInput {
    /// Serve the model as this one (`null` or absent: not an alias).
    #[serde(default)]
    pub alias_of: Option<String>,
    /// Models to try in order when every channel failed (at most five).
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

/// The aliases and fallbacks in memory.
#[derive(Debug, Default)]
pub struct RouteTable {
    aliases: HashMap<String, String>,
    fallbacks: HashMap<String, Vec<String>>,
}

impl RouteTable {
    /// The table of `routes`.
    pub fn build(routes: &[ModelRoute]) -> RouteTable {
        let mut table = RouteTable::default();
        for route in routes {
            if let Some(target) = &route.alias_of {
                table.aliases.insert(route.model.clone(), target.clone());
            }
            if !route.fallbacks.is_empty() {
                table
                    .fallbacks
                    .insert(route.model.clone(), route.fallbacks.clone());
            }
        }
        table
    }

    /// The model `model` is served as: its alias's target, or itself. One hop only (writes
    /// refuse chains), so a loop cannot form.
    pub fn resolve<'a>(&'a self, model: &'a str) -> &'a str {
        self.aliases.get(model).map_or(model, String::as_str)
    }

    /// The fallbacks of a request for `asked` (served as `served`): the asked name's own list,
    /// else the served model's; each resolved through its alias, without `served` itself or
    /// repeats.
    pub fn fallbacks(&self, asked: &str, served: &str) -> Vec<String> {
        let list = self
            .fallbacks
            .get(asked)
            .or_else(|| self.fallbacks.get(served));
        let mut out: Vec<String> = Vec::new();
        for model in list.into_iter().flatten() {
            let model = self.resolve(model);
            if model != served && !out.iter().any(|m| m == model) {
                out.push(model.to_string());
            }
        }
        out
    }

    /// Every alias as (alias, target), for the model list.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases.iter().map(|(a, t)| (a.as_str(), t.as_str()))
    }

    /// How many models have an alias or fallbacks.
    pub fn len(&self) -> usize {
        self.aliases.len() + self.fallbacks.len()
    }

    /// Whether no model has an alias or fallbacks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every stored route, by model name.
pub async fn all(db: &Db) -> DbResult<Vec<ModelRoute>> {
    let rows: Vec<(String, Option<String>, String, i64)> = sqlx::query_as(
        "SELECT model, alias_of, fallbacks, updated_at FROM relay_model_routes ORDER BY model",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(model, alias_of, fallbacks, at)| ModelRoute {
            model,
            alias_of,
            // Written only by `upsert` as a JSON array; an unreadable one lists nothing.
            fallbacks: serde_json::from_str(&fallbacks).unwrap_or_default(),
            updated_at: ms_to_rfc3339(at),
        })
        .collect())
}

/// Sets `model`'s alias and fallbacks.
pub async fn upsert(
    db: &Db,
    model: &str,
    alias_of: Option<&str>,
    fallbacks: &[String],
    now: i64,
) -> DbResult<()> {
    let fallbacks = serde_json::to_string(fallbacks).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO relay_model_routes (model, alias_of, fallbacks, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (model) DO UPDATE SET alias_of = $2, fallbacks = $3, updated_at = $4",
    )
    .bind(model)
    .bind(alias_of)
    .bind(fallbacks)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Removes `model`'s alias and fallbacks; answers whether it had any.
pub async fn delete(db: &Db, model: &str) -> DbResult<bool> {
    Ok(
        sqlx::query("DELETE FROM relay_model_routes WHERE model = $1")
            .bind(model)
            .execute(db.pool())
            .await?
            .rows_affected()
            == 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(model: &str, alias: Option<&str>, fallbacks: &[&str]) -> ModelRoute {
        ModelRoute {
            model: model.into(),
            alias_of: alias.map(str::to_string),
            fallbacks: fallbacks.iter().map(|f| f.to_string()).collect(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn aliases_resolve_once_and_fallbacks_skip_the_served_model() {
        let table = RouteTable::build(&[
            route("gpt-4o", Some("up-4o"), &[]),
            route("up-4o", None, &["cheap", "gpt-4o", "cheap"]),
            route("fast", Some("up-4o"), &["other"]),
        ]);
        assert_eq!(table.resolve("gpt-4o"), "up-4o");
        assert_eq!(table.resolve("plain"), "plain");
        // The served model's list, its alias back to itself and the repeat dropped.
        assert_eq!(table.fallbacks("gpt-4o", "up-4o"), ["cheap"]);
        // The asked name's own list comes first.
        assert_eq!(table.fallbacks("fast", "up-4o"), ["other"]);
        assert!(table.fallbacks("plain", "plain").is_empty());
    }
}
