//! Payment settings an admin changes at run time (Admin → Payments), over the file's
//! `[billing.payment]`: each setting is the file's until an admin stores a value for it
//! (`payment_settings` table), and a reset returns it to the file's.
//!
//! A provider's section (`epay`, `stripe`, `alipay`, `wechat`) is stored whole, `null` for a
//! provider an admin turned off, with its secrets sealed ([`Sealer`], AES-256-GCM under a key
//! derived from `relay.secret_key`, bound to the provider and field) so a copy of the
//! database alone cannot take payments as this merchant. Values sealed under a key of
//! `relay.previous_secret_keys` still open and are sealed again at start-up
//! ([`BillingService::seal_stored_payment_secrets`]), like the User service's secrets.
//!
//! The instance that stores a change applies it at once and tells the others over the bus
//! ([`PAYMENT_SETTINGS_TOPIC`]); each also reads the table again every 30 s in case a note
//! was lost. A new [`Payments`] is built for each change: new orders use it at once, and the
//! providers it replaced are kept (in memory, a few) for reconciliation of orders made under
//! them — never for notifications, whose signatures are checked only with the keys in
//! effect, so a key rotated because it leaked forges nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock, RwLock};

use serde::de::DeserializeOwned;
use serde_json::Value;
use skein_core::seal::Sealer;
use skein_core::secret::Secret;

use super::Payments;
use super::config::{AlipayConfig, EpayConfig, PaymentConfig, StripeConfig, WechatConfig};
use super::settings_store as store;
use crate::BillingService;

/// The purpose label the Billing service's sealing key is derived under.
pub const SEAL_LABEL: &str = "skein billing secrets v1";

/// The bus topic of payment settings: any note means "read them again".
pub const PAYMENT_SETTINGS_TOPIC: &str = "payment_settings";

/// Every setting an admin may store, by its API name.
pub const NAMES: &[&str] = &[
    "public_url",
    "currency",
    "quota_per_unit",
    "amounts",
    "min_amount",
    "max_amount",
    "order_ttl_secs",
    "max_pending_orders",
    "plan_reminder_days",
    "epay",
    "stripe",
    "alipay",
    "wechat",
];

/// How many replaced providers are kept for reconciliation.
const RETIRED_KEPT: usize = 8;

/// The secret fields of a provider's section.
pub(crate) fn secret_fields(provider: &str) -> &'static [&'static str] {
    match provider {
        "epay" => &["key"],
        "stripe" => &["secret_key", "webhook_secret"],
        "alipay" => &["private_key"],
        "wechat" => &["private_key", "apiv3_key"],
        _ => &[],
    }
}

/// The owner a provider's secret is sealed for (a sealed value moved to another field does
/// not open).
fn owner(provider: &str, field: &str) -> String {
    format!("payment_settings:{provider}.{field}")
}

/// The settings in effect and where they came from.
#[derive(Clone)]
pub(crate) struct Effective {
    /// The file's `[billing.payment]` with the stored values over it.
    pub config: PaymentConfig,
    /// The settings stored (the others are the file's).
    pub stored: BTreeSet<String>,
    /// Why the stored settings could not be used (the file's are in effect then).
    pub error: Option<String>,
}

/// The live payment settings of one instance.
pub(crate) struct Live {
    /// What is in effect now.
    effective: RwLock<Arc<Effective>>,
    /// The rows last read (`None` before the first read), so a periodic reload that finds
    /// nothing new rebuilds nothing.
    rows: RwLock<Option<Vec<(String, String)>>>,
    /// Seals the providers' secrets (set at composition).
    sealer: OnceLock<Sealer>,
    /// The deployment's bus, once joined.
    bus: OnceLock<Arc<dyn skein_core::bus::Bus>>,
}

impl Live {
    /// The file's settings, in effect until stored ones are read.
    pub(crate) fn new(file: &PaymentConfig) -> Live {
        Live {
            effective: RwLock::new(Arc::new(Effective {
                config: file.clone(),
                stored: BTreeSet::new(),
                error: None,
            })),
            rows: RwLock::new(None),
            sealer: OnceLock::new(),
            bus: OnceLock::new(),
        }
    }

    /// What is in effect now.
    pub(crate) fn effective(&self) -> Arc<Effective> {
        match self.effective.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The sealer, or an error when this process was composed without one.
    pub(crate) fn sealer(&self) -> Result<&Sealer, String> {
        self.sealer
            .get()
            .ok_or_else(|| "payment settings cannot be stored in this process (no sealer)".into())
    }
}

/// `stored` with each secret field of `provider`'s section sealed (`null` stays `null`).
pub(crate) fn seal_section(
    sealer: &Sealer,
    provider: &str,
    mut section: Value,
    secrets: &[(&str, &str)],
) -> Result<Value, String> {
    if let Some(map) = section.as_object_mut() {
        for (field, plain) in secrets {
            let sealed = sealer
                .seal(plain, &owner(provider, field))
                .map_err(|e| e.message(skein_core::i18n::Lang::En).to_string())?;
            map.insert((*field).to_string(), Value::String(sealed));
        }
    }
    Ok(section)
}

/// A stored section with its secrets opened; `stale` is set when one was sealed under an
/// older key (or stored plain).
fn open_section(
    sealer: &Sealer,
    provider: &str,
    mut section: Value,
    stale: &mut bool,
) -> Result<Value, String> {
    if let Some(map) = section.as_object_mut() {
        for field in secret_fields(provider) {
            if let Some(Value::String(sealed)) = map.get(*field) {
                let opened = sealer.open(sealed, &owner(provider, field)).map_err(|e| {
                    format!(
                        "the stored {provider}.{field} does not open: {}",
                        e.message(skein_core::i18n::Lang::En)
                    )
                })?;
                *stale |= opened.stale;
                map.insert((*field).to_string(), Value::String(opened.plain));
            }
        }
    }
    Ok(section)
}

/// A provider section's secrets as `(field, plain)`, for sealing.
pub(crate) fn epay_secrets(c: &EpayConfig) -> Vec<(&'static str, &str)> {
    vec![("key", c.key.expose())]
}

/// See [`epay_secrets`].
pub(crate) fn stripe_secrets(c: &StripeConfig) -> Vec<(&'static str, &str)> {
    vec![
        ("secret_key", c.secret_key.expose()),
        ("webhook_secret", c.webhook_secret.expose()),
    ]
}

/// See [`epay_secrets`].
pub(crate) fn alipay_secrets(c: &AlipayConfig) -> Vec<(&'static str, &str)> {
    vec![("private_key", c.private_key.expose())]
}

/// See [`epay_secrets`].
pub(crate) fn wechat_secrets(c: &WechatConfig) -> Vec<(&'static str, &str)> {
    vec![
        ("private_key", c.private_key.expose()),
        ("apiv3_key", c.apiv3_key.expose()),
    ]
}

/// The JSON stored for a provider's section (`null`: turned off), its secrets sealed.
pub(crate) fn stored_section<T: serde::Serialize>(
    sealer: &Sealer,
    provider: &str,
    section: Option<&T>,
    secrets: impl FnOnce(&T) -> Vec<(&'static str, &str)>,
) -> Result<String, String> {
    let Some(section) = section else {
        return Ok("null".into());
    };
    // `Secret` serialises as a mask; the sealed values replace the masks.
    let value = serde_json::to_value(section).map_err(|e| e.to_string())?;
    Ok(seal_section(sealer, provider, value, &secrets(section))?.to_string())
}

fn parse<T: DeserializeOwned>(name: &str, value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("the stored {name} is unreadable: {e}"))
}

/// Each configured provider's whole section (secrets included, so a rotated key counts as
/// a change) as comparable text; kept in memory only, never logged.
fn fingerprints(c: &PaymentConfig) -> std::collections::BTreeMap<&'static str, String> {
    fn one<T: serde::Serialize>(section: &T, secrets: Vec<(&'static str, &str)>) -> String {
        format!(
            "{}{secrets:?}",
            serde_json::to_string(section).unwrap_or_default()
        )
    }
    let mut out = std::collections::BTreeMap::new();
    if let Some(s) = &c.epay {
        out.insert("epay", one(s, epay_secrets(s)));
    }
    if let Some(s) = &c.stripe {
        out.insert("stripe", one(s, stripe_secrets(s)));
    }
    if let Some(s) = &c.alipay {
        out.insert("alipay", one(s, alipay_secrets(s)));
    }
    if let Some(s) = &c.wechat {
        out.insert("wechat", one(s, wechat_secrets(s)));
    }
    out
}

/// `file` with the stored `rows` over it; `stale` is set when a secret should be sealed
/// again. Unknown names (a newer build's) are skipped.
pub(crate) fn overlay(
    file: &PaymentConfig,
    rows: &[(String, String)],
    sealer: Option<&Sealer>,
    stale: &mut bool,
) -> Result<(PaymentConfig, BTreeSet<String>), String> {
    let mut c = file.clone();
    let mut stored = BTreeSet::new();
    for (name, text) in rows {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("the stored {name} is not JSON: {e}"))?;
        let mut section = |provider: &str| -> Result<Option<Value>, String> {
            if value.is_null() {
                return Ok(None);
            }
            let sealer = sealer.ok_or("no sealer to open the stored provider secrets")?;
            open_section(sealer, provider, value.clone(), stale).map(Some)
        };
        match name.as_str() {
            "public_url" => c.public_url = parse(name, value.clone())?,
            "currency" => c.currency = parse(name, value.clone())?,
            "quota_per_unit" => c.quota_per_unit = parse(name, value.clone())?,
            "amounts" => c.amounts = parse(name, value.clone())?,
            "min_amount" => c.min_amount = parse(name, value.clone())?,
            "max_amount" => c.max_amount = parse(name, value.clone())?,
            "order_ttl_secs" => c.order_ttl_secs = parse(name, value.clone())?,
            "max_pending_orders" => c.max_pending_orders = parse(name, value.clone())?,
            "plan_reminder_days" => c.plan_reminder_days = parse(name, value.clone())?,
            "epay" => c.epay = section("epay")?.map(|v| parse(name, v)).transpose()?,
            "stripe" => c.stripe = section("stripe")?.map(|v| parse(name, v)).transpose()?,
            "alipay" => c.alipay = section("alipay")?.map(|v| parse(name, v)).transpose()?,
            "wechat" => c.wechat = section("wechat")?.map(|v| parse(name, v)).transpose()?,
            _ => continue,
        }
        stored.insert(name.clone());
    }
    Ok((c, stored))
}

impl BillingService {
    /// Gives the service the sealer of its stored secrets (composition time, before
    /// [`BillingService::load_payment_settings`]).
    pub fn use_sealer(&self, sealer: Sealer) {
        let _ = self.payment_settings.sealer.set(sealer);
    }

    /// Reads the stored payment settings and puts them in effect (at start-up, on a note
    /// from another instance, and every 30 s). Settings that cannot work (the file changed
    /// under them, a secret that does not open) are logged and the file's stay in effect.
    pub async fn load_payment_settings(&self) -> skein_core::ApiResult<()> {
        let rows = store::all(self.db.pool()).await?;
        let unchanged = self
            .payment_settings
            .rows
            .read()
            .is_ok_and(|last| last.as_ref() == Some(&rows));
        if unchanged {
            return Ok(());
        }
        let file = &self.config.payment;
        let mut stale = false;
        let effective = match overlay(file, &rows, self.payment_settings.sealer.get(), &mut stale) {
            Ok((config, stored)) => match config.problems().into_iter().next() {
                None => Effective {
                    config,
                    stored,
                    error: None,
                },
                Some(problem) => Effective {
                    config: file.clone(),
                    stored,
                    error: Some(format!("{}: {}", problem.field, problem.en)),
                },
            },
            Err(error) => Effective {
                config: file.clone(),
                stored: BTreeSet::new(),
                error: Some(error),
            },
        };
        if let Some(error) = &effective.error {
            tracing::error!(%error, "stored payment settings cannot be used; the file's are in effect");
        }
        self.install_payments(effective);
        if let Ok(mut last) = self.payment_settings.rows.write() {
            *last = Some(rows);
        }
        Ok(())
    }

    /// Puts `effective` in effect: a new set of providers for new orders, the ones it
    /// replaces kept for reconciling orders made under them.
    fn install_payments(&self, effective: Effective) {
        let mut next = Payments::new(
            effective.config.clone(),
            self.config.quota_per_usd,
            self.config.cny_per_usd,
        );
        let previous = self.any_payments();
        // Only a provider whose section changed is retired: one left as it was answers for
        // its orders as the provider in effect, and asking it twice would double every query.
        let before = fingerprints(&self.payment_settings.effective().config);
        let after = fingerprints(&effective.config);
        next.retired = previous
            .providers()
            .iter()
            .filter(|p| before.get(&p.name().as_str()) != after.get(&p.name().as_str()))
            .chain(previous.retired.iter())
            .take(RETIRED_KEPT)
            .cloned()
            .collect();
        if let Ok(mut payments) = self.payments.write() {
            *payments = Arc::new(next);
        }
        if let Ok(mut e) = self.payment_settings.effective.write() {
            *e = Arc::new(effective);
        }
    }

    /// The payment settings in effect and where they came from.
    pub(crate) fn payment_effective(&self) -> Arc<Effective> {
        self.payment_settings.effective()
    }

    /// The sealer of the providers' secrets.
    pub(crate) fn payment_sealer(&self) -> Result<&Sealer, String> {
        self.payment_settings.sealer()
    }

    /// Stores `writes` (`Some(json)`) and resets (`None`) in one transaction, puts the result
    /// in effect here and tells the other instances.
    pub(crate) async fn store_payment_settings(
        &self,
        writes: Vec<(&'static str, Option<String>)>,
        by: &str,
    ) -> skein_core::ApiResult<()> {
        let now = skein_core::ids::now_ms();
        let mut tx = self.db.begin_write().await?;
        for (name, value) in &writes {
            match value {
                Some(value) => store::put(&mut *tx, name, value, by, now).await?,
                None => store::delete(&mut *tx, name).await?,
            }
        }
        tx.commit().await.map_err(skein_db::DbError::from)?;
        self.load_payment_settings().await?;
        skein_core::bus::tell(
            self.payment_settings.bus.get(),
            &self.tasks,
            PAYMENT_SETTINGS_TOPIC,
            &"changed",
        );
        Ok(())
    }

    /// Joins the deployment's bus: another instance's change of the payment settings is read
    /// at once (and after a reconnection, when notes may have been missed).
    pub fn join_bus(self: &Arc<Self>, bus: Arc<dyn skein_core::bus::Bus>) {
        self.tasks.on_notes(
            "billing.payment_settings_bus",
            &bus,
            PAYMENT_SETTINGS_TOPIC,
            self,
            |svc, _note| async move {
                if let Err(error) = svc.load_payment_settings().await {
                    tracing::warn!(%error, "could not reload the payment settings");
                }
            },
        );
        let _ = self.payment_settings.bus.set(bus);
    }

    /// Seals every stored provider secret that is plain or sealed under an older key, under
    /// the current key (start-up, before the service answers); compare-and-set on each row,
    /// so two instances starting together lose nothing. Answers how many rows it rewrote.
    pub async fn seal_stored_payment_secrets(&self) -> skein_core::ApiResult<u64> {
        let Some(sealer) = self.payment_settings.sealer.get() else {
            return Ok(0);
        };
        let mut done = 0;
        for (name, text) in store::all(self.db.pool()).await? {
            if secret_fields(&name).is_empty() {
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let mut stale = false;
            let opened = match open_section(sealer, &name, value, &mut stale) {
                Ok(opened) => opened,
                Err(error) => {
                    tracing::error!(%error, "a stored payment secret cannot be opened; left as it is");
                    continue;
                }
            };
            if !stale {
                continue;
            }
            let plain: Vec<(String, String)> = secret_fields(&name)
                .iter()
                .filter_map(|f| {
                    opened
                        .get(*f)
                        .and_then(Value::as_str)
                        .map(|p| ((*f).to_string(), p.to_string()))
                })
                .collect();
            let secrets: Vec<(&str, &str)> = plain
                .iter()
                .map(|(f, p)| (f.as_str(), p.as_str()))
                .collect();
            let resealed = seal_section(sealer, &name, opened.clone(), &secrets)
                .map_err(skein_core::ApiError::internal)?;
            if store::replace(self.db.pool(), &name, &text, &resealed.to_string()).await? {
                done += 1;
            }
        }
        if done > 0 {
            tracing::info!(
                rows = done,
                key_id = sealer.key_id(),
                "stored payment secrets sealed under the current key"
            );
        }
        Ok(done)
    }
}

/// A secret typed in a form: left out keeps `kept`, `""` clears it, anything else replaces it.
pub(crate) fn typed_secret(typed: Option<String>, kept: Option<&Secret>) -> Secret {
    match typed {
        Some(text) => Secret::new(text.trim()),
        None => kept.cloned().unwrap_or_else(|| Secret::new("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(key: u8, previous: &[[u8; 32]]) -> Sealer {
        Sealer::derived(SEAL_LABEL, &[key; 32], previous)
    }

    fn epay(key: &str) -> EpayConfig {
        EpayConfig {
            url: "https://pay.example.com/".into(),
            pid: "1001".into(),
            key: Secret::new(key),
            methods: vec!["alipay".into()],
        }
    }

    #[test]
    fn a_stored_section_hides_its_secret_and_opens_over_the_file() {
        let s = sealer(1, &[]);
        let text = stored_section(&s, "epay", Some(&epay("merchant-key")), epay_secrets).unwrap();
        assert!(!text.contains("merchant-key"), "{text}");
        assert!(text.contains(skein_core::seal::SEALED_PREFIX));
        let rows = vec![
            ("epay".to_string(), text),
            ("min_amount".to_string(), "200".to_string()),
        ];
        let mut stale = false;
        let (c, stored) = overlay(&PaymentConfig::default(), &rows, Some(&s), &mut stale).unwrap();
        assert_eq!(c.epay.unwrap().key.expose(), "merchant-key");
        assert_eq!(c.min_amount, 200);
        assert_eq!(
            c.max_amount,
            PaymentConfig::default().max_amount,
            "the file's"
        );
        assert_eq!(stored.len(), 2);
        assert!(!stale);
    }

    #[test]
    fn a_rotated_secret_changes_the_fingerprint_and_nothing_else_does() {
        let with = |key: &str| PaymentConfig {
            epay: Some(epay(key)),
            ..PaymentConfig::default()
        };
        assert_eq!(fingerprints(&with("a")), fingerprints(&with("a")));
        assert_ne!(fingerprints(&with("a")), fingerprints(&with("b")));
        let other = PaymentConfig {
            min_amount: 500,
            ..with("a")
        };
        assert_eq!(fingerprints(&other), fingerprints(&with("a")));
    }

    #[test]
    fn a_null_section_turns_the_files_provider_off() {
        let file = PaymentConfig {
            epay: Some(epay("k")),
            ..PaymentConfig::default()
        };
        let mut stale = false;
        let rows = vec![("epay".to_string(), "null".to_string())];
        let (c, _) = overlay(&file, &rows, None, &mut stale).unwrap();
        assert!(c.epay.is_none());
    }

    #[test]
    fn a_secret_under_a_previous_key_opens_stale_and_a_moved_one_does_not_open() {
        let old = sealer(1, &[]);
        let text = stored_section(&old, "epay", Some(&epay("k1")), epay_secrets).unwrap();
        let rotated = sealer(2, &[[1; 32]]);
        let mut stale = false;
        let rows = vec![("epay".to_string(), text.clone())];
        let (c, _) = overlay(&PaymentConfig::default(), &rows, Some(&rotated), &mut stale).unwrap();
        assert_eq!(c.epay.unwrap().key.expose(), "k1");
        assert!(stale, "sealed under the previous key");
        // The same sealed value under another provider's name does not open.
        let moved = text.replace("\"key\"", "\"secret_key\"");
        let rows = vec![("stripe".to_string(), moved)];
        assert!(overlay(&PaymentConfig::default(), &rows, Some(&old), &mut stale).is_err());
    }
}
