//! Sign-in with other services, end to end through the real server.
//!
//! OpenID Connect runs against a real provider on loopback: npm's `oauth2-mock-server`, which
//! `scripts/test` installs and starts (`scripts/oidc-mock.mjs`) and exports as
//! `SKEIN_TEST_OIDC_URL`. It serves discovery and JWKS, checks PKCE and signs RS256 ID tokens
//! carrying our nonce; the person signing in is chosen with `login_hint`, and the client id
//! `skein-other-audience` gets tokens for another audience. GitHub and WeChat run against the
//! small fakes in `skein_testkit::mock_oauth`.
//!
//! A "browser" here is a reqwest client that keeps the `skein_oauth` cookie and does not follow
//! redirects, so each hop (Skein -> provider -> callback page -> Skein) is visible.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use skein::config::Config;
use skein_core::secret::Secret;
use skein_testkit::mock_oauth::{FakePerson, MockOAuth};
use skein_testkit::{PASSWORD, Resp, TestApp, on_both_backends};
use skein_user::oauth::{ProviderConfig, ProviderKind};

/// The OIDC provider's issuer, when `scripts/test` started it.
fn oidc_url() -> Option<String> {
    std::env::var("SKEIN_TEST_OIDC_URL").ok()
}

/// Skips (loudly) a test that needs the OIDC provider when it is not running.
macro_rules! need_oidc {
    () => {
        match oidc_url() {
            Some(found) => found,
            None => {
                eprintln!("SKEIN_TEST_OIDC_URL is not set: OIDC is not tested (scripts/test starts oauth2-mock-server)");
                return;
            }
        }
    };
}

const PUBLIC_URL: &str = "http://skein.test";

fn provider(kind: ProviderKind, client_id: &str) -> ProviderConfig {
    ProviderConfig {
        kind,
        display_name: None,
        client_id: client_id.into(),
        client_secret: Secret::new("provider-secret-7d1"),
        issuer: None,
        tenant: None,
        scopes: None,
        authorize_url: None,
        token_url: None,
        api_url: None,
        link_by_email: false,
        enabled: true,
    }
}

/// `[oauth]` with the OIDC provider as `corp` (client `skein`).
fn with_corp(c: &mut Config, issuer: &str) {
    c.oauth.public_url = Some(PUBLIC_URL.into());
    let mut corp = provider(ProviderKind::Oidc, "skein");
    corp.display_name = Some("Corp SSO".into());
    corp.issuer = Some(issuer.into());
    c.oauth.providers.insert("corp".into(), corp);
}

/// A browser: its own `skein_oauth` cookie, no redirects followed.
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
    /// `Accept-Language` sent to Skein.
    lang: &'static str,
}

/// One started sign-in as the provider sees it.
struct Started {
    authorize_url: String,
    state: String,
    nonce: String,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            lang: "en",
        }
    }

    fn chinese() -> Browser {
        Browser {
            lang: "zh-CN",
            ..Browser::new()
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Resp {
        let req = req.header("accept-language", self.lang);
        let req = match &self.cookie {
            Some(c) => req.header(COOKIE, format!("skein_oauth={c}")),
            None => req,
        };
        let res = req.send().await.unwrap();
        for value in res.headers().get_all(SET_COOKIE) {
            let v = value.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("skein_oauth=") {
                self.cookie = Some(rest.split(';').next().unwrap().to_string());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Resp {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
            text,
        }
    }

    /// `POST /auth/oauth/{slug}/start`.
    async fn start(&mut self, app: &TestApp, slug: &str, body: Value, token: Option<&str>) -> Resp {
        let mut req = self
            .http
            .post(app.url(&format!("/api/v1/auth/oauth/{slug}/start")))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// Starts and answers what the provider was asked.
    async fn begin(
        &mut self,
        app: &TestApp,
        slug: &str,
        body: Value,
        token: Option<&str>,
    ) -> Started {
        let r = self.start(app, slug, body, token).await;
        assert_eq!(r.status, StatusCode::OK, "start: {}", r.text);
        assert_eq!(
            r.json["redirect_uri"],
            format!("{PUBLIC_URL}/oauth/callback/{slug}"),
            "the redirect URI is built from the configured base URL"
        );
        let authorize_url = r.json["authorize_url"].as_str().unwrap().to_string();
        let url = reqwest::Url::parse(&authorize_url).unwrap();
        let q = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            q("redirect_uri"),
            format!("{PUBLIC_URL}/oauth/callback/{slug}")
        );
        Started {
            state: q("state"),
            nonce: q("nonce"),
            authorize_url,
        }
    }

    /// The person `who` approves at the provider: answers `(code, state)` from its redirect.
    async fn approve(&self, authorize_url: &str, who: Option<&str>) -> (String, String) {
        let mut url = reqwest::Url::parse(authorize_url).unwrap();
        if let Some(who) = who {
            url.query_pairs_mut().append_pair("login_hint", who);
        }
        let res = self.http.get(url).send().await.unwrap();
        assert!(
            res.status().is_redirection(),
            "provider answered {}",
            res.status()
        );
        let location = res.headers()[LOCATION].to_str().unwrap().to_string();
        assert!(
            location.starts_with(&format!("{PUBLIC_URL}/oauth/callback/")),
            "{location}"
        );
        let back = reqwest::Url::parse(&location).unwrap();
        let q = |name: &str| {
            back.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        (q("code"), q("state"))
    }

    /// What the callback page posts.
    async fn callback(&mut self, app: &TestApp, slug: &str, code: &str, state: &str) -> Resp {
        let req = self
            .http
            .post(app.url(&format!("/api/v1/auth/oauth/{slug}/callback")))
            .header("x-skein-csrf", "1")
            .json(&json!({"code": code, "state": state}));
        self.send(req).await
    }

    /// A whole sign-in as `who`.
    async fn sign_in(&mut self, app: &TestApp, slug: &str, who: Option<&str>, body: Value) -> Resp {
        let started = self.begin(app, slug, body, None).await;
        let (code, state) = self.approve(&started.authorize_url, who).await;
        assert_eq!(state, started.state, "the provider echoes the state");
        self.callback(app, slug, &code, &state).await
    }
}

async fn user_count(app: &TestApp, admin: &str) -> u64 {
    let r = app
        .get("/api/v1/admin/users?per_page=100", Some(admin))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["total"].as_u64().unwrap()
}

on_both_backends! {
    async fn oidc_first_sign_in_creates_the_account_and_the_second_reaches_it(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| with_corp(c, &issuer)).await;
        let root = app.root().await;

        let buttons = app.get("/api/v1/auth/oauth/providers", None).await;
        assert_eq!(buttons.json["items"], json!([{"slug": "corp", "kind": "oidc", "name": "Corp SSO"}]));

        let mut browser = Browser::new();
        let started = browser.begin(&app, "corp", json!({}), None).await;
        assert!(started.authorize_url.starts_with(&format!("{issuer}/authorize?")), "{}", started.authorize_url);
        for needed in ["code_challenge_method=S256", "code_challenge=", "nonce=", "scope=openid"] {
            assert!(started.authorize_url.contains(needed), "{needed} in {}", started.authorize_url);
        }
        assert!(browser.cookie.is_some(), "start binds the browser with a cookie");
        let (code, state) = browser.approve(&started.authorize_url, Some("alice@corp.test")).await;
        let first = browser.callback(&app, "corp", &code, &state).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert!(first.json["access_token"].is_string(), "{}", first.text);
        assert!(first.headers.get_all(SET_COOKIE).iter().any(|v| v.to_str().unwrap().starts_with("skein_refresh=")));
        let user = &first.json["user"];
        assert_eq!(user["email"], "alice@corp.test", "the provider's verified address is the account's");
        assert_eq!(user["role"], "user");
        let access = first.json["access_token"].as_str().unwrap();
        let me = app.get("/api/v1/user/profile", Some(access)).await;
        assert_eq!(me.json["id"], user["id"]);
        assert_eq!(me.json["email_verified"], true, "{}", me.text);
        let linked = app.get("/api/v1/user/oauth/identities", Some(access)).await;
        assert_eq!(linked.json["items"][0]["provider"], "corp");
        assert_eq!(linked.json["items"][0]["provider_name"], "Corp SSO");
        assert_eq!(linked.json["password_login"], false);
        // It has no password anyone knows: password sign-in with its username fails cleanly.
        let username = user["username"].as_str().unwrap();
        let pw = app.post("/api/v1/auth/login", None, json!({"login": username, "password": PASSWORD})).await;
        assert_eq!(pw.status, StatusCode::UNAUTHORIZED, "{}", pw.text);

        let again = Browser::new().sign_in(&app, "corp", Some("alice@corp.test"), json!({})).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        assert_eq!(again.json["user"]["id"], user["id"], "a second sign-in reaches the same account");
        let other = Browser::new().sign_in(&app, "corp", Some("bob@corp.test"), json!({})).await;
        assert_eq!(other.status, StatusCode::OK, "{}", other.text);
        assert_ne!(other.json["user"]["id"], user["id"], "another person gets another account");
        assert_eq!(user_count(&app, &root.access).await, 3);
    }

    async fn oidc_state_must_match_be_fresh_and_come_from_the_same_browser(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| with_corp(c, &issuer)).await;
        let root = app.root().await;
        let mut browser = Browser::new();
        let started = browser.begin(&app, "corp", json!({}), None).await;
        let (code, state) = browser.approve(&started.authorize_url, Some("carol@corp.test")).await;

        let forged = browser.callback(&app, "corp", &code, "not-the-state-we-sent").await;
        assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{}", forged.text);
        assert_eq!(forged.error_code(), "oauth_state_invalid");
        let zh = Browser::chinese().callback(&app, "corp", &code, &state).await;
        assert!(zh.text.contains("重新开始"), "{}", zh.text);

        // The right state from another browser (an attacker who got the link) is refused too.
        let mut elsewhere = Browser::new();
        elsewhere.start(&app, "corp", json!({}), None).await;
        let stolen = elsewhere.callback(&app, "corp", &code, &state).await;
        assert_eq!(stolen.error_code(), "oauth_state_invalid", "{}", stolen.text);
        let no_cookie = Browser::new().callback(&app, "corp", &code, &state).await;
        assert_eq!(no_cookie.error_code(), "oauth_state_invalid", "{}", no_cookie.text);
        assert_eq!(user_count(&app, &root.access).await, 1, "no account was made");

        // Those refusals did not spend it: its own browser still finishes, once.
        let ok = browser.callback(&app, "corp", &code, &state).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        let replay = browser.callback(&app, "corp", &code, &state).await;
        assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text);
        assert_eq!(replay.error_code(), "oauth_state_invalid");
    }

    async fn oidc_id_token_for_another_audience_is_refused(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| {
            with_corp(c, &issuer);
            let mut other = provider(ProviderKind::Oidc, "skein-other-audience");
            other.issuer = Some(issuer.clone());
            c.oauth.providers.insert("stranger".into(), other);
        })
        .await;
        let root = app.root().await;
        let r = Browser::new().sign_in(&app, "stranger", Some("dave@corp.test"), json!({})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.error_code(), "oauth_token_invalid");
        assert_eq!(r.json["error"]["details"]["reason"], "the ID token is for another audience", "{}", r.text);
        assert!(!r.text.contains("eyJ"), "no token is echoed: {}", r.text);
        assert_eq!(user_count(&app, &root.access).await, 1);
    }

    async fn oidc_replayed_nonce_is_refused(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| with_corp(c, &issuer)).await;
        app.root().await;
        let mut browser = Browser::new();
        let first = browser.begin(&app, "corp", json!({}), None).await;
        let (code, state) = browser.approve(&first.authorize_url, Some("erin@corp.test")).await;
        let ok = browser.callback(&app, "corp", &code, &state).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

        // A new sign-in, whose authorization response carries an ID token minted for the old
        // nonce (an attacker replaying what they captured of the first).
        let second = browser.begin(&app, "corp", json!({}), None).await;
        assert_ne!(second.nonce, first.nonce);
        let replayed = second.authorize_url.replace(&format!("nonce={}", second.nonce), &format!("nonce={}", first.nonce));
        let (code, state) = browser.approve(&replayed, Some("erin@corp.test")).await;
        let r = browser.callback(&app, "corp", &code, &state).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.json["error"]["details"]["reason"], "the ID token's nonce is not this sign-in's", "{}", r.text);
    }

    async fn oidc_respects_invite_only_and_closed_registration(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| {
            with_corp(c, &issuer);
            c.registration.invite_required = true;
        })
        .await;
        let root = app.root().await;
        let refused = Browser::new().sign_in(&app, "corp", Some("frank@corp.test"), json!({})).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text);
        assert_eq!(refused.error_code(), "invite_code_required");
        assert!(refused.text.contains("invite code is required"), "{}", refused.text);
        let zh = Browser::chinese().sign_in(&app, "corp", Some("frank@corp.test"), json!({})).await;
        assert!(zh.text.contains("注册需要邀请码"), "and in Chinese: {}", zh.text);
        let bad = Browser::new().sign_in(&app, "corp", Some("frank@corp.test"), json!({"invite_code": "NOPE-NOPE"})).await;
        assert_eq!(bad.error_code(), "invalid_invite_code", "{}", bad.text);
        assert_eq!(user_count(&app, &root.access).await, 1);

        let codes = app.post("/api/v1/admin/invite-codes", Some(&root.access), json!({"count": 1, "max_uses": 1})).await;
        assert_eq!(codes.status, StatusCode::CREATED, "{}", codes.text);
        let code = codes.json[0]["code"].as_str().unwrap();
        let ok = Browser::new().sign_in(&app, "corp", Some("frank@corp.test"), json!({"invite_code": code})).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        let frank = ok.json["user"]["id"].as_str().unwrap();
        let shown = app.get(&format!("/api/v1/admin/users/{frank}"), Some(&root.access)).await;
        assert_eq!(shown.json["invited_by"], json!(root.id), "{}", shown.text);
        // Signing in again needs no invite: the account exists.
        let again = Browser::new().sign_in(&app, "corp", Some("frank@corp.test"), json!({})).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);

        let closed = TestApp::spawn_with(backend, |c| {
            with_corp(c, &issuer);
            c.registration.enabled = false;
        })
        .await;
        closed.root().await;
        let r = Browser::new().sign_in(&closed, "corp", Some("gina@corp.test"), json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(r.error_code(), "registration_closed");
    }

    async fn oidc_link_and_unlink_from_the_personal_centre(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| with_corp(c, &issuer)).await;
        app.root().await;
        let hana = app.register("hana").await;

        // Linking needs a signed-in user.
        let anonymous = Browser::new().start(&app, "corp", json!({"link": true}), None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{}", anonymous.text);

        let mut browser = Browser::new();
        let started = browser.begin(&app, "corp", json!({"link": true}), Some(&hana.access)).await;
        let (code, state) = browser.approve(&started.authorize_url, Some("hana.work@corp.test")).await;
        let linked = browser.callback(&app, "corp", &code, &state).await;
        assert_eq!(linked.status, StatusCode::OK, "{}", linked.text);
        assert_eq!(linked.json["linked"]["provider"], "corp");
        assert!(linked.json.get("access_token").is_none(), "a link signs nobody in");
        let list = app.get("/api/v1/user/oauth/identities", Some(&hana.access)).await;
        assert_eq!(list.json["items"].as_array().unwrap().len(), 1);
        assert_eq!(list.json["password_login"], true);
        let identity = list.json["items"][0]["id"].as_str().unwrap().to_string();

        // Signing in with it reaches hana's account.
        let via = Browser::new().sign_in(&app, "corp", Some("hana.work@corp.test"), json!({})).await;
        assert_eq!(via.status, StatusCode::OK, "{}", via.text);
        assert_eq!(via.json["user"]["id"], json!(hana.id));

        // Another account cannot take the same identity.
        let ivan = app.register("ivan").await;
        let mut b = Browser::new();
        let s = b.begin(&app, "corp", json!({"link": true}), Some(&ivan.access)).await;
        let (code, state) = b.approve(&s.authorize_url, Some("hana.work@corp.test")).await;
        let taken = b.callback(&app, "corp", &code, &state).await;
        assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
        assert_eq!(taken.error_code(), "oauth_identity_taken");

        // Nobody else can unlink it; hana can (she still has her password).
        let not_theirs = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/oauth/identities/{identity}"), Some(&ivan.access), None).await;
        assert_eq!(not_theirs.status, StatusCode::NOT_FOUND, "{}", not_theirs.text);
        let gone = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/oauth/identities/{identity}"), Some(&hana.access), None).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
        let list = app.get("/api/v1/user/oauth/identities", Some(&hana.access)).await;
        assert_eq!(list.json["items"], json!([]));
        app.login("hana", PASSWORD).await;

        // An account made by a provider cannot drop its only way in.
        let made = Browser::new().sign_in(&app, "corp", Some("jo@corp.test"), json!({})).await;
        let jo = made.json["access_token"].as_str().unwrap();
        let only = app.get("/api/v1/user/oauth/identities", Some(jo)).await;
        let only_id = only.json["items"][0]["id"].as_str().unwrap();
        let refused = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/oauth/identities/{only_id}"), Some(jo), None).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
        assert_eq!(refused.error_code(), "last_sign_in_method");
        assert!(refused.text.contains("only way to sign in"), "{}", refused.text);

        // Its first password needs no current one (there is none); then the provider can go.
        let username = made.json["user"]["username"].as_str().unwrap().to_string();
        let set = app.put("/api/v1/user/password", Some(jo), json!({"current_password": "", "new_password": "jo's new passphrase"})).await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
        let jo = app.login(&username, "jo's new passphrase").await;
        let again = app.put("/api/v1/user/password", Some(&jo.access), json!({"current_password": "", "new_password": "another passphrase"})).await;
        assert_eq!(again.status, StatusCode::FORBIDDEN, "once set, the current password is asked: {}", again.text);
        let dropped = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/oauth/identities/{only_id}"), Some(&jo.access), None).await;
        assert_eq!(dropped.status, StatusCode::NO_CONTENT, "{}", dropped.text);
    }

    async fn oidc_sign_in_still_asks_for_the_second_factor(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| with_corp(c, &issuer)).await;
        app.root().await;
        let kim = app.register("kim").await;
        let mut b = Browser::new();
        let s = b.begin(&app, "corp", json!({"link": true}), Some(&kim.access)).await;
        let (code, state) = b.approve(&s.authorize_url, Some("kim@corp.test")).await;
        assert_eq!(b.callback(&app, "corp", &code, &state).await.status, StatusCode::OK);
        let setup = app.post("/api/v1/user/2fa/totp/setup", Some(&kim.access), json!({"password": PASSWORD})).await;
        let secret = setup.json["secret"].as_str().unwrap().to_string();
        let step = skein_core::ids::now_ms() / 1000 / 30;
        let on = app.post("/api/v1/user/2fa/totp/enable", Some(&kim.access), json!({"code": skein_user::totp::code_at(&secret, step).unwrap()})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);

        let r = Browser::new().sign_in(&app, "corp", Some("kim@corp.test"), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["two_factor_required"], true, "{}", r.text);
        assert!(r.json.get("access_token").is_none(), "no tokens before the second factor");
        let recovery = on.json["recovery_codes"][0].as_str().unwrap();
        let done = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": r.json["challenge"], "code": recovery})).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert_eq!(done.json["user"]["id"], json!(kim.id));
    }

    async fn oidc_joins_an_existing_account_by_address_only_when_allowed_and_verified(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| {
            with_corp(c, &issuer);
            let mut joins = provider(ProviderKind::Oidc, "skein");
            joins.issuer = Some(issuer.clone());
            joins.link_by_email = true;
            c.oauth.providers.insert("joins".into(), joins.clone());
            c.oauth.providers.insert("joinstoo".into(), joins);
            let mut strict = provider(ProviderKind::Oidc, "skein");
            strict.issuer = Some(issuer.clone());
            c.oauth.providers.insert("strict".into(), strict);
        })
        .await;
        let root = app.root().await;
        // An account whose address the provider verified (made through `corp`).
        let made = Browser::new().sign_in(&app, "corp", Some("lee@corp.test"), json!({})).await;
        let lee = made.json["user"]["id"].clone();
        // A provider allowed to join by address reaches it.
        let joined = Browser::new().sign_in(&app, "joins", Some("lee@corp.test"), json!({})).await;
        assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
        assert_eq!(joined.json["user"]["id"], lee);
        // One that is not says so, and makes nothing.
        let strict = Browser::new().sign_in(&app, "strict", Some("lee@corp.test"), json!({})).await;
        assert_eq!(strict.status, StatusCode::CONFLICT, "{}", strict.text);
        assert_eq!(strict.error_code(), "oauth_email_taken");

        // An account registered with an address it never proved is not joined, even where
        // joining is allowed: whoever typed the address may not own it.
        app.post("/api/v1/auth/register", None, json!({"username": "squatter", "email": "mia@corp.test", "password": PASSWORD})).await;
        let before = user_count(&app, &root.access).await;
        let r = Browser::new().sign_in(&app, "joins", Some("mia@corp.test"), json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.error_code(), "oauth_email_taken");
        assert_eq!(user_count(&app, &root.access).await, before);

        // An administrator's account is never joined by address, verified or not.
        let r = app.patch(&format!("/api/v1/admin/users/{}", lee.as_str().unwrap()), Some(&root.access), json!({"role": "admin"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = Browser::new().sign_in(&app, "joinstoo", Some("lee@corp.test"), json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.error_code(), "oauth_email_taken");
    }

    async fn github_sign_in_against_a_faithful_fake(backend) {
        let github = MockOAuth::github("gh-client", "gh-secret").await;
        let base = github.base.clone();
        let app = TestApp::spawn_with(backend, |c| {
            c.oauth.public_url = Some(PUBLIC_URL.into());
            let mut gh = provider(ProviderKind::Github, "gh-client");
            gh.client_secret = Secret::new("gh-secret");
            gh.authorize_url = Some(format!("{base}/login/oauth/authorize"));
            gh.token_url = Some(format!("{base}/login/oauth/access_token"));
            gh.api_url = Some(base.clone());
            c.oauth.providers.insert("github".into(), gh);
        })
        .await;
        app.root().await;
        github.sign_in_as(FakePerson {
            id: "583231".into(),
            login: "octocat".into(),
            emails: vec![
                ("octo@old.test".into(), false, true),
                ("octocat@github.test".into(), true, true),
            ],
            unionid: None,
        });
        let mut b = Browser::new();
        let first = b.sign_in(&app, "github", None, json!({})).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert_eq!(first.json["user"]["username"], "octocat");
        assert_eq!(first.json["user"]["email"], "octocat@github.test", "the primary verified address");
        assert_eq!(first.json["user"]["display_name"], "OCTOCAT");
        let sent = &github.token_requests()[0];
        assert_eq!(sent["redirect_uri"], format!("{PUBLIC_URL}/oauth/callback/github"));
        assert!(sent.contains_key("code_verifier"), "PKCE verifier sent: {sent:?}");

        let again = Browser::new().sign_in(&app, "github", None, json!({})).await;
        assert_eq!(again.json["user"]["id"], first.json["user"]["id"], "{}", again.text);

        // A wrong client secret: GitHub's 200-with-error answer becomes a clear 502.
        let broken = TestApp::spawn_with(backend, |c| {
            c.oauth.public_url = Some(PUBLIC_URL.into());
            let mut gh = provider(ProviderKind::Github, "gh-client");
            gh.authorize_url = Some(format!("{base}/login/oauth/authorize"));
            gh.token_url = Some(format!("{base}/login/oauth/access_token"));
            gh.api_url = Some(base.clone());
            c.oauth.providers.insert("github".into(), gh);
        })
        .await;
        broken.root().await;
        let r = Browser::new().sign_in(&broken, "github", None, json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert_eq!(r.error_code(), "oauth_provider_error");
        assert!(r.text.contains("incorrect_client_credentials"), "{}", r.text);
        assert!(!r.text.contains("provider-secret"), "{}", r.text);
    }

    async fn wechat_qr_sign_in_against_a_faithful_fake(backend) {
        let wechat = MockOAuth::wechat("wx4f1a2b3c", "wx-app-secret").await;
        let base = wechat.base.clone();
        let app = TestApp::spawn_with(backend, |c| {
            c.oauth.public_url = Some(PUBLIC_URL.into());
            let mut wx = provider(ProviderKind::Wechat, "wx4f1a2b3c");
            wx.client_secret = Secret::new("wx-app-secret");
            wx.authorize_url = Some(format!("{base}/connect/qrconnect"));
            wx.api_url = Some(base.clone());
            c.oauth.providers.insert("wechat".into(), wx);
        })
        .await;
        app.root().await;
        wechat.sign_in_as(FakePerson {
            id: "o6_bmjrPTlm6_2sgVt7hMZOPfL2M".into(),
            login: "小明".into(),
            emails: vec![],
            unionid: Some("o6_bmasdasdsad6_2sgVt7hMZOPfL".into()),
        });
        let mut b = Browser::new();
        let started = b.begin(&app, "wechat", json!({}), None).await;
        assert!(started.authorize_url.contains("scope=snsapi_login"), "{}", started.authorize_url);
        assert!(started.authorize_url.ends_with("#wechat_redirect"), "{}", started.authorize_url);
        let (code, state) = b.approve(&started.authorize_url, None).await;
        let first = b.callback(&app, "wechat", &code, &state).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert_eq!(first.json["user"]["display_name"], "小明");
        assert!(first.json["user"]["username"].as_str().unwrap().starts_with("wechat_"), "{}", first.text);
        assert_eq!(first.json["user"]["email"], Value::Null);
        let again = Browser::new().sign_in(&app, "wechat", None, json!({})).await;
        assert_eq!(again.json["user"]["id"], first.json["user"]["id"], "{}", again.text);
        // A code works once at WeChat too: replaying it (with a fresh state) is refused there.
        let mut c = Browser::new();
        let s = c.begin(&app, "wechat", json!({}), None).await;
        let r = c.callback(&app, "wechat", &code, &s.state).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert!(r.text.contains("40029"), "{}", r.text);
    }

    async fn admins_manage_providers_and_never_see_secrets_again(backend) {
        let issuer = need_oidc!();
        let app = TestApp::spawn_with(backend, |c| with_corp(c, &issuer)).await;
        let (_root, admin) = app.root_and_admin().await;
        let user = app.register("nora").await;
        let body = json!({
            "slug": "partner", "kind": "oidc", "name": "Partner ID", "client_id": "skein",
            "client_secret": "very-secret-value-91", "issuer": issuer,
        });
        let denied = app.post("/api/v1/admin/oauth/providers", Some(&user.access), body.clone()).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        let made = app.post("/api/v1/admin/oauth/providers", Some(&admin.access), body.clone()).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
        assert_eq!(made.json["has_client_secret"], true);
        assert_eq!(made.json["redirect_uri"], format!("{PUBLIC_URL}/oauth/callback/partner"));
        assert!(!made.text.contains("very-secret-value-91"), "{}", made.text);
        let dup = app.post("/api/v1/admin/oauth/providers", Some(&admin.access), body).await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        let bad = app.post("/api/v1/admin/oauth/providers", Some(&admin.access),
            json!({"slug": "x", "kind": "oidc", "client_id": "a", "client_secret": "b"})).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "an OIDC provider needs an issuer: {}", bad.text);

        let list = app.get("/api/v1/admin/oauth/providers", Some(&admin.access)).await;
        assert!(!list.text.contains("very-secret-value-91") && !list.text.contains("provider-secret"), "{}", list.text);
        let sources: Vec<(String, String)> = list.json["items"].as_array().unwrap().iter()
            .map(|p| (p["slug"].as_str().unwrap().into(), p["source"].as_str().unwrap().into())).collect();
        assert_eq!(sources, vec![("corp".into(), "config".into()), ("partner".into(), "admin".into())]);

        let signed = Browser::new().sign_in(&app, "partner", Some("olga@corp.test"), json!({})).await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);

        let off = app.patch("/api/v1/admin/oauth/providers/partner", Some(&admin.access), json!({"enabled": false})).await;
        assert_eq!(off.status, StatusCode::OK, "{}", off.text);
        let buttons = app.get("/api/v1/auth/oauth/providers", None).await;
        assert_eq!(buttons.json["items"].as_array().unwrap().len(), 1, "{}", buttons.text);
        let r = Browser::new().start(&app, "partner", json!({}), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let cfg = app.patch("/api/v1/admin/oauth/providers/corp", Some(&admin.access), json!({"enabled": false})).await;
        assert_eq!(cfg.error_code(), "provider_in_config");
        let del = app.call(reqwest::Method::DELETE, "/api/v1/admin/oauth/providers/partner", Some(&admin.access), None).await;
        assert_eq!(del.status, StatusCode::NO_CONTENT);
    }
}

/// A hostile "issuer" on loopback: a discovery document too large to read, one naming another
/// issuer, one redirecting elsewhere, and one that never answers.
async fn hostile_issuer() -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let me = base.clone();
    let router = axum::Router::new()
        .route("/big/.well-known/openid-configuration", get(|| async { "x".repeat(300 * 1024) }))
        .route(
            "/other/.well-known/openid-configuration",
            get(move || {
                let me = me.clone();
                async move {
                    axum::Json(json!({
                        "issuer": "https://evil.example", "authorization_endpoint": format!("{me}/a"),
                        "token_endpoint": format!("{me}/t"), "jwks_uri": format!("{me}/j"),
                    }))
                }
            }),
        )
        .route(
            "/moved/.well-known/openid-configuration",
            get(|| async { axum::response::Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/slow/.well-known/openid-configuration",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                "{}"
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

on_both_backends! {
    async fn oidc_discovery_is_bounded_and_must_name_its_issuer(backend) {
        let hostile = hostile_issuer().await;
        let app = TestApp::spawn_with(backend, |c| {
            c.oauth.public_url = Some(PUBLIC_URL.into());
            c.oauth.http_timeout_secs = 2;
            for case in ["big", "other", "moved", "slow"] {
                let mut p = provider(ProviderKind::Oidc, "skein");
                p.issuer = Some(format!("{hostile}/{case}"));
                c.oauth.providers.insert(case.into(), p);
            }
        })
        .await;
        app.root().await;
        for (case, reason) in [
            ("big", "answer too large"),
            ("other", "the discovery document names another issuer"),
            ("moved", "HTTP 307"),
            ("slow", "timed out"),
        ] {
            let started = std::time::Instant::now();
            let r = Browser::new().start(&app, case, json!({}), None).await;
            assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{case}: {}", r.text);
            assert_eq!(r.error_code(), "oauth_provider_error");
            assert!(r.json["error"]["details"]["reason"].as_str().unwrap().starts_with(reason), "{case}: {}", r.text);
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{case} took {:?}", started.elapsed());
        }
    }
}
