//! The User service's secrets at rest: sign-in providers' client secrets (added through the
//! admin API) and TOTP secrets are stored sealed ([`skein_core::seal::Sealer`], AES-256-GCM
//! under a key derived from `relay.secret_key`), each bound to its row, so a copy of the
//! database alone neither signs in as Skein at a provider nor makes anyone's second factor.
//!
//! Rows written before sealing (plain text) and rows sealed under a key listed in
//! `relay.previous_secret_keys` still open; [`UserService::seal_stored_secrets`] writes them
//! again under the current key at start-up, each with a compare-and-set so two instances
//! starting together cannot lose a value changed meanwhile.

use skein_core::ApiResult;
use skein_core::seal::Sealer;

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
        if done != Resealed::default() {
            tracing::info!(
                provider_secrets = done.provider_secrets,
                totp_secrets = done.totp_secrets,
                key_id = self.sealer.key_id(),
                "stored secrets sealed under the current key"
            );
        }
        Ok(done)
    }
}
