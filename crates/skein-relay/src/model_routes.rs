//! Model aliases and fallbacks: storage (`relay_model_routes`) and the in-memory table the
//! hot path reads, rebuilt with the channels on every change (and on the bus's notes).
//!
//! An alias serves one public name as another model: its channels, its price, and its name
//! on usage records (the record says which model served). A fallback list names the models
//! tried, in order, each at its own price, once every channel of a model failed; a refusal
//! of the request itself (the upstream's 4xx) never falls back. A group may have a list of
//! its own for a model (`group_fallbacks`), which its keys get in place of the model's list:
//! a paying group can fall back to a better model than the free one, or not at all. A model
//! may also route by a strategy of its own (`strategy`), in place of its group's: one
//! group's cheap models by cost and its flagship by latency.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use skein_core::ids::ms_to_rfc3339;
use skein_db::{Db, DbResult};
use utoipa::ToSchema;

use crate::routing::Strategy;

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
    /// Per group: the list its keys get instead of `fallbacks` (an empty list: none).
    pub group_fallbacks: BTreeMap<String, Vec<String>>,
    /// How the model's channels are chosen, in place of the group's strategy (`null`: the
    /// group's). The group's exploring and stickiness still apply.
    pub strategy: Option<Strategy>,
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
    /// Per group (one of `relay.groups`): the fallbacks of that group's keys, in place of
    /// `fallbacks` (at most five each; an empty list turns fallbacks off for the group).
    #[serde(default)]
    pub group_fallbacks: BTreeMap<String, Vec<String>>,
    /// Route the model's channels by this strategy instead of the group's (`null` or absent:
    /// the group's).
    #[serde(default)]
    pub strategy: Option<Strategy>,
}

/// The aliases and fallbacks in memory.
#[derive(Debug, Default)]
pub struct RouteTable {
    aliases: HashMap<String, String>,
    fallbacks: HashMap<String, Vec<String>>,
    /// By model, then group.
    group_fallbacks: HashMap<String, BTreeMap<String, Vec<String>>>,
    /// Models routed by a strategy of their own.
    strategies: HashMap<String, Strategy>,
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
            if !route.group_fallbacks.is_empty() {
                table
                    .group_fallbacks
                    .insert(route.model.clone(), route.group_fallbacks.clone());
            }
            if let Some(strategy) = route.strategy {
                table.strategies.insert(route.model.clone(), strategy);
            }
        }
        table
    }

    /// The strategy `model`'s channels are routed by when it has one of its own.
    pub fn strategy(&self, model: &str) -> Option<Strategy> {
        self.strategies.get(model).copied()
    }

    /// The model `model` is served as: its alias's target, or itself. One hop only (writes
    /// refuse chains), so a loop cannot form.
    pub fn resolve<'a>(&'a self, model: &'a str) -> &'a str {
        self.aliases.get(model).map_or(model, String::as_str)
    }

    /// The fallbacks of a request for `asked` (served as `served`) by a key of `group`: the
    /// asked name's route first (the group's own list, else the model's list), then the served
    /// model's the same way; each resolved through its alias, without `served` itself or
    /// repeats.
    pub fn fallbacks(&self, asked: &str, served: &str, group: &str) -> Vec<String> {
        let of = |model: &str| {
            self.group_fallbacks
                .get(model)
                .and_then(|groups| groups.get(group))
                .or_else(|| self.fallbacks.get(model))
        };
        let list = of(asked).or_else(|| of(served));
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

    /// How many models have an alias or fallbacks (any group's counted once).
    pub fn len(&self) -> usize {
        self.aliases.len()
            + self.fallbacks.len()
            + self
                .group_fallbacks
                .keys()
                .filter(|m| !self.fallbacks.contains_key(*m))
                .count()
    }

    /// Whether no model has an alias or fallbacks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every stored route, by model name.
pub async fn all(db: &Db) -> DbResult<Vec<ModelRoute>> {
    type Columns = (String, Option<String>, String, String, Option<String>, i64);
    let rows: Vec<Columns> = sqlx::query_as(
        "SELECT model, alias_of, fallbacks, group_fallbacks, strategy, updated_at FROM relay_model_routes ORDER BY model",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(model, alias_of, fallbacks, groups, strategy, at)| ModelRoute {
                model,
                alias_of,
                // Written only by `upsert` as JSON; an unreadable value lists nothing.
                fallbacks: serde_json::from_str(&fallbacks).unwrap_or_default(),
                group_fallbacks: serde_json::from_str(&groups).unwrap_or_default(),
                strategy: strategy.as_deref().map(Strategy::parse),
                updated_at: ms_to_rfc3339(at),
            },
        )
        .collect())
}

/// What a model's route sets, as [`upsert`] stores it.
#[derive(Debug, Clone, Copy)]
pub struct RouteFields<'a> {
    /// Serve the model as this one.
    pub alias_of: Option<&'a str>,
    /// The model's fallbacks.
    pub fallbacks: &'a [String],
    /// Per group, the fallbacks in place of `fallbacks`.
    pub group_fallbacks: &'a BTreeMap<String, Vec<String>>,
    /// The model's own strategy.
    pub strategy: Option<Strategy>,
}

/// Sets `model`'s alias and fallbacks.
pub async fn upsert(db: &Db, model: &str, route: RouteFields<'_>, now: i64) -> DbResult<()> {
    let fallbacks = serde_json::to_string(route.fallbacks).unwrap_or_else(|_| "[]".into());
    let groups = serde_json::to_string(route.group_fallbacks).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO relay_model_routes (model, alias_of, fallbacks, group_fallbacks, strategy, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (model) DO UPDATE SET alias_of = $2, fallbacks = $3, group_fallbacks = $4, strategy = $5, updated_at = $6",
    )
    .bind(model)
    .bind(route.alias_of)
    .bind(fallbacks)
    .bind(groups)
    .bind(route.strategy.map(Strategy::as_str))
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
            group_fallbacks: BTreeMap::new(),
            strategy: None,
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
        assert_eq!(table.fallbacks("gpt-4o", "up-4o", "default"), ["cheap"]);
        // The asked name's own list comes first.
        assert_eq!(table.fallbacks("fast", "up-4o", "default"), ["other"]);
        assert!(table.fallbacks("plain", "plain", "default").is_empty());
    }

    #[test]
    fn a_groups_own_list_replaces_the_models_for_its_keys_only() {
        let mut paid = route("m", None, &["cheap"]);
        paid.group_fallbacks
            .insert("vip".into(), vec!["better".into(), "m".into()]);
        paid.group_fallbacks.insert("free".into(), Vec::new());
        let only_groups = {
            let mut r = route("n", None, &[]);
            r.group_fallbacks
                .insert("vip".into(), vec!["better".into()]);
            r
        };
        let table = RouteTable::build(&[paid, only_groups, route("alias", Some("m"), &[])]);
        assert_eq!(table.fallbacks("m", "m", "default"), ["cheap"]);
        assert_eq!(
            table.fallbacks("m", "m", "vip"),
            ["better"],
            "itself dropped"
        );
        assert!(
            table.fallbacks("m", "m", "free").is_empty(),
            "turned off for free"
        );
        // An alias without a route of its own takes the served model's, by group.
        assert_eq!(table.fallbacks("alias", "m", "vip"), ["better"]);
        assert_eq!(table.fallbacks("n", "n", "vip"), ["better"]);
        assert!(table.fallbacks("n", "n", "default").is_empty());
        assert_eq!(table.len(), 3);
    }
}
