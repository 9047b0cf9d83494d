//! The user service's own error codes, one named constructor each, written once.

use std::time::Duration;

use axum::http::StatusCode;
use skein_core::ApiError;

use crate::passkey::PasskeyError;

// ---- registration -------------------------------------------------------------------------

/// 403 on the first registration without the setup token `skein serve` printed.
pub(crate) fn setup_token_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "setup_token_required",
        "This server has no account yet. The first account needs the setup token that `skein serve` printed to its log (line `setup token: ...`).",
        "本服务器还没有账号。创建第一个账号需要 `skein serve` 打印在日志中的安装令牌（`setup token: ...` 那一行）。",
    )
    .with_details(serde_json::json!({ "field": "setup_token" }))
}

/// 403 on a phone sign-up before the first (root) account exists.
pub(crate) fn setup_required_for_phone() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "setup_required",
        "This server has no account yet. Create the first (root) account with the setup token before signing up by phone.",
        "本服务器还没有账号。请先用安装令牌创建第一个（root）账号，再使用手机号注册。",
    )
}

/// 403 on a provider sign-up before the first (root) account exists.
pub(crate) fn setup_required_for_provider() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "setup_required",
        "This server has no account yet. Create the first (root) account with the setup token before signing in with a provider.",
        "本服务器还没有账号。请先用安装令牌创建第一个（root）账号，再使用第三方登录。",
    )
}

/// 403 on a password registration while an administrator has closed registration.
pub(crate) fn registration_closed() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "registration_closed",
        "Registration is closed on this server. Ask an administrator for an account.",
        "本站已关闭注册，请联系管理员开通账号。",
    )
}

/// 403 on a code sign-in for an unknown number while registration is closed.
pub(crate) fn registration_closed_for_phone() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "registration_closed",
        "Registration is closed on this server, and no account has this number. Ask an administrator for an account, then bind the number in your personal centre.",
        "本站已关闭注册，且没有账号绑定该手机号。请联系管理员开通账号，再在个人中心绑定手机号。",
    )
}

/// 403 on a provider sign-in linked to no account while registration is closed.
pub(crate) fn registration_closed_for_provider() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "registration_closed",
        "Registration is closed on this server, and this sign-in is not linked to an account. Ask an administrator for an account, then link the provider in your personal centre.",
        "本站已关闭注册，且该第三方账号未关联任何本站账号。请联系管理员开通账号，再在个人中心关联。",
    )
}

/// 422 for an invite code that cannot be redeemed (any registration path).
pub(crate) fn invalid_invite_code() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_invite_code",
        "The invite code is unknown, used up, expired or disabled.",
        "邀请码无效、已用完、已过期或已停用。",
    )
    .with_details(serde_json::json!({ "field": "invite_code" }))
}

/// 422 for a password or phone registration without a code while registration is by invite.
pub(crate) fn invite_code_required() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invite_code_required",
        "An invite code is required to register.",
        "注册需要邀请码。",
    )
    .with_details(serde_json::json!({ "field": "invite_code" }))
}

/// 422 for a provider registration without a code: the code is entered before the redirect.
pub(crate) fn invite_code_required_for_provider() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invite_code_required",
        "An invite code is required to register. Enter it on the sign-in page, then choose the provider again.",
        "注册需要邀请码。请在登录页填写邀请码后，再次选择第三方登录。",
    )
    .with_details(serde_json::json!({ "field": "invite_code" }))
}

// ---- signing in ---------------------------------------------------------------------------

/// 401 for a wrong name or password; it never says which, so accounts cannot be probed.
pub(crate) fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "The username/email or password is wrong.",
        "用户名/邮箱或密码错误。",
    )
}

/// 429 for an attempt that came before its wait was over.
pub(crate) fn login_locked(wait: Duration) -> ApiError {
    let wait = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login_locked",
        format!("Too many failed sign-in attempts. Try again in {wait} s."),
        format!("登录失败次数过多，请在 {wait} 秒后重试。"),
    )
    .with_retry_after(wait)
}

/// 401 for a refresh token that is unknown, expired or revoked.
pub(crate) fn invalid_refresh() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
        "The refresh token is invalid, expired or revoked. Sign in again.",
        "刷新令牌无效、已过期或已被撤销，请重新登录。",
    )
}

/// 401 for a refresh token used twice: a sign of theft, so its session was ended.
pub(crate) fn refresh_token_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
        "This refresh token was already used, so the session has been ended for safety. Sign in again.",
        "该刷新令牌已被使用过，为安全起见会话已被终止，请重新登录。",
    )
}

/// 403 for a sign-in to an unverified account while the server asks for verified email.
pub(crate) fn email_not_verified() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "email_not_verified",
        "Verify your email address first: open the link we mailed you, or ask for a new one.",
        "请先验证邮箱：打开我们发送给您的邮件中的链接，或重新申请验证邮件。",
    )
}

/// 403 for a phone sign-up while the server asks for a verified email to sign in.
pub(crate) fn email_not_verified_for_phone() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "email_not_verified",
        "This server needs a verified email address to sign in. Register with an email address, then bind your number.",
        "本服务器要求已验证的邮箱才能登录。请先用邮箱注册，再绑定手机号。",
    )
}

/// 403 for a provider sign-up that brought no verified address while the server asks for one.
pub(crate) fn email_not_verified_for_provider() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "email_not_verified",
        "This server needs a verified email address, and the provider gave none. Register with an email address instead.",
        "本服务器要求已验证的邮箱地址，但第三方登录服务未提供。请改用邮箱注册。",
    )
}

/// 403 for any sign-in to an account an administrator disabled.
pub(crate) fn account_disabled() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "account_disabled",
        "This account has been disabled. Contact an administrator.",
        "该账号已被停用，请联系管理员。",
    )
}

/// Password sign-in is off for plain users (Admin → Sign-in).
pub(crate) fn password_sign_in_off() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "password_sign_in_disabled",
        "Signing in with a password is turned off on this server. Use an SMS code, a passkey or a sign-in provider.",
        "本服务器已关闭密码登录，请使用短信验证码、通行密钥或第三方账号登录。",
    )
}

/// 403 for a cookie-authenticated request without the CSRF header a cross-site form cannot set.
pub(crate) fn csrf_header_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf_header_required",
        "Requests that use the session cookie must send the header X-Skein-CSRF: 1.",
        "使用会话 Cookie 的请求必须带有请求头 X-Skein-CSRF: 1。",
    )
}

// ---- two-factor sign-in -------------------------------------------------------------------

/// 409 for setting up two-factor sign-in while it is on: a second secret would orphan the first.
pub(crate) fn already_on() -> ApiError {
    ApiError::conflict(
        "two_factor_already_enabled",
        "Two-factor sign-in is on already. Turn it off first to set it up again.",
        "两步验证已开启。如需重新设置，请先关闭。",
    )
}

/// 401 for a wrong password when turning two-factor sign-in off.
pub(crate) fn wrong_password() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "wrong_password",
        "The password is wrong.",
        "密码错误。",
    )
}

/// 422 for a TOTP or recovery code that is wrong or spent.
pub(crate) fn wrong_code() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_code",
        "The code is wrong or was used already.",
        "验证码错误或已被使用。",
    )
    .with_details(serde_json::json!({ "field": "code" }))
}

/// 429 once an account has used up its wrong two-factor codes; `secs` until the next try.
pub(crate) fn too_many_wrong_codes(secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_wrong_codes",
        format!("Too many wrong codes. Try again in {secs} s."),
        format!("验证码错误次数过多，请在 {secs} 秒后重试。"),
    )
    .with_retry_after(secs)
}

/// 401 for a second sign-in step (two-factor or passkey) that is unknown, used or expired.
pub(crate) fn invalid_challenge() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_challenge",
        "This sign-in step is unknown, used or expired. Sign in again.",
        "登录步骤无效、已被使用或已过期，请重新登录。",
    )
}

// ---- phone --------------------------------------------------------------------------------

/// 503 for a phone route on a server with no SMS sender configured.
pub(crate) fn sms_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "sms_unavailable",
        "This server does not send SMS codes. Sign in another way, or ask an administrator.",
        "本服务器未配置短信验证码，请使用其他方式登录或联系管理员。",
    )
}

/// 503 while the SMS outbox is full: a burst must not queue codes without bound.
pub(crate) fn sms_busy() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "sms_busy",
        "Too many codes are waiting to be sent. Try again in a minute, or sign in another way.",
        "待发送的短信验证码过多，请稍后重试或使用其他方式登录。",
    )
    .with_retry_after(60)
}

/// 422 for an SMS code that is wrong, used or expired.
pub(crate) fn invalid_code() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_code",
        "The code is wrong, used or expired. Check it, or ask for a new one.",
        "验证码错误、已使用或已过期，请核对或重新获取。",
    )
    .with_details(serde_json::json!({ "field": "code" }))
}

/// 409 for binding a number another account has.
pub(crate) fn phone_taken() -> ApiError {
    ApiError::conflict(
        "phone_taken",
        "Another account has this phone number. Sign in to it with a code, or remove the number there first.",
        "该手机号已绑定其他账号。请用验证码登录该账号，或先在该账号中解绑。",
    )
}

/// Whole seconds to wait, at least one, as `Retry-After` carries them.
fn secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// 429 for asking for a code before the resend interval for the number is over.
pub(crate) fn code_sent_recently(wait: Duration) -> ApiError {
    let wait = secs(wait);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "code_sent_recently",
        format!("A code was just sent to this number. Ask for another in {wait} s."),
        format!("验证码刚刚已发送到该号码，请在 {wait} 秒后再试。"),
    )
    .with_retry_after(wait)
}

/// 429 once a number has had its codes for the period.
pub(crate) fn too_many_codes(wait: Duration) -> ApiError {
    let wait = secs(wait);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_codes",
        format!("Too many codes were sent to this number. Try again in {wait} s."),
        format!("该号码获取验证码次数过多，请在 {wait} 秒后再试。"),
    )
    .with_retry_after(wait)
}

// ---- email and password -------------------------------------------------------------------

/// 422 for asking for a verification mail on an account without an address.
pub(crate) fn no_email() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_email",
        "This account has no email address. Add one first.",
        "该账号没有邮箱地址，请先添加。",
    )
}

/// 401 for a wrong current password when changing the email address.
pub(crate) fn wrong_current_password() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "wrong_password",
        "The current password is wrong.",
        "当前密码错误。",
    )
}

/// 403 for a wrong current password when changing the password; `details` names the field.
pub(crate) fn password_change_wrong_current() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "wrong_password",
        "The current password is wrong.",
        "当前密码错误。",
    )
    .with_details(serde_json::json!({ "field": "current_password" }))
}

/// 429 once an account has changed its password too often; `wait` seconds until the next.
pub(crate) fn password_change_limited(wait: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "password_change_limited",
        format!("Too many password changes. Try again in {wait} s."),
        format!("修改密码过于频繁，请在 {wait} 秒后重试。"),
    )
    .with_retry_after(wait)
}

/// 503 for a route that sends mail on a server with no mail sender configured.
pub(crate) fn mail_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "mail_unavailable",
        "This server does not send mail. Ask an administrator.",
        "本服务器未配置邮件发送，请联系管理员。",
    )
}

/// 400 for a verification or reset link that is unknown, used or expired.
pub(crate) fn invalid_link() -> ApiError {
    ApiError::bad_request(
        "invalid_link",
        "This link is unknown, already used or expired. Ask for a new one.",
        "该链接无效、已被使用或已过期，请重新申请。",
    )
}

/// 429 once an account has asked for its mails for the hour.
pub(crate) fn too_many_mails() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_mails",
        "Too many mails were asked for this account. Try again in an hour.",
        "该账号申请的邮件过多，请一小时后再试。",
    )
    .with_retry_after(3600)
}

// ---- company directory (LDAP) -------------------------------------------------------------

/// 503 for an LDAP sign-in on a server with no directory configured.
pub(crate) fn ldap_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ldap_unavailable",
        "This server does not sign in with a company directory.",
        "本服务器未配置企业目录（LDAP）登录。",
    )
}

/// 403 for a directory account outside the groups allowed to use the server.
pub(crate) fn ldap_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "ldap_not_allowed",
        "Your directory account is not in a group allowed to use this server. Ask an administrator.",
        "您的目录账号不在允许使用本服务器的组中，请联系管理员。",
    )
}

/// 502 for a failed TLS handshake with the directory (most often an untrusted certificate).
pub(crate) fn ldap_tls() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "ldap_tls",
        "The TLS connection to the company directory failed (most often: its certificate is not trusted). An administrator can set its CA certificate in Admin → Sign-in.",
        "与企业目录的 TLS 连接失败（通常是其证书不受信任）。管理员可在“管理 → 登录设置”中配置其 CA 证书。",
    )
}

/// 502 for a directory that could not be reached.
pub(crate) fn ldap_unreachable() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "ldap_unreachable",
        "The company directory could not be reached. Try again in a minute.",
        "无法连接企业目录，请稍后重试。",
    )
}

// ---- sign-in providers (OAuth) ------------------------------------------------------------

/// 422 for provider settings an administrator saved that cannot work, with the reason.
pub(crate) fn invalid_provider(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_provider",
        format!("The provider's settings cannot work: {reason}."),
        format!("登录方式的设置无法使用：{reason}。"),
    )
}

/// 400 for a callback whose state is unknown, used, expired or from another browser.
pub(crate) fn state_invalid() -> ApiError {
    ApiError::bad_request(
        "oauth_state_invalid",
        "This sign-in is unknown, was used already, has expired, or was started in another browser. Start again.",
        "该登录请求无效、已被使用、已过期，或是在其他浏览器中发起的。请重新开始。",
    )
}

/// 409 for linking a provider account that another account here has linked.
pub(crate) fn identity_taken() -> ApiError {
    ApiError::conflict(
        "oauth_identity_taken",
        "This provider account is already linked to another account here.",
        "该第三方账号已关联到本站的其他账号。",
    )
}

/// 502: the provider could not be reached or answered something unusable.
pub(crate) fn provider_error(what: &str, reason: &str) -> ApiError {
    tracing::warn!(step = what, %reason, "OAuth provider call failed");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "oauth_provider_error",
        "The sign-in service did not answer as expected. Try again later.",
        "第三方登录服务未按预期响应，请稍后重试。",
    )
    .with_details(serde_json::json!({ "step": what, "reason": reason }))
}

/// 401: what the provider handed back does not prove who signed in (a bad ID token).
pub(crate) fn token_rejected(reason: &str) -> ApiError {
    tracing::warn!(%reason, "OAuth sign-in refused");
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "oauth_token_invalid",
        "The sign-in service's answer could not be verified. Start again.",
        "无法验证第三方登录服务的应答，请重新开始。",
    )
    .with_details(serde_json::json!({ "reason": reason }))
}

// ---- passkeys -----------------------------------------------------------------------------

/// 403 for a passkey route while an administrator has turned passkeys off.
pub(crate) fn passkeys_disabled() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "passkeys_disabled",
        "Passkeys are turned off on this server.",
        "本服务器已关闭通行密钥。",
    )
}

/// A passkey that failed verification: 422 while registering one, 401 while signing in.
pub(crate) fn passkey_invalid(status: StatusCode, e: PasskeyError) -> ApiError {
    ApiError::new(
        status,
        "passkey_invalid",
        "The passkey could not be verified. Try again, or sign in another way.",
        "通行密钥验证失败，请重试或使用其他方式登录。",
    )
    .with_details(serde_json::json!({ "reason": e.0 }))
}

// ---- profile and avatar -------------------------------------------------------------------

/// 403 for an administrator changing their own role or status: they could lock themselves out.
pub(crate) fn cannot_manage_self() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cannot_manage_self",
        "Use your own profile settings; admins cannot change their own role or status.",
        "管理员不能修改自己的角色或状态，请在个人设置中修改。",
    )
}

/// 422 for an avatar size outside what can be asked for.
pub(crate) fn size_refused() -> ApiError {
    let (low, high) = (
        crate::avatars::ASKABLE.start(),
        crate::avatars::ASKABLE.end(),
    );
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "avatar_size",
        format!(
            "The avatar size must be a whole number of pixels from {low} to {high}; it is served at 32, 64, 128 or 256."
        ),
        format!(
            "头像尺寸必须是 {low} 到 {high} 之间的整数像素；实际提供 32、64、128 或 256 像素。"
        ),
    )
}

/// 413 for an avatar upload over 5 MiB.
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "avatar_too_large",
        "The picture is over 5 MiB.",
        "图片超过 5 MiB。",
    )
}

/// 422 for an avatar upload that is no picture the decoder reads.
pub(crate) fn not_an_image() -> ApiError {
    ApiError::invalid_field(
        "file",
        "This is not a JPEG, PNG, WebP or GIF picture this server can read.",
        "这不是本服务器可读取的 JPEG、PNG、WebP 或 GIF 图片。",
    )
}
