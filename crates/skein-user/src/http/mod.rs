//! The User service's HTTP routes, grouped by who calls them.

mod admin;
mod audit;
mod auth;
mod avatar;
pub mod cookie;
mod email;
pub(crate) mod internal;
mod invites;
mod ldap;
mod ldap_admin;
mod oauth;
mod passkeys;
mod phone;
mod profile;
mod sessions;
mod settings;
mod signin;
mod twofactor;

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::UserService;
use crate::model::Profile;

/// Tokens answered by register, login and refresh.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque token for `POST /auth/refresh`; rotated on every use. Left out when the request
    /// sent `X-Skein-CSRF: 1` (the web app): then it is only in the `skein_refresh` cookie.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(required = false)]
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The signed-in user (register and login only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Profile>,
}

pub(crate) fn routes(service: Arc<UserService>) -> OpenApiRouter {
    OpenApiRouter::new()
        // Anyone.
        .routes(routes!(auth::setup_state))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(twofactor::login_second_factor))
        .routes(routes!(email::verify_email))
        .routes(routes!(email::forgot_password))
        .routes(routes!(email::reset_password))
        .routes(routes!(avatar::get_avatar))
        .routes(routes!(oauth::list_public_providers))
        .routes(routes!(oauth::start))
        .routes(routes!(oauth::callback))
        .routes(routes!(settings::public_settings))
        .routes(routes!(phone::phone_state))
        .routes(routes!(phone::send_sign_in_code))
        .routes(routes!(phone::phone_login))
        .routes(routes!(ldap::ldap_state))
        .routes(routes!(ldap::ldap_login))
        .routes(routes!(passkeys::sign_in_options))
        .routes(routes!(passkeys::passkey_login))
        .routes(routes!(passkeys::second_factor_options))
        .routes(routes!(passkeys::second_factor_passkey))
        // Signed-in users.
        .routes(routes!(profile::get_profile, profile::update_profile))
        .routes(routes!(profile::change_password))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(avatar::upload_avatar, avatar::delete_avatar))
                .layer(axum::extract::DefaultBodyLimit::max(
                    avatar::MAX_AVATAR_BYTES + 64 * 1024,
                )),
        )
        .routes(routes!(email::change_email))
        .routes(routes!(email::resend_verification))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::revoke_session))
        .routes(routes!(sessions::revoke_other_sessions))
        .routes(routes!(twofactor::status))
        .routes(routes!(twofactor::setup))
        .routes(routes!(twofactor::enable))
        .routes(routes!(twofactor::disable))
        .routes(routes!(invites::list_own_codes, invites::create_own_code))
        .routes(routes!(invites::list_invitees))
        .routes(routes!(oauth::list_identities))
        .routes(routes!(oauth::unlink_identity))
        .routes(routes!(
            settings::get_preferences,
            settings::update_preferences
        ))
        .routes(routes!(phone::send_bind_code))
        .routes(routes!(phone::bind_phone, phone::unbind_phone))
        .routes(routes!(passkeys::list_passkeys, passkeys::add_passkey))
        .routes(routes!(passkeys::registration_options))
        .routes(routes!(passkeys::delete_passkey))
        // Admins.
        .routes(routes!(admin::list_users))
        .routes(routes!(admin::get_user, admin::update_user))
        .routes(routes!(admin::reset_user_password))
        .routes(routes!(audit::list_audit))
        .routes(routes!(
            settings::admin_get_settings,
            settings::admin_update_settings
        ))
        .routes(routes!(
            signin::admin_get_sign_in,
            signin::admin_update_sign_in
        ))
        .routes(routes!(ldap_admin::admin_test_ldap))
        .routes(routes!(
            invites::admin_list_codes,
            invites::admin_create_codes
        ))
        .routes(routes!(invites::admin_update_code))
        .routes(routes!(
            oauth::admin_list_providers,
            oauth::admin_create_provider
        ))
        .routes(routes!(
            oauth::admin_update_provider,
            oauth::admin_delete_provider
        ))
        .with_state(service)
}
