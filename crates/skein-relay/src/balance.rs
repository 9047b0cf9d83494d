//! Upstream balances: the money left on a channel's account, read from the vendor's own
//! balance endpoint where it has one (DeepSeek `/user/balance`, Moonshot
//! `/v1/users/me/balance`, SiliconFlow `/v1/user/info`), each parsed as its documentation
//! describes. A balance under the channel's `low_balance_threshold` deprioritises the channel
//! in every routing strategy (it is tried last) and shows as low on the admin page and in the
//! metrics, before the vendor starts refusing requests.

use std::time::Duration;

use serde_json::Value;
use skein_db::sqlx;
use skein_db::{Db, DbResult};

use crate::channels::{ChannelKind, LiveChannel};

/// How often every channel's balance is read.
pub const REFRESH_EVERY: Duration = Duration::from_secs(900);

/// The most bytes of a balance answer read: each vendor's is a few hundred bytes, and a base
/// URL pointing somewhere else must not make the server hold an unbounded body.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A balance as the vendor reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// The amount left, in `currency`.
    pub amount: f64,
    /// ISO 4217 code (`CNY`, `USD`).
    pub currency: String,
}

/// A channel's last known balance, for routing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Known {
    /// The amount left.
    pub amount: f64,
    /// Whether it is under the channel's threshold.
    pub low: bool,
}

/// The balance path under the channel's base URL, for kinds whose vendor documents one.
pub fn path(kind: ChannelKind) -> Option<&'static str> {
    match kind {
        // Base URL `https://api.deepseek.com`.
        ChannelKind::DeepSeek => Some("/user/balance"),
        // Base URL `https://api.moonshot.cn/v1`.
        ChannelKind::Moonshot => Some("/users/me/balance"),
        // Base URL `https://api.siliconflow.cn/v1`.
        ChannelKind::SiliconFlow => Some("/user/info"),
        _ => None,
    }
}

/// A number the vendor wrote as a number or as a decimal string.
fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n: &f64| n.is_finite())
}

/// Reads a vendor's balance answer.
pub fn parse(kind: ChannelKind, base_url: &str, body: &Value) -> Option<Reported> {
    match kind {
        ChannelKind::DeepSeek => {
            // One entry per currency the account holds; CNY first when there are several,
            // since that is what DeepSeek bills in.
            let infos = body["balance_infos"].as_array()?;
            let info = infos
                .iter()
                .find(|i| i["currency"] == "CNY")
                .or_else(|| infos.first())?;
            Some(Reported {
                amount: number(&info["total_balance"])?,
                currency: info["currency"].as_str().unwrap_or("CNY").to_string(),
            })
        }
        ChannelKind::Moonshot => Some(Reported {
            amount: number(&body["data"]["available_balance"])?,
            // The international platform (api.moonshot.ai) bills in dollars.
            currency: if base_url.contains("moonshot.ai") {
                "USD"
            } else {
                "CNY"
            }
            .to_string(),
        }),
        ChannelKind::SiliconFlow => Some(Reported {
            amount: number(&body["data"]["totalBalance"])?,
            currency: "CNY".to_string(),
        }),
        _ => None,
    }
}

/// Reads `channel`'s balance from its vendor: `Ok(None)` when the vendor has no balance
/// endpoint, `Err` (for the admin, never a key) when it could not be read. `http` is the
/// relay's client, which follows no redirect: a balance endpoint answering 3xx is an error
/// here, so the channel's key and headers never travel to the host it points at. At most
/// [`MAX_ANSWER_BYTES`] of the answer are read.
pub async fn fetch(
    http: &reqwest::Client,
    channel: &LiveChannel,
) -> Result<Option<Reported>, String> {
    let Some(path) = path(channel.kind) else {
        return Ok(None);
    };
    let mut req = http
        .get(format!("{}{path}", channel.base_url))
        .bearer_auth(channel.key())
        .timeout(Duration::from_secs(20));
    for (name, value) in &channel.headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            "upstream timed out".to_string()
        } else {
            "upstream unreachable".to_string()
        }
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "upstream {} on the balance endpoint",
            status.as_u16()
        ));
    }
    let bytes = crate::upstream::read_limited(resp, MAX_ANSWER_BYTES).await?;
    let body: Value =
        serde_json::from_slice(&bytes).map_err(|_| "the balance answer is not JSON".to_string())?;
    parse(channel.kind, &channel.base_url, &body)
        .map(Some)
        .ok_or_else(|| "the balance answer has no amount".to_string())
}

/// Stores a channel's balance as read at `now`.
pub async fn record(db: &Db, id: &str, reported: &Reported, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE channels SET balance = $2, balance_currency = $3, balance_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(reported.amount)
    .bind(&reported.currency)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_vendor_is_read_as_documented() {
        let deepseek = json!({"is_available": true, "balance_infos": [
            {"currency": "USD", "total_balance": "3.00", "granted_balance": "0.00", "topped_up_balance": "3.00"},
            {"currency": "CNY", "total_balance": "110.00", "granted_balance": "10.00", "topped_up_balance": "100.00"}]});
        assert_eq!(
            parse(ChannelKind::DeepSeek, "https://api.deepseek.com", &deepseek),
            Some(Reported {
                amount: 110.0,
                currency: "CNY".into()
            })
        );
        let moonshot = json!({"code": 0, "data": {"available_balance": 49.58894, "voucher_balance": 46.58893, "cash_balance": 3.00001}, "scode": "0x0", "status": true});
        assert_eq!(
            parse(
                ChannelKind::Moonshot,
                "https://api.moonshot.ai/v1",
                &moonshot
            ),
            Some(Reported {
                amount: 49.58894,
                currency: "USD".into()
            })
        );
        let silicon = json!({"code": 20000, "message": "OK", "status": true, "data": {"balance": "0.88", "chargeBalance": "88.00", "totalBalance": "88.88"}});
        assert_eq!(
            parse(
                ChannelKind::SiliconFlow,
                "https://api.siliconflow.cn/v1",
                &silicon
            )
            .map(|r| r.amount),
            Some(88.88)
        );
        assert_eq!(
            parse(ChannelKind::SiliconFlow, "", &json!({"code": 50000})),
            None
        );
        assert_eq!(path(ChannelKind::OpenAi), None);
    }
}
