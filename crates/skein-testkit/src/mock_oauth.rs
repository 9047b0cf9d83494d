//! Small fakes of GitHub's and WeChat's sign-in, faithful to their documentation, for the
//! User service's OAuth tests. Each "authorization page" approves at once (as if the person
//! clicked "Authorize" or scanned the QR code) and redirects to the `redirect_uri` with a
//! one-time `code` and the `state`.
//!
//! GitHub (<https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>):
//! `GET /login/oauth/authorize`, `POST /login/oauth/access_token` (form body; JSON answer with
//! `Accept: application/json`, else form-encoded; errors as 200 with `error`; the code works
//! once, for the same `redirect_uri`, and the PKCE verifier must match), and the REST API
//! `GET /user`, `GET /user/emails` (bearer token; 403 without a `User-Agent`).
//!
//! WeChat (<https://developers.weixin.qq.com/doc/oplatform/Website_App/WeChat_Login/Wechat_Login.html>):
//! `GET /connect/qrconnect` (scope `snsapi_login`), `GET /sns/oauth2/access_token`,
//! `GET /sns/userinfo`; errors as 200 `{"errcode", "errmsg"}`; answers sent as `text/plain`,
//! as WeChat's servers do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

/// A person at the fake provider.
#[derive(Debug, Clone)]
pub struct FakePerson {
    /// GitHub: numeric id; WeChat: the openid.
    pub id: String,
    /// GitHub login; WeChat nickname.
    pub login: String,
    /// GitHub: `(address, primary, verified)`; WeChat: none.
    pub emails: Vec<(String, bool, bool)>,
    /// WeChat: the unionid.
    pub unionid: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// code -> (redirect_uri, code_challenge, person)
    codes: HashMap<String, (String, Option<String>, FakePerson)>,
    /// access token -> person
    tokens: HashMap<String, FakePerson>,
    /// Who signs in next.
    next: Option<FakePerson>,
    /// Token requests seen (for assertions about what was sent).
    token_requests: Vec<HashMap<String, String>>,
}

#[derive(Clone)]
struct Shared {
    client_id: String,
    client_secret: String,
    inner: Arc<Mutex<Inner>>,
}

/// A running fake (GitHub or WeChat).
pub struct MockOAuth {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl MockOAuth {
    /// Starts a fake GitHub for this client.
    pub async fn github(client_id: &str, client_secret: &str) -> MockOAuth {
        let (shared, inner) = shared(client_id, client_secret);
        let router = Router::new()
            .route("/login/oauth/authorize", get(github_authorize))
            .route("/login/oauth/access_token", post(github_token))
            .route("/user", get(github_user))
            .route("/user/emails", get(github_emails))
            .with_state(shared);
        MockOAuth::serve(router, inner).await
    }

    /// Starts a fake WeChat open platform for this AppID and AppSecret.
    pub async fn wechat(appid: &str, secret: &str) -> MockOAuth {
        let (shared, inner) = shared(appid, secret);
        let router = Router::new()
            .route("/connect/qrconnect", get(wechat_qrconnect))
            .route("/sns/oauth2/access_token", get(wechat_token))
            .route("/sns/userinfo", get(wechat_userinfo))
            .with_state(shared);
        MockOAuth::serve(router, inner).await
    }

    async fn serve(router: Router, inner: Arc<Mutex<Inner>>) -> MockOAuth {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider");
        let address: SocketAddr = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        MockOAuth {
            base: format!("http://{address}"),
            inner,
        }
    }

    /// The person the next authorization signs in as.
    pub fn sign_in_as(&self, person: FakePerson) {
        self.inner.lock().expect("lock").next = Some(person);
    }

    /// The form fields of every token request so far.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.inner.lock().expect("lock").token_requests.clone()
    }
}

fn shared(id: &str, secret: &str) -> (Shared, Arc<Mutex<Inner>>) {
    let inner: Arc<Mutex<Inner>> = Arc::default();
    (
        Shared {
            client_id: id.into(),
            client_secret: secret.into(),
            inner: inner.clone(),
        },
        inner,
    )
}

fn random() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn approve(s: &Shared, q: &HashMap<String, String>, id_param: &str) -> Response {
    let Some(redirect) = q.get("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "redirect_uri missing").into_response();
    };
    if q.get(id_param) != Some(&s.client_id) {
        return (StatusCode::NOT_FOUND, "unknown application").into_response();
    }
    let mut inner = s.inner.lock().expect("lock");
    let Some(person) = inner.next.clone() else {
        return (StatusCode::BAD_REQUEST, "nobody to sign in").into_response();
    };
    let code = random();
    inner.codes.insert(
        code.clone(),
        (redirect.clone(), q.get("code_challenge").cloned(), person),
    );
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let state = q.get("state").cloned().unwrap_or_default();
    Redirect::to(&format!(
        "{redirect}{sep}code={code}&state={}",
        urlencode(&state)
    ))
    .into_response()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn github_authorize(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    approve(&s, &q, "client_id")
}

async fn github_token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let json_wanted = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let answer = |body: Value| {
        if json_wanted {
            axum::Json(body).into_response()
        } else {
            let pairs: Vec<String> = body
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}={}", urlencode(v.as_str().unwrap_or_default())))
                        .collect()
                })
                .unwrap_or_default();
            (
                [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
                pairs.join("&"),
            )
                .into_response()
        }
    };
    let error = |code: &str, description: &str| {
        answer(json!({
            "error": code,
            "error_description": description,
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
        }))
    };
    let mut inner = s.inner.lock().expect("lock");
    inner.token_requests.push(f.clone());
    if f.get("client_id") != Some(&s.client_id) || f.get("client_secret") != Some(&s.client_secret)
    {
        return error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    let Some((redirect, challenge, person)) = f.get("code").and_then(|c| inner.codes.remove(c))
    else {
        return error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    };
    if f.get("redirect_uri").is_some_and(|r| *r != redirect) {
        return error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    if let Some(challenge) = challenge {
        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
        let computed =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
        if computed != challenge {
            return error("bad_verification_code", "The code_verifier does not match.");
        }
    }
    let token = format!("gho_{}", random());
    inner.tokens.insert(token.clone(), person);
    answer(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}))
}

/// Why GitHub's API refused a request.
enum GithubRefusal {
    NoUserAgent,
    BadCredentials,
}

impl IntoResponse for GithubRefusal {
    fn into_response(self) -> Response {
        match self {
            GithubRefusal::NoUserAgent => (
                StatusCode::FORBIDDEN,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
            )
                .into_response(),
            GithubRefusal::BadCredentials => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
            )
                .into_response(),
        }
    }
}

fn github_person(s: &Shared, headers: &HeaderMap) -> Result<FakePerson, GithubRefusal> {
    if !headers.contains_key(header::USER_AGENT) {
        return Err(GithubRefusal::NoUserAgent);
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .unwrap_or_default();
    s.inner
        .lock()
        .expect("lock")
        .tokens
        .get(token)
        .cloned()
        .ok_or(GithubRefusal::BadCredentials)
}

async fn github_user(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match github_person(&s, &headers) {
        Ok(p) => axum::Json(json!({
            "login": p.login,
            "id": p.id.parse::<u64>().unwrap_or(1),
            "node_id": "MDQ6VXNlcjE=",
            "avatar_url": "https://avatars.githubusercontent.com/u/1?v=4",
            "type": "User",
            "name": p.login.to_uppercase(),
            "email": null
        }))
        .into_response(),
        Err(r) => r.into_response(),
    }
}

async fn github_emails(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match github_person(&s, &headers) {
        Ok(p) => axum::Json(
            p.emails
                .iter()
                .map(|(email, primary, verified)| {
                    json!({"email": email, "primary": primary, "verified": verified, "visibility": if *primary { Value::from("private") } else { Value::Null }})
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => r.into_response(),
    }
}

/// WeChat answers JSON with `Content-Type: text/plain`.
fn wechat_answer(body: Value) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body.to_string()).into_response()
}

async fn wechat_qrconnect(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("scope").map(String::as_str) != Some("snsapi_login")
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "scope 参数错误或没有 scope 权限").into_response();
    }
    approve(&s, &q, "appid")
}

async fn wechat_token(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = s.inner.lock().expect("lock");
    inner.token_requests.push(q.clone());
    if q.get("appid") != Some(&s.client_id) {
        return wechat_answer(json!({"errcode": 40013, "errmsg": "invalid appid"}));
    }
    if q.get("secret") != Some(&s.client_secret) {
        return wechat_answer(json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return wechat_answer(json!({"errcode": 40002, "errmsg": "invalid grant_type"}));
    }
    let Some((_, _, person)) = q.get("code").and_then(|c| inner.codes.remove(c)) else {
        return wechat_answer(json!({"errcode": 40029, "errmsg": "invalid code"}));
    };
    let token = random();
    inner.tokens.insert(token.clone(), person.clone());
    let mut body = json!({
        "access_token": token,
        "expires_in": 7200,
        "refresh_token": random(),
        "openid": person.id,
        "scope": "snsapi_login",
    });
    if let Some(unionid) = &person.unionid {
        body["unionid"] = json!(unionid);
    }
    wechat_answer(body)
}

async fn wechat_userinfo(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = s.inner.lock().expect("lock");
    let person = q
        .get("access_token")
        .and_then(|t| inner.tokens.get(t))
        .filter(|p| q.get("openid") == Some(&p.id));
    let Some(p) = person else {
        return wechat_answer(json!({"errcode": 40003, "errmsg": "invalid openid"}));
    };
    let mut body = json!({
        "openid": p.id,
        "nickname": p.login,
        "sex": 1,
        "province": "Guangdong",
        "city": "Shenzhen",
        "country": "CN",
        "headimgurl": "https://thirdwx.qlogo.cn/mmopen/0/0",
        "privilege": [],
    });
    if let Some(unionid) = &p.unionid {
        body["unionid"] = json!(unionid);
    }
    wechat_answer(body)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
