//! Rate limits (per IP on auth routes, per user on the API), login lockout, and the Redis
//! limiter shared by two server instances.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::{Backend, PASSWORD, TestApp, redis_url};

#[tokio::test]
async fn auth_routes_are_limited_per_ip_with_headers() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.limits.auth_per_ip_per_minute = 3).await;
    for i in 0..3 {
        let r = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"login": "x", "password": "wrong password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((2 - i).to_string().as_str())
        );
        assert!(r.header("x-ratelimit-reset").is_some());
    }
    let limited = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (limited.status, limited.error_code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    // Health checks are not limited.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_api_is_limited_per_user() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.limits.api_per_user_per_minute = 4).await;
    let ada = app.register("ada").await;
    let bob = app.register("bob").await;
    for _ in 0..4 {
        assert_eq!(
            app.get("/api/v1/user/profile", Some(&ada.access))
                .await
                .status,
            StatusCode::OK
        );
    }
    let limited = app.get("/api/v1/user/profile", Some(&ada.access)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        app.get("/api/v1/user/profile", Some(&bob.access))
            .await
            .status,
        StatusCode::OK,
        "bob has his own budget"
    );
}

#[tokio::test]
async fn repeated_login_failures_lock_the_account_not_others() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.limits.login_failures_per_account = 3).await;
    app.register("ada").await;
    app.register("bob").await;
    for _ in 0..3 {
        let r = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"login": "ada", "password": "guess guess"}),
            )
            .await;
        assert_eq!(r.error_code(), "invalid_credentials");
    }
    let locked = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (locked.status, locked.error_code()),
        (StatusCode::TOO_MANY_REQUESTS, "login_locked"),
        "{}",
        locked.text
    );
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 0);
    let also_locked = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "ADA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        also_locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the same account under its email"
    );
    app.login("bob", PASSWORD).await;
}

#[tokio::test]
async fn login_failures_are_also_limited_per_ip() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.limits.login_failures_per_ip = 4).await;
    app.register("ada").await;
    for name in ["u1", "u2", "u3", "u4"] {
        let r = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"login": name, "password": "guess guess"}),
            )
            .await;
        assert_eq!(r.error_code(), "invalid_credentials");
    }
    let locked = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        locked.error_code(),
        "login_locked",
        "spraying many accounts from one address"
    );
}

#[tokio::test]
async fn a_successful_login_clears_the_account_failures() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.limits.login_failures_per_account = 3).await;
    app.register("ada").await;
    for _ in 0..2 {
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"login": "ada", "password": "typo typo"}),
        )
        .await;
    }
    app.login("ada", PASSWORD).await;
    for _ in 0..2 {
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"login": "ada", "password": "typo typo"}),
        )
        .await;
    }
    app.login("ada", PASSWORD).await;
}

/// Two instances of one deployment share a Redis: their limits add up across both.
#[tokio::test]
async fn the_redis_limiter_holds_across_two_instances() {
    let prefix = format!("skein-test-{}:", uuid::Uuid::now_v7().simple());
    let one = TestApp::spawn_with(Backend::Postgres, |c| {
        c.redis.url = Some(redis_url());
        c.redis.key_prefix = prefix.clone();
        c.limits.auth_per_ip_per_minute = 4;
    })
    .await;
    let two = one.sibling().await;
    assert_ne!(one.base, two.base);
    let ready = two.get("/readyz", None).await;
    assert_eq!(
        ready.json["checks"]["rate_limiter_redis"], "ok",
        "{}",
        ready.text
    );

    assert_eq!(attempt(&one).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt(&two).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt(&one).await.status, StatusCode::UNAUTHORIZED);
    let last = attempt(&two).await;
    assert_eq!(
        (last.status, last.header("x-ratelimit-remaining")),
        (StatusCode::UNAUTHORIZED, Some("0"))
    );
    let over_one = attempt(&one).await;
    let over_two = attempt(&two).await;
    assert_eq!(
        over_one.status,
        StatusCode::TOO_MANY_REQUESTS,
        "instance one let a 5th request through"
    );
    assert_eq!(
        over_two.status,
        StatusCode::TOO_MANY_REQUESTS,
        "instance two let a 6th request through"
    );

    // A user registered on one instance is signed in on the other: one database, one secret.
    let ada_app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis.url = Some(redis_url());
        c.redis.key_prefix = format!("{prefix}b:");
    })
    .await;
    let ada = ada_app.register("ada").await;
    let sibling = ada_app.sibling().await;
    assert_eq!(
        sibling
            .get("/api/v1/user/profile", Some(&ada.access))
            .await
            .status,
        StatusCode::OK
    );
}

/// The Redis login lockout is shared too: failures on one instance lock the account on both.
#[tokio::test]
async fn login_lockout_holds_across_instances_with_redis() {
    let prefix = format!("skein-test-{}:", uuid::Uuid::now_v7().simple());
    let one = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis.url = Some(redis_url());
        c.redis.key_prefix = prefix.clone();
        c.limits.login_failures_per_account = 2;
    })
    .await;
    let two = one.sibling().await;
    one.register("ada").await;
    one.post(
        "/api/v1/auth/login",
        None,
        json!({"login": "ada", "password": "nope nope"}),
    )
    .await;
    two.post(
        "/api/v1/auth/login",
        None,
        json!({"login": "ada", "password": "nope nope"}),
    )
    .await;
    let locked = one
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(locked.error_code(), "login_locked");
    let locked = two
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(locked.error_code(), "login_locked");
}

async fn attempt(app: &TestApp) -> skein_testkit::Resp {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"login": "x", "password": "wrong password"}),
    )
    .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_rightmost_forwarded_address_counts() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.trust_forwarded_for = true;
        c.limits.auth_per_ip_per_minute = 2;
    })
    .await;
    let login = |forwarded: &str| {
        app.send(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", forwarded)
                .json(&json!({"login": "x", "password": "wrong password"})),
        )
    };
    // The client controls everything left of what our proxy appended: changing it is no escape.
    assert_eq!(
        login("1.1.1.1, 10.0.0.7").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login("2.2.2.2, 10.0.0.7").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login("3.3.3.3, 10.0.0.7").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another real client address has its own budget.
    assert_eq!(login("10.0.0.8").await.status, StatusCode::UNAUTHORIZED);
}
