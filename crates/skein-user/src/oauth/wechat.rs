//! WeChat website QR login (微信网站应用登录, scope `snsapi_login`): the QR page, then
//! `sns/oauth2/access_token` for the token and openid/unionid, and `sns/userinfo` for the
//! nickname. WeChat has no PKCE and no ID token; `state` is the only binding, and it is
//! checked before the code is used.
//! <https://developers.weixin.qq.com/doc/oplatform/Website_App/WeChat_Login/Wechat_Login.html>

use serde::Deserialize;
use skein_core::ApiError;

use super::{Attempt, ExternalIdentity, OAuthClient, Provider, with_query};
use crate::errors;

const AUTHORIZE_URL: &str = "https://open.weixin.qq.com/connect/qrconnect";
const API_URL: &str = "https://api.weixin.qq.com";

/// Both endpoints answer errors as `{"errcode": 40029, "errmsg": "invalid code"}` with 200.
#[derive(Deserialize)]
struct WechatToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    errcode: Option<i64>,
}

#[derive(Deserialize)]
struct WechatUser {
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    errcode: Option<i64>,
}

pub(super) fn authorize_url(
    provider: &Provider,
    attempt: &Attempt<'_>,
) -> Result<String, ApiError> {
    let scopes = provider.scopes("snsapi_login");
    let base = provider
        .config
        .authorize_url
        .as_deref()
        .unwrap_or(AUTHORIZE_URL);
    let mut url = with_query(
        base,
        &[
            ("appid", provider.config.client_id.as_str()),
            ("redirect_uri", attempt.redirect_uri),
            ("response_type", "code"),
            ("scope", &scopes),
            ("state", attempt.state),
        ],
    )?;
    // The documented URL ends with this fragment; the QR page needs it.
    url.set_fragment(Some("wechat_redirect"));
    Ok(url.into())
}

pub(super) async fn identify(
    client: &OAuthClient,
    provider: &Provider,
    code: &str,
) -> Result<ExternalIdentity, ApiError> {
    let api = provider
        .config
        .api_url
        .as_deref()
        .unwrap_or(API_URL)
        .trim_end_matches('/');
    let token_url = provider
        .config
        .token_url
        .clone()
        .unwrap_or_else(|| format!("{api}/sns/oauth2/access_token"));
    let url = with_query(
        &token_url,
        &[
            ("appid", provider.config.client_id.as_str()),
            ("secret", provider.secret().expose()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ],
    )?;
    let token: WechatToken = client.json(client.http.get(url), "token").await?;
    let (access, openid) = match (token.access_token, token.openid, token.errcode) {
        (Some(access), Some(openid), None | Some(0)) => (access, openid),
        (_, _, code) => {
            return Err(errors::provider_error(
                "token",
                &format!(
                    "WeChat refused the code (errcode {})",
                    code.unwrap_or_default()
                ),
            ));
        }
    };
    let url = with_query(
        &format!("{api}/sns/userinfo"),
        &[
            ("access_token", access.as_str()),
            ("openid", openid.as_str()),
            ("lang", "zh_CN"),
        ],
    )?;
    let user: WechatUser = client.json(client.http.get(url), "userinfo").await?;
    if user.errcode.is_some_and(|c| c != 0) || user.openid.as_deref() != Some(openid.as_str()) {
        return Err(errors::provider_error(
            "userinfo",
            "WeChat did not describe the signed-in user",
        ));
    }
    // The unionid is the same across an organisation's apps, so it survives a move from one
    // AppID to another; the openid is per app, the fallback when no unionid is given.
    let subject = user.unionid.or(token.unionid).unwrap_or(openid);
    Ok(ExternalIdentity {
        subject,
        email: None,
        email_verified: false,
        name: user.nickname.filter(|n| !n.trim().is_empty()),
        username: None,
    })
}
