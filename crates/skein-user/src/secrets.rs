//! The User service's secrets at rest: sign-in providers' client secrets (added through the
//! admin API), TOTP secrets, and the SMS vendor secret and LDAP service password an admin
//! stored are sealed ([`skein_core::seal::Sealer`], AES-256-GCM
//! under a key derived from `relay.secret_key`), each bound to its row, so a copy of the
//! database alone neither signs in as Skein at a provider nor makes anyone's second factor.
//!
//! Rows written before sealing (plain text) and rows sealed under a key listed in
//! `relay.previous_secret_keys` still open; [`UserService::seal_stored_secrets`] writes them
//! again under the current key at start-up, each with a compare-and-set so two instances
//! starting together cannot lose a value changed meanwhile.

use skein_core::seal::Sealer;
use skein_core::{ApiError, ApiResult};

use crate::UserService;
use crate::oauth::ProviderConfig;
use crate::store::accounts::{self, TotpRow};
use crate::store::oauth::{self as oauth_store, ProviderRow};

/// The purpose label the User service's sealing key is derived under.
pub const SEAL_LABEL: &str = "skein user secrets v1";

/// The owner a provider's client secret is sealed for.
fn provider_owner(slug: &str) -> String {
    format!("oauth_provider:{slug}")
}

/// The owner a user's TOTP secret is sealed for.
fn totp_owner(user_id: &str) -> String {
    format!("user_totp:{user_id}")
}

/// How many stored secrets a start-up converted, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Sign-in providers' client secrets.
    pub provider_secrets: u64,
    /// TOTP secrets.
    pub totp_secrets: u64,
    /// The SMS vendor's secret an admin stored.
    pub sms_secrets: u64,
    /// The LDAP service account's password an admin stored.
    pub ldap_secrets: u64,
}

impl UserService {
    /// The sealer (for the SMS code digests, which share its key).
    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// A provider's client secret as stored.
    pub(crate) fn seal_provider_secret(&self, slug: &str, plain: &str) -> ApiResult<String> {
        self.sealer.seal(plain, &provider_owner(slug))
    }

    /// A stored provider with its client secret opened; `None` for a kind this build does not
    /// know.
    pub(crate) fn open_provider(
        &self,
        mut row: ProviderRow,
    ) -> ApiResult<Option<(String, ProviderConfig)>> {
        row.client_secret = self
            .sealer
            .open(&row.client_secret, &provider_owner(&row.slug))?
            .plain;
        Ok(row.into_config())
    }

    /// `stored` with its vendor secret sealed (for the `sign_in.sms` row).
    pub(crate) fn seal_sms_secret(&self, stored: &mut crate::signin::StoredSms) -> ApiResult<()> {
        self.map_sms_secret(stored, |sealer, plain, owner| sealer.seal(plain, owner))
    }

    /// The LDAP service account's password as stored.
    pub(crate) fn seal_ldap_password(&self, plain: &str) -> Result<String, String> {
        self.sealer
            .seal(plain, crate::signin::LDAP_SECRET_OWNER)
            .map_err(|e| e.message(skein_core::i18n::Lang::En).to_string())
    }

    /// The LDAP service account's password as read from its row, opened.
    pub(crate) fn open_ldap_password(&self, sealed: &str) -> Result<String, String> {
        self.sealer
            .open(sealed, crate::signin::LDAP_SECRET_OWNER)
            .map(|o| o.plain)
            .map_err(|e| {
                format!(
                    "the LDAP password does not open: {}",
                    e.message(skein_core::i18n::Lang::En)
                )
            })
    }

    /// `stored` (as read from its row) with its vendor secret opened.
    pub(crate) fn open_sms_secret(
        &self,
        stored: &mut crate::signin::StoredSms,
    ) -> Result<(), String> {
        self.map_sms_secret(stored, |sealer, sealed, owner| {
            sealer.open(sealed, owner).map(|o| o.plain)
        })
        .map_err(|e| {
            format!(
                "the SMS secret does not open: {}",
                e.message(skein_core::i18n::Lang::En)
            )
        })
    }

    fn map_sms_secret(
        &self,
        stored: &mut crate::signin::StoredSms,
        f: impl Fn(&Sealer, &str, &str) -> ApiResult<String>,
    ) -> ApiResult<()> {
        let Some(kind) = stored.provider else {
            return Ok(());
        };
        let Some(field) = crate::signin::secret_field(kind) else {
            return Ok(());
        };
        let owner = crate::signin::sms_owner(kind);
        let Some(text) = stored.settings.get(field).and_then(|v| v.as_str()) else {
            return Ok(());
        };
        let next = f(&self.sealer, text, &owner)?;
        if let Some(map) = stored.settings.as_object_mut() {
            map.insert(field.into(), serde_json::Value::String(next));
        }
        Ok(())
    }

    /// Seals the stored SMS vendor secret again under the current key, if it is under an
    /// older one (compare-and-set on the row).
    async fn reseal_sms_secret(&self) -> ApiResult<u64> {
        let rows = crate::store::settings::settings(self.db.pool()).await?;
        let Some((_, json)) = rows.iter().find(|(n, _)| n == crate::signin::SMS) else {
            return Ok(0);
        };
        let Ok(mut stored) = serde_json::from_str::<crate::signin::StoredSms>(json) else {
            return Ok(0);
        };
        let current = stored
            .provider
            .and_then(crate::signin::secret_field)
            .and_then(|f| stored.settings.get(f))
            .and_then(|v| v.as_str())
            .is_none_or(|sealed| self.sealer.is_current(sealed));
        if current {
            return Ok(0);
        }
        if let Err(error) = self.open_sms_secret(&mut stored) {
            tracing::error!(%error, "the stored SMS secret cannot be opened; left as it is");
            return Ok(0);
        }
        self.seal_sms_secret(&mut stored)?;
        let next = serde_json::to_string(&stored).map_err(ApiError::internal)?;
        Ok(u64::from(
            crate::store::settings::replace_setting(
                self.db.pool(),
                crate::signin::SMS,
                json,
                &next,
            )
            .await?,
        ))
    }

    /// Seals the stored LDAP service password again under the current key, if it is under an
    /// older one (compare-and-set on the row).
    async fn reseal_ldap_password(&self) -> ApiResult<u64> {
        let rows = crate::store::settings::settings(self.db.pool()).await?;
        let Some((_, json)) = rows.iter().find(|(n, _)| n == crate::signin::LDAP) else {
            return Ok(0);
        };
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json) else {
            return Ok(0);
        };
        let Some(sealed) = value.get("bind_password").and_then(|v| v.as_str()) else {
            return Ok(0);
        };
        if self.sealer.is_current(sealed) {
            return Ok(0);
        }
        let resealed = match self
            .open_ldap_password(sealed)
            .and_then(|plain| self.seal_ldap_password(&plain))
        {
            Ok(resealed) => resealed,
            Err(error) => {
                tracing::error!(%error, "the stored LDAP password cannot be opened; left as it is");
                return Ok(0);
            }
        };
        if let Some(map) = value.as_object_mut() {
            map.insert("bind_password".into(), serde_json::Value::String(resealed));
        }
        Ok(u64::from(
            crate::store::settings::replace_setting(
                self.db.pool(),
                crate::signin::LDAP,
                json,
                &value.to_string(),
            )
            .await?,
        ))
    }

    /// A TOTP secret as stored.
    pub(crate) fn seal_totp_secret(&self, user_id: &str, plain: &str) -> ApiResult<String> {
        self.sealer.seal(plain, &totp_owner(user_id))
    }

    /// The user's TOTP state with its secret opened.
    pub(crate) async fn totp_row(&self, user_id: &str) -> ApiResult<Option<TotpRow>> {
        let Some(mut row) = accounts::totp_of(self.db.pool(), user_id).await? else {
            return Ok(None);
        };
        row.secret = self.sealer.open(&row.secret, &totp_owner(user_id))?.plain;
        Ok(Some(row))
    }

    /// Seals every stored secret that is plain text or sealed under an older key, under the
    /// current key. Runs at start-up, before the service answers; a value that does not open
    /// is left as it is (and logged), never dropped.
    pub async fn seal_stored_secrets(&self) -> ApiResult<Resealed> {
        let mut done = Resealed::default();
        for (slug, stored) in oauth_store::provider_secrets(self.db.pool()).await? {
            if self.sealer.is_current(&stored) {
                continue;
            }
            let owner = provider_owner(&slug);
            match self.sealer.open(&stored, &owner) {
                Ok(opened) => {
                    let sealed = self.sealer.seal(&opened.plain, &owner)?;
                    if oauth_store::replace_provider_secret(self.db.pool(), &slug, &stored, &sealed)
                        .await?
                    {
                        done.provider_secrets += 1;
                    }
                }
                Err(error) => {
                    tracing::error!(%slug, %error, "a sign-in provider's client secret cannot be opened; left as it is")
                }
            }
        }
        for (user_id, stored) in accounts::totp_secrets(self.db.pool()).await? {
            if self.sealer.is_current(&stored) {
                continue;
            }
            let owner = totp_owner(&user_id);
            match self.sealer.open(&stored, &owner) {
                Ok(opened) => {
                    let sealed = self.sealer.seal(&opened.plain, &owner)?;
                    if accounts::replace_totp_secret(self.db.pool(), &user_id, &stored, &sealed)
                        .await?
                    {
                        done.totp_secrets += 1;
                    }
                }
                Err(error) => {
                    tracing::error!(%user_id, %error, "a TOTP secret cannot be opened; left as it is")
                }
            }
        }
        done.sms_secrets += self.reseal_sms_secret().await?;
        done.ldap_secrets += self.reseal_ldap_password().await?;
        if done != Resealed::default() {
            tracing::info!(
                provider_secrets = done.provider_secrets,
                totp_secrets = done.totp_secrets,
                sms_secrets = done.sms_secrets,
                ldap_secrets = done.ldap_secrets,
                key_id = self.sealer.key_id(),
                "stored secrets sealed under the current key"
            );
        }
        Ok(done)
    }
}
