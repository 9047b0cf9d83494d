//! The pricing table and the cost formula.
//!
//! Prices are integer quota units per million tokens (and per call). The cost of a request is
//!
//! ```text
//! cost = ceil((uncached_prompt × input + cached_prompt × cache_read + completion × output) / 1,000,000)
//!        + per_call
//! ```
//!
//! rounded up so that rounding never gives work away; every usage record stores the prices used.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use skein_core::ids::ms_to_rfc3339;
use skein_db::sqlx;
use skein_db::{Db, DbResult};
use utoipa::ToSchema;

/// The price of one model, in quota units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Rates {
    /// Per million uncached prompt tokens.
    pub input_per_mtok: i64,
    /// Per million completion (and reasoning) tokens.
    pub output_per_mtok: i64,
    /// Per million prompt tokens read from the upstream's cache.
    pub cache_read_per_mtok: i64,
    /// Per million prompt tokens written to the upstream's cache.
    pub cache_write_per_mtok: i64,
    /// Per request (images, audio, or a flat fee).
    pub per_call: i64,
}

/// A row of the pricing table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelPrice {
    /// Model name as clients ask for it.
    pub model: String,
    /// The rates.
    #[serde(flatten)]
    pub rates: Rates,
    /// RFC 3339.
    pub updated_at: String,
}

impl Rates {
    /// The cost of a request with these token counts.
    pub fn cost(&self, prompt_tokens: i64, completion_tokens: i64, cached_tokens: i64) -> i64 {
        let cached = cached_tokens.clamp(0, prompt_tokens.max(0));
        let uncached = prompt_tokens.max(0) - cached;
        let micro = i128::from(uncached) * i128::from(self.input_per_mtok)
            + i128::from(cached) * i128::from(self.cache_read_per_mtok)
            + i128::from(completion_tokens.max(0)) * i128::from(self.output_per_mtok);
        let tokens = (micro + 999_999) / 1_000_000;
        i64::try_from(tokens)
            .unwrap_or(i64::MAX)
            .saturating_add(self.per_call)
    }
}

/// The whole table.
pub async fn all(db: &Db) -> DbResult<Vec<ModelPrice>> {
    let rows: Vec<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT model, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, per_call, updated_at \
         FROM model_prices ORDER BY model",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(model, i, o, cr, cw, pc, at)| ModelPrice {
            model,
            rates: Rates {
                input_per_mtok: i,
                output_per_mtok: o,
                cache_read_per_mtok: cr,
                cache_write_per_mtok: cw,
                per_call: pc,
            },
            updated_at: ms_to_rfc3339(at),
        })
        .collect())
}

/// The table as a lookup map.
pub async fn map(db: &Db) -> DbResult<HashMap<String, Rates>> {
    Ok(all(db)
        .await?
        .into_iter()
        .map(|p| (p.model, p.rates))
        .collect())
}

/// Sets one model's price.
pub async fn upsert(db: &Db, model: &str, r: &Rates, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO model_prices (model, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, per_call, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (model) DO UPDATE SET input_per_mtok = $2, output_per_mtok = $3, \
         cache_read_per_mtok = $4, cache_write_per_mtok = $5, per_call = $6, updated_at = $7",
    )
    .bind(model)
    .bind(r.input_per_mtok)
    .bind(r.output_per_mtok)
    .bind(r.cache_read_per_mtok)
    .bind(r.cache_write_per_mtok)
    .bind(r.per_call)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Removes one model's price.
pub async fn delete(db: &Db, model: &str) -> DbResult<bool> {
    Ok(sqlx::query("DELETE FROM model_prices WHERE model = $1")
        .bind(model)
        .execute(db.pool())
        .await?
        .rows_affected()
        == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_follows_the_formula_and_rounds_up() {
        let r = Rates {
            input_per_mtok: 1_250_000,
            output_per_mtok: 5_000_000,
            cache_read_per_mtok: 125_000,
            cache_write_per_mtok: 0,
            per_call: 0,
        };
        // 1000 prompt (200 cached) and 500 completion tokens:
        // 800 × 1.25 + 200 × 0.125 + 500 × 5 = 1000 + 25 + 2500 = 3525 units.
        assert_eq!(r.cost(1000, 500, 200), 3525);
        let tiny = Rates {
            input_per_mtok: 1,
            ..r
        };
        assert_eq!(
            Rates {
                output_per_mtok: 0,
                cache_read_per_mtok: 0,
                ..tiny
            }
            .cost(1, 0, 0),
            1,
            "a fraction of a unit rounds up"
        );
        assert_eq!(Rates { per_call: 7, ..r }.cost(0, 0, 0), 7);
        assert_eq!(
            r.cost(10, 0, 99),
            r.cost(10, 0, 10),
            "cached tokens cannot exceed the prompt"
        );
    }
}
