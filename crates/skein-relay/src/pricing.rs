//! The pricing table and the cost formula.
//!
//! Prices are integer quota units per million tokens (and per call); each channel group has a
//! price multiplier in per-mille (1000 = ×1.0, 800 = ×0.8). The cost of a request is
//!
//! ```text
//! cost = ceil( ( (uncached_prompt × input + cached_prompt × cache_read + completion × output)
//!                + calls × per_call × 1,000,000 ) × multiplier_permille / 1,000,000,000 )
//! ```
//!
//! Prompt tokens the vendor wrote to its cache are part of `prompt` but billed at
//! `cache_write` instead of `input`; writes kept for an hour (Anthropic's `1h` TTL) at twice
//! the input price, Anthropic's documented rule, or at `cache_write` if that is higher.
//!
//! computed exactly in integers and rounded up once, at the end, so that rounding never gives
//! work away; with the multiplier at 1000 it is the plain sum of the token part (rounded up)
//! and the per-call price. Every usage record stores the prices and the multiplier used.

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
    /// Per million uncached prompt tokens of audio, where the vendor prices audio apart (its
    /// audio input costs several times its text input); unset, audio is billed as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_input_per_mtok: Option<i64>,
    /// Per million completion tokens of audio; unset, billed as text output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_output_per_mtok: Option<i64>,
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

/// The multiplier of a group that has none set: ×1.0.
pub const NEUTRAL_PERMILLE: i64 = 1000;

impl Rates {
    /// The cost of a request with these token counts (one call, multiplier ×1.0).
    pub fn cost(&self, prompt_tokens: i64, completion_tokens: i64, cached_tokens: i64) -> i64 {
        exact_cost(
            self,
            NEUTRAL_PERMILLE,
            &Counts {
                prompt: prompt_tokens,
                completion: completion_tokens,
                cached: cached_tokens,
                ..Counts::default()
            },
            1,
        )
    }
}

/// Token counts of one request, as the cost formula reads them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// All prompt tokens (cache reads and writes included).
    pub prompt: i64,
    /// Completion tokens (reasoning included).
    pub completion: i64,
    /// Prompt tokens read from the vendor's cache.
    pub cached: i64,
    /// Prompt tokens written to the vendor's cache (short lifetime).
    pub cache_write: i64,
    /// Prompt tokens written to the vendor's cache for an hour.
    pub cache_write_1h: i64,
    /// Uncached prompt tokens that are audio (part of `prompt`).
    pub audio_prompt: i64,
    /// Completion tokens that are audio (part of `completion`).
    pub audio_completion: i64,
}

/// The formula of this module, in `i128` so no product overflows; saturates at `i64::MAX`.
fn exact_cost(rates: &Rates, permille: i64, counts: &Counts, calls: i64) -> i64 {
    let prompt = counts.prompt.max(0);
    let cached = counts.cached.clamp(0, prompt);
    let write = counts.cache_write.clamp(0, prompt - cached);
    let write_1h = counts.cache_write_1h.clamp(0, prompt - cached - write);
    let uncached = prompt - cached - write - write_1h;
    // Audio is billed at its own rate only where one is set; otherwise it is text.
    let audio_in = match rates.audio_input_per_mtok {
        Some(_) => counts.audio_prompt.clamp(0, uncached),
        None => 0,
    };
    let completion = counts.completion.max(0);
    let audio_out = match rates.audio_output_per_mtok {
        Some(_) => counts.audio_completion.clamp(0, completion),
        None => 0,
    };
    let rate_1h = rates
        .cache_write_per_mtok
        .max(rates.input_per_mtok.saturating_mul(2));
    let micro = i128::from(uncached - audio_in) * i128::from(rates.input_per_mtok)
        + i128::from(audio_in) * i128::from(rates.audio_input_per_mtok.unwrap_or(0))
        + i128::from(cached) * i128::from(rates.cache_read_per_mtok)
        + i128::from(write) * i128::from(rates.cache_write_per_mtok)
        + i128::from(write_1h) * i128::from(rate_1h)
        + i128::from(completion - audio_out) * i128::from(rates.output_per_mtok)
        + i128::from(audio_out) * i128::from(rates.audio_output_per_mtok.unwrap_or(0))
        + i128::from(calls.max(0)) * i128::from(rates.per_call) * 1_000_000;
    let scaled = micro.saturating_mul(i128::from(permille.max(0)));
    let divisor: i128 = 1_000_000 * 1000;
    i64::try_from((scaled + divisor - 1) / divisor).unwrap_or(i64::MAX)
}

/// What one request is billed at: the model's rates and its key group's multiplier. A model
/// served unpriced (`relay.allow_unpriced`) costs nothing and records no pricing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Price {
    /// The model's rates.
    #[serde(flatten)]
    pub rates: Rates,
    /// The key group the multiplier is that of.
    pub group: String,
    /// The group's multiplier in per-mille (1000 = ×1.0).
    pub multiplier_permille: i64,
    /// False when the model has no price and is served free.
    #[serde(skip)]
    pub priced: bool,
}

impl Price {
    /// A free price for a model that has none (served only under `relay.allow_unpriced`).
    pub fn unpriced(group: &str) -> Price {
        Price {
            rates: Rates {
                input_per_mtok: 0,
                output_per_mtok: 0,
                cache_read_per_mtok: 0,
                cache_write_per_mtok: 0,
                per_call: 0,
                audio_input_per_mtok: None,
                audio_output_per_mtok: None,
            },
            group: group.to_string(),
            multiplier_permille: NEUTRAL_PERMILLE,
            priced: false,
        }
    }

    /// The cost of one call with these token counts, multiplier applied, rounded up once.
    pub fn cost(&self, prompt_tokens: i64, completion_tokens: i64, cached_tokens: i64) -> i64 {
        self.cost_calls(prompt_tokens, completion_tokens, cached_tokens, 1)
    }

    /// The cost of `calls` per-call units (images) plus these token counts, rounded up once.
    pub fn cost_calls(
        &self,
        prompt_tokens: i64,
        completion_tokens: i64,
        cached_tokens: i64,
        calls: i64,
    ) -> i64 {
        self.cost_counts(
            &Counts {
                prompt: prompt_tokens,
                completion: completion_tokens,
                cached: cached_tokens,
                ..Counts::default()
            },
            calls,
        )
    }

    /// The cost of `calls` per-call units plus `counts` (cache writes included), rounded up once.
    pub fn cost_counts(&self, counts: &Counts, calls: i64) -> i64 {
        exact_cost(&self.rates, self.multiplier_permille, counts, calls)
    }

    /// The most `prompt` and `completion` tokens can cost whatever they turn out to be (text
    /// or audio), for holds: a request's audio is known only from the vendor's usage.
    pub fn cost_at_most(&self, prompt: i64, completion: i64) -> i64 {
        let dearer = |audio: Option<i64>, text: i64| audio.is_some_and(|a| a > text);
        self.cost_counts(
            &Counts {
                prompt,
                completion,
                audio_prompt: if dearer(self.rates.audio_input_per_mtok, self.rates.input_per_mtok)
                {
                    prompt
                } else {
                    0
                },
                audio_completion: if dearer(
                    self.rates.audio_output_per_mtok,
                    self.rates.output_per_mtok,
                ) {
                    completion
                } else {
                    0
                },
                ..Counts::default()
            },
            1,
        )
    }

    /// One rate as this group pays it, for showing (rounded up; bills use [`Price::cost`],
    /// which rounds only the total).
    pub fn scaled_rate(&self, rate: i64) -> i64 {
        let scaled = (i128::from(rate) * i128::from(self.multiplier_permille.max(0)) + 999) / 1000;
        i64::try_from(scaled).unwrap_or(i64::MAX)
    }

    /// The `pricing` JSON of a usage record: the rates, the group and its multiplier; `None`
    /// for a model served unpriced.
    pub fn record(&self) -> Option<String> {
        if self.priced {
            serde_json::to_string(self).ok()
        } else {
            None
        }
    }
}

/// A built-in price of a well-known model: what its vendor listed, in quota units, on a date.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DefaultPrice {
    /// Model name as clients ask for it.
    pub model: &'static str,
    /// The rates (500,000 units = 1 USD).
    #[serde(flatten)]
    pub rates: Rates,
    /// Where the price was read.
    pub source: &'static str,
    /// The date the price was read (YYYY-MM-DD); vendors change prices, so check before use.
    pub as_of: &'static str,
}

const OPENAI: &str = "https://openai.com/api/pricing/";
const ANTHROPIC: &str = "https://docs.anthropic.com/en/docs/about-claude/pricing";
const GEMINI: &str = "https://ai.google.dev/gemini-api/docs/pricing";
const DEEPSEEK: &str = "https://api-docs.deepseek.com/quick_start/pricing";
// The Chinese vendors' price pages (read 2025-12-01; shortest context tier, standard
// mode; admins should check them before loading the defaults).
const DASHSCOPE: &str = "https://help.aliyun.com/zh/model-studio/models (模型列表与价格)";
const ZHIPU: &str = "https://open.bigmodel.cn/pricing (产品定价)";
const MOONSHOT: &str = "https://platform.moonshot.cn/docs/pricing/chat (模型推理定价)";
const VOLCENGINE: &str = "https://www.volcengine.com/docs/82379/1544106 (模型价格)";
const MINIMAX: &str = "https://platform.minimaxi.com/docs/pricing/overview (价格)";
const HUNYUAN: &str = "https://cloud.tencent.com/document/product/1729/97731 (购买指南/产品定价)";
const QIANFAN: &str = "https://cloud.baidu.com/doc/qianfan/s/wmh4sv6ya (千帆 ModelBuilder 价格)";
/// The date the built-in table was compiled.
pub const DEFAULTS_AS_OF: &str = "2025-10-01";

/// A token-priced default: USD per million tokens times 500,000 (input, output, cache read,
/// cache write).
const fn tokens(model: &'static str, rates: [i64; 4], source: &'static str) -> DefaultPrice {
    DefaultPrice {
        model,
        rates: Rates {
            input_per_mtok: rates[0],
            output_per_mtok: rates[1],
            cache_read_per_mtok: rates[2],
            cache_write_per_mtok: rates[3],
            per_call: 0,
            audio_input_per_mtok: None,
            audio_output_per_mtok: None,
        },
        source,
        as_of: DEFAULTS_AS_OF,
    }
}

/// The date the Chinese vendors' rows were read (their list prices in CNY, converted at
/// [`CNY_PER_USD`]); defaults for admins to check against the vendor's page before use.
pub const CN_DEFAULTS_AS_OF: &str = "2025-12-01";
/// The exchange rate the CNY list prices were converted at (units are USD-based).
pub const CNY_PER_USD: f64 = 7.2;

/// A token-priced default listed in CNY per million tokens (input, output, cache read),
/// converted to units at [`CNY_PER_USD`], dated [`CN_DEFAULTS_AS_OF`].
const fn cny(model: &'static str, yuan_milli: [i64; 3], source: &'static str) -> DefaultPrice {
    // 500,000 units per USD and 7.2 CNY per USD: milli-yuan × 500,000 / 7,200.
    DefaultPrice {
        model,
        rates: Rates {
            input_per_mtok: yuan_milli[0] * 500_000 / 7_200,
            output_per_mtok: yuan_milli[1] * 500_000 / 7_200,
            cache_read_per_mtok: yuan_milli[2] * 500_000 / 7_200,
            cache_write_per_mtok: 0,
            per_call: 0,
            audio_input_per_mtok: None,
            audio_output_per_mtok: None,
        },
        source,
        as_of: CN_DEFAULTS_AS_OF,
    }
}

/// A token-priced default with audio priced apart: text `[input, output, cache read]` and
/// audio `[input, output]`, USD per million tokens times 500,000.
const fn audio(
    model: &'static str,
    text: [i64; 3],
    audio: [i64; 2],
    source: &'static str,
) -> DefaultPrice {
    DefaultPrice {
        model,
        rates: Rates {
            input_per_mtok: text[0],
            output_per_mtok: text[1],
            cache_read_per_mtok: text[2],
            cache_write_per_mtok: 0,
            per_call: 0,
            audio_input_per_mtok: Some(audio[0]),
            audio_output_per_mtok: Some(audio[1]),
        },
        source,
        as_of: DEFAULTS_AS_OF,
    }
}

/// A per-call default in quota units.
const fn per_call(model: &'static str, units: i64, source: &'static str) -> DefaultPrice {
    DefaultPrice {
        model,
        rates: Rates {
            input_per_mtok: 0,
            output_per_mtok: 0,
            cache_read_per_mtok: 0,
            cache_write_per_mtok: 0,
            per_call: units,
            audio_input_per_mtok: None,
            audio_output_per_mtok: None,
        },
        source,
        as_of: DEFAULTS_AS_OF,
    }
}

/// Vendors' list prices of well-known models (standard tier, shortest context band), converted
/// at 500,000 units per USD. whisper-1 is priced per minute by OpenAI and here per call at one
/// minute's price; dall-e-3 per standard 1024×1024 image.
pub const DEFAULTS: &[DefaultPrice] = &[
    tokens("gpt-4o", [1_250_000, 5_000_000, 625_000, 0], OPENAI),
    tokens("gpt-4o-mini", [75_000, 300_000, 37_500, 0], OPENAI),
    // Realtime and audio models: audio in and out cost several times their text.
    audio(
        "gpt-realtime",
        [2_000_000, 8_000_000, 200_000],
        [16_000_000, 32_000_000],
        OPENAI,
    ),
    audio(
        "gpt-4o-realtime-preview",
        [2_500_000, 10_000_000, 1_250_000],
        [20_000_000, 40_000_000],
        OPENAI,
    ),
    audio(
        "gpt-4o-mini-realtime-preview",
        [300_000, 1_200_000, 150_000],
        [5_000_000, 10_000_000],
        OPENAI,
    ),
    audio(
        "gpt-4o-audio-preview",
        [1_250_000, 5_000_000, 0],
        [20_000_000, 40_000_000],
        OPENAI,
    ),
    audio(
        "gpt-4o-mini-audio-preview",
        [75_000, 300_000, 0],
        [5_000_000, 10_000_000],
        OPENAI,
    ),
    tokens("gpt-4.1", [1_000_000, 4_000_000, 250_000, 0], OPENAI),
    tokens("gpt-4.1-mini", [200_000, 800_000, 50_000, 0], OPENAI),
    tokens("gpt-4.1-nano", [50_000, 200_000, 12_500, 0], OPENAI),
    tokens("o3", [1_000_000, 4_000_000, 250_000, 0], OPENAI),
    tokens("o4-mini", [550_000, 2_200_000, 137_500, 0], OPENAI),
    tokens(
        "claude-opus-4-1",
        [7_500_000, 37_500_000, 750_000, 9_375_000],
        ANTHROPIC,
    ),
    tokens(
        "claude-sonnet-4-5",
        [1_500_000, 7_500_000, 150_000, 1_875_000],
        ANTHROPIC,
    ),
    tokens(
        "claude-sonnet-4-0",
        [1_500_000, 7_500_000, 150_000, 1_875_000],
        ANTHROPIC,
    ),
    tokens(
        "claude-haiku-4-5",
        [500_000, 2_500_000, 50_000, 625_000],
        ANTHROPIC,
    ),
    tokens("gemini-2.0-flash", [50_000, 200_000, 12_500, 0], GEMINI),
    tokens("gemini-2.5-flash", [150_000, 1_250_000, 15_000, 0], GEMINI),
    tokens("gemini-2.5-pro", [625_000, 5_000_000, 62_500, 0], GEMINI),
    tokens("deepseek-chat", [140_000, 210_000, 14_000, 0], DEEPSEEK),
    tokens("deepseek-reasoner", [140_000, 210_000, 14_000, 0], DEEPSEEK),
    // Chinese vendors, listed in CNY per million tokens (input, output, cache hit) ×1000,
    // dated CN_DEFAULTS_AS_OF. Defaults for admins to check, not quotes.
    cny("qwen-max", [2_400, 9_600, 0], DASHSCOPE),
    cny("qwen-plus", [800, 2_000, 0], DASHSCOPE),
    cny("qwen-turbo", [300, 600, 0], DASHSCOPE),
    cny("qwen3-max", [6_000, 24_000, 0], DASHSCOPE),
    cny("glm-4.6", [2_000, 8_000, 400], ZHIPU),
    cny("glm-4.5-air", [800, 2_000, 160], ZHIPU),
    cny("glm-4-flash", [0, 0, 0], ZHIPU),
    cny("kimi-k2-0905-preview", [4_000, 16_000, 1_000], MOONSHOT),
    cny("kimi-k2-thinking", [4_000, 16_000, 1_000], MOONSHOT),
    cny("moonshot-v1-8k", [2_000, 10_000, 0], MOONSHOT),
    cny("doubao-seed-1-6-250615", [800, 8_000, 160], VOLCENGINE),
    cny("doubao-seed-1-6-flash-250615", [150, 1_500, 30], VOLCENGINE),
    cny("doubao-1-5-pro-32k-250115", [800, 2_000, 160], VOLCENGINE),
    cny("MiniMax-M2", [2_100, 8_400, 210], MINIMAX),
    cny("hunyuan-turbos-latest", [800, 2_000, 0], HUNYUAN),
    cny("hunyuan-t1-latest", [1_000, 4_000, 0], HUNYUAN),
    cny("ernie-4.5-turbo-128k", [800, 3_200, 0], QIANFAN),
    cny("ernie-x1-turbo-32k", [1_000, 4_000, 0], QIANFAN),
    tokens("text-embedding-3-small", [10_000, 0, 0, 0], OPENAI),
    tokens("text-embedding-3-large", [65_000, 0, 0, 0], OPENAI),
    per_call("whisper-1", 3_000, OPENAI),
    per_call("dall-e-3", 20_000, OPENAI),
];

/// One channel group's price multiplier.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupMultiplier {
    /// The group, as named in `relay.groups`.
    pub group: String,
    /// Per-mille: 1000 = ×1.0, 800 = ×0.8 (a 20 % discount), 1500 = ×1.5.
    pub multiplier_permille: i64,
    /// RFC 3339; `None` for a group that has never been set (it bills at ×1.0).
    pub updated_at: Option<String>,
}

/// Every stored group multiplier, by group: per-mille and when it was set.
pub async fn group_multipliers(db: &Db) -> DbResult<HashMap<String, (i64, i64)>> {
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT group_name, multiplier_permille, updated_at FROM group_multipliers")
            .fetch_all(db.pool())
            .await?;
    Ok(rows
        .into_iter()
        .map(|(group, permille, at)| (group, (permille, at)))
        .collect())
}

/// Sets one group's multiplier.
pub async fn set_group_multiplier(db: &Db, group: &str, permille: i64, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO group_multipliers (group_name, multiplier_permille, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (group_name) DO UPDATE SET multiplier_permille = $2, updated_at = $3",
    )
    .bind(group)
    .bind(permille)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The whole table.
pub async fn all(db: &Db) -> DbResult<Vec<ModelPrice>> {
    type Row = (
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT model, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, per_call, updated_at, \
         audio_input_per_mtok, audio_output_per_mtok FROM model_prices ORDER BY model",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(model, i, o, cr, cw, pc, at, ai, ao)| ModelPrice {
            model,
            rates: Rates {
                input_per_mtok: i,
                output_per_mtok: o,
                cache_read_per_mtok: cr,
                cache_write_per_mtok: cw,
                per_call: pc,
                audio_input_per_mtok: ai,
                audio_output_per_mtok: ao,
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
        "INSERT INTO model_prices (model, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, per_call, updated_at, \
         audio_input_per_mtok, audio_output_per_mtok) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (model) DO UPDATE SET input_per_mtok = $2, output_per_mtok = $3, \
         cache_read_per_mtok = $4, cache_write_per_mtok = $5, per_call = $6, updated_at = $7, \
         audio_input_per_mtok = $8, audio_output_per_mtok = $9",
    )
    .bind(model)
    .bind(r.input_per_mtok)
    .bind(r.output_per_mtok)
    .bind(r.cache_read_per_mtok)
    .bind(r.cache_write_per_mtok)
    .bind(r.per_call)
    .bind(now)
    .bind(r.audio_input_per_mtok)
    .bind(r.audio_output_per_mtok)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Inserts `rates` for `model` only if it has no price yet; answers whether it did.
pub async fn insert_missing(db: &Db, model: &str, r: &Rates, now: i64) -> DbResult<bool> {
    Ok(sqlx::query(
        "INSERT INTO model_prices (model, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, per_call, updated_at, \
         audio_input_per_mtok, audio_output_per_mtok) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (model) DO NOTHING",
    )
    .bind(model)
    .bind(r.input_per_mtok)
    .bind(r.output_per_mtok)
    .bind(r.cache_read_per_mtok)
    .bind(r.cache_write_per_mtok)
    .bind(r.per_call)
    .bind(now)
    .bind(r.audio_input_per_mtok)
    .bind(r.audio_output_per_mtok)
    .execute(db.pool())
    .await?
    .rows_affected()
        == 1)
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
    fn cny_defaults_convert_at_the_stated_rate_and_date() {
        let qwen = DEFAULTS.iter().find(|d| d.model == "qwen-plus");
        let qwen = qwen.map(|d| (d.rates.input_per_mtok, d.rates.output_per_mtok, d.as_of));
        // ¥0.8 and ¥2 per million tokens at 7.2 CNY/USD, 500,000 units per USD.
        assert_eq!(qwen, Some((55_555, 138_888, CN_DEFAULTS_AS_OF)));
        assert!((CNY_PER_USD - 7.2).abs() < f64::EPSILON);
        let mut models: Vec<&str> = DEFAULTS.iter().map(|d| d.model).collect();
        let n = models.len();
        models.sort_unstable();
        models.dedup();
        assert_eq!(models.len(), n, "one default per model");
    }

    #[test]
    fn cost_follows_the_formula_and_rounds_up() {
        let r = Rates {
            input_per_mtok: 1_250_000,
            output_per_mtok: 5_000_000,
            cache_read_per_mtok: 125_000,
            cache_write_per_mtok: 0,
            per_call: 0,
            audio_input_per_mtok: None,
            audio_output_per_mtok: None,
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

    #[test]
    fn cache_writes_are_billed_at_the_cache_write_price() {
        // Claude Sonnet-like rates: $3 input, $15 output, $0.30 read, $3.75 write (per MTok).
        let price = Price {
            rates: Rates {
                input_per_mtok: 1_500_000,
                output_per_mtok: 7_500_000,
                cache_read_per_mtok: 150_000,
                cache_write_per_mtok: 1_875_000,
                per_call: 0,
                audio_input_per_mtok: None,
                audio_output_per_mtok: None,
            },
            group: "default".into(),
            multiplier_permille: 1000,
            priced: true,
        };
        let counts = |write, write_1h| Counts {
            prompt: 1_000_000,
            completion: 0,
            cached: 0,
            cache_write: write,
            cache_write_1h: write_1h,
            ..Counts::default()
        };
        assert_eq!(price.cost_counts(&counts(0, 0), 1), 1_500_000);
        // Half the prompt written to the 5-minute cache: 0.5 × 3 + 0.5 × 3.75.
        assert_eq!(price.cost_counts(&counts(500_000, 0), 1), 1_687_500);
        // Written for an hour: twice the input price, Anthropic's rule.
        assert_eq!(price.cost_counts(&counts(0, 500_000), 1), 2_250_000);
        // Writes cannot exceed the prompt.
        assert_eq!(
            price.cost_counts(&counts(2_000_000, 0), 1),
            price.cost_counts(&counts(1_000_000, 0), 1)
        );
    }

    #[test]
    fn a_group_multiplier_scales_exactly_and_rounds_once() {
        let rates = Rates {
            input_per_mtok: 3,
            output_per_mtok: 0,
            cache_read_per_mtok: 0,
            cache_write_per_mtok: 0,
            per_call: 5,
            audio_input_per_mtok: None,
            audio_output_per_mtok: None,
        };
        let price = |m| Price {
            rates,
            group: "vip".into(),
            multiplier_permille: m,
            priced: true,
        };
        // ×1.0 is the plain formula.
        assert_eq!(
            price(1000).cost(1_000_001, 0, 0),
            rates.cost(1_000_001, 0, 0)
        );
        // (1,000,000 × 3 + 5 × 1,000,000) × 0.8 = 6.4 units → 7 (rounded once, up).
        assert_eq!(price(800).cost(1_000_000, 0, 0), 7);
        // Three calls: (3 + 15) × 0.8 = 14.4 → 15; one token: (0.000003 + 5) × 0.8 → 5.
        assert_eq!(price(800).cost_calls(1_000_000, 0, 0, 3), 15);
        assert_eq!(price(800).cost(1, 0, 0), 5);
        assert_eq!(price(0).cost(1_000_000, 0, 0), 0);
        assert_eq!(Price::unpriced("default").cost(10, 10, 0), 0);
        assert_eq!(Price::unpriced("default").record(), None);
        let record: serde_json::Value =
            serde_json::from_str(&price(800).record().unwrap_or_default()).unwrap_or_default();
        assert_eq!(record["multiplier_permille"], 800);
        assert_eq!(record["input_per_mtok"], 3);
        assert_eq!(record["group"], "vip");
    }

    #[test]
    fn audio_goes_at_its_own_rates_only_where_set_and_holds_take_the_dearer() {
        let text = Rates {
            input_per_mtok: 2_000_000,
            output_per_mtok: 8_000_000,
            cache_read_per_mtok: 200_000,
            cache_write_per_mtok: 0,
            per_call: 0,
            audio_input_per_mtok: None,
            audio_output_per_mtok: None,
        };
        let counts = Counts {
            prompt: 1_000_000,
            completion: 1_000_000,
            cached: 250_000,
            audio_prompt: 500_000,
            audio_completion: 400_000,
            ..Counts::default()
        };
        // No audio rates: all of it is text. 750k × 2 + 250k × 0.2 + 1M × 8 = 9.55M units.
        assert_eq!(exact_cost(&text, 1000, &counts, 1), 9_550_000);
        let audio = Rates {
            audio_input_per_mtok: Some(16_000_000),
            audio_output_per_mtok: Some(32_000_000),
            ..text
        };
        // 250k text × 2 + 500k audio × 16 + 250k cached × 0.2 + 600k × 8 + 400k × 32
        // = 0.5M + 8M + 0.05M + 4.8M + 12.8M.
        assert_eq!(exact_cost(&audio, 1000, &counts, 1), 26_150_000);
        // Audio counts beyond what is uncached or completed are clamped, never billed twice.
        let over = Counts {
            audio_prompt: 5_000_000,
            audio_completion: 5_000_000,
            ..counts
        };
        // 750k audio × 16 + 250k cached × 0.2 + 1M audio × 32 = 12M + 0.05M + 32M.
        assert_eq!(exact_cost(&audio, 1000, &over, 1), 44_050_000);
        // A hold prices every token at the dearer rate.
        let price = |rates| Price {
            rates,
            group: "default".into(),
            multiplier_permille: 1000,
            priced: true,
        };
        assert_eq!(price(audio).cost_at_most(1_000_000, 1_000_000), 48_000_000);
        assert_eq!(price(text).cost_at_most(1_000_000, 1_000_000), 10_000_000);
        // Stored and shown only when set.
        let shown = serde_json::to_value(text).unwrap_or_default();
        assert!(shown.get("audio_input_per_mtok").is_none(), "{shown}");
        let shown = serde_json::to_value(audio).unwrap_or_default();
        assert_eq!(shown["audio_output_per_mtok"], 32_000_000);
    }
}
