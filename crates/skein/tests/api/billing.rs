//! Billing through HTTP: grants, the ledger invariant, reservations under concurrency,
//! redemption races, admin adjustments, usage records, exports, and bad input.

pub(crate) mod alipay;
pub(crate) mod coupons;
pub(crate) mod faults;
pub(crate) mod holds;
pub(crate) mod invoices;
pub(crate) mod money;
pub(crate) mod payment_settings;
pub(crate) mod payments;
pub(crate) mod refunds;
pub(crate) mod statements;
pub(crate) mod subscriptions;
pub(crate) mod subscriptions_changes;
pub(crate) mod subscriptions_entitlements;
pub(crate) mod subscriptions_refunds;
pub(crate) mod subscriptions_reminders;
pub(crate) mod wechat;

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::{Backend, PASSWORD, Persona, TestApp, on_both_backends};

/// The internal token every billing test server uses.
pub const TOKEN: &str = "internal-token-for-tests-0123456789abcdef";

pub async fn billing_app(
    backend: Backend,
    configure: impl FnOnce(&mut skein::config::Config),
) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.billing.internal_token = Some(skein_core::secret::Secret::new(TOKEN));
        c.server.internal_listen = Some("127.0.0.1:0".into());
        configure(c);
    })
    .await
}

pub async fn internal(app: &TestApp, what: &str, body: Value) -> skein_testkit::Resp {
    app.send(
        app.client
            .post(app.internal_url(&format!("/internal/billing/{what}")))
            .bearer_auth(TOKEN)
            .json(&body),
    )
    .await
}

pub async fn adjust(
    app: &TestApp,
    admin: &Persona,
    user_id: &str,
    amount: i64,
) -> skein_testkit::Resp {
    app.post(
        &format!("/api/v1/admin/billing/users/{user_id}/adjust"),
        Some(&admin.access),
        json!({"amount": amount, "memo": "test credit"}),
    )
    .await
}

pub async fn quota(app: &TestApp, who: &Persona) -> Value {
    let r = app.get("/api/v1/billing/quota", Some(&who.access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

pub fn usage(cost: i64, request_id: &str, model: &str) -> Value {
    json!({"cost": cost, "model": model, "prompt_tokens": 10, "completion_tokens": cost, "request_id": request_id, "stream": true, "duration_ms": 12})
}

/// Runs `skein billing verify` against the test server's database.
pub fn cli_verify(app: &TestApp) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_skein"))
        .env_clear()
        .env("SKEIN_DATA_DIR", &app.config.data_dir)
        .env("SKEIN_DATABASE_URL", app.config.database_url())
        .args(["billing", "verify"])
        .output()
        .unwrap()
}

pub async fn verify_clean(app: &TestApp, admin: &Persona, user: &Persona) {
    let out = cli_verify(app);
    assert!(
        out.status.success(),
        "skein billing verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The API view of the invariant: the balance equals the sum of the ledger.
    let q = quota(app, user).await;
    let mut sum = 0;
    let mut page = 1;
    loop {
        let r = app
            .get(
                &format!(
                    "/api/v1/admin/billing/users/{}/ledger?per_page=100&page={page}",
                    user.id
                ),
                Some(&admin.access),
            )
            .await;
        let items = r.json["items"].as_array().unwrap().clone();
        sum += items
            .iter()
            .map(|e| e["amount"].as_i64().unwrap())
            .sum::<i64>();
        if items.len() < 100 {
            break;
        }
        page += 1;
    }
    assert_eq!(
        q["balance"].as_i64().unwrap(),
        sum,
        "balance differs from its ledger"
    );
}

on_both_backends! {
    async fn grants_on_signup_and_invitation(backend) {
        let app = billing_app(backend, |c| {
            c.billing.signup_grant = 1000;
            c.billing.invite_reward_inviter = 300;
            c.billing.invite_reward_invitee = 200;
        }).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        assert_eq!(quota(&app, &ada).await["balance"], 1000);
        let code = app.post("/api/v1/user/invite-codes", Some(&ada.access), json!({})).await.json["code"].as_str().unwrap().to_string();
        let r = app.post("/api/v1/auth/register", None, json!({"username": "bob", "password": PASSWORD, "invite_code": code})).await;
        let bob = skein_testkit::Persona {
            id: r.json["user"]["id"].as_str().unwrap().into(), login: "bob".into(), password: PASSWORD.into(),
            access: r.json["access_token"].as_str().unwrap().into(), refresh: String::new(),
        };
        assert_eq!(quota(&app, &bob).await["balance"], 1200);
        assert_eq!(quota(&app, &ada).await["balance"], 1300);
        let ledger = app.get("/api/v1/billing/ledger", Some(&ada.access)).await;
        let kinds: Vec<&str> = ledger.json["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["invite_reward", "signup_grant"]);
        assert_eq!(ledger.json["items"][0]["balance_after"], 1300);
        verify_clean(&app, &root, &ada).await;
        verify_clean(&app, &root, &bob).await;
    }

    async fn exactly_the_covered_reservations_succeed_and_settle_exactly(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        // A balance that covers exactly 100 holds of 50.
        assert_eq!(adjust(&app, &root, &ada.id, 5_000).await.status, StatusCode::OK);
        let attempts = (0..1000).map(|i| internal(&app, "reserve", json!({"user_id": ada.id, "amount": 50, "reference": format!("req-{i}")})));
        let results = futures::future::join_all(attempts).await;
        let granted: Vec<String> = results.iter().filter(|r| r.status == StatusCode::OK).map(|r| r.json["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(granted.len(), 100, "statuses: {:?}", results.iter().map(|r| r.status.as_u16()).collect::<std::collections::BTreeSet<_>>());
        assert!(results.iter().all(|r| r.status == StatusCode::OK || r.error_code() == "insufficient_quota"));
        let q = quota(&app, &ada).await;
        assert_eq!((q["reserved"].as_i64(), q["available"].as_i64()), (Some(5_000), Some(0)));

        // Settle each with a cost between 0 and its hold.
        let costs: Vec<i64> = (0..granted.len()).map(|i| ((i * 37) % 51) as i64).collect();
        let settles = granted.iter().zip(&costs).map(|(id, cost)| internal(&app, "settle", json!({"reservation_id": id, "usage": usage(*cost, id, "gpt-4o")})));
        for r in futures::future::join_all(settles).await {
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let spent: i64 = costs.iter().sum();
        let q = quota(&app, &ada).await;
        assert_eq!(q["balance"].as_i64(), Some(5_000 - spent));
        assert_eq!(q["used"].as_i64(), Some(spent));
        assert_eq!(q["reserved"].as_i64(), Some(0));
        verify_clean(&app, &root, &ada).await;
        let usage = app.get("/api/v1/billing/usage?per_page=1", Some(&ada.access)).await;
        assert_eq!(usage.json["total"], 100, "one usage record per settled request");
    }

    async fn settle_and_release_are_idempotent_and_never_double_charge(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        adjust(&app, &root, &ada.id, 1_000).await;
        let r = internal(&app, "reserve", json!({"user_id": ada.id, "amount": 400})).await;
        let id = r.json["id"].as_str().unwrap().to_string();
        let first = internal(&app, "settle", json!({"reservation_id": id, "usage": usage(120, "r1", "gpt-4o")})).await;
        let again = internal(&app, "settle", json!({"reservation_id": id, "usage": usage(999, "r1", "gpt-4o")})).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.json, again.json, "a retried settle answers the first settlement");
        assert_eq!(quota(&app, &ada).await["balance"], 880);
        // Releasing after settling is refused and changes nothing; so is settling after releasing.
        let late_release = internal(&app, "release", json!({"reservation_id": id})).await;
        assert_eq!((late_release.status, late_release.error_code()), (StatusCode::CONFLICT, "reservation_settled"));
        assert_eq!(quota(&app, &ada).await["balance"], 880);
        let held = internal(&app, "reserve", json!({"user_id": ada.id, "amount": 100})).await.json["id"].as_str().unwrap().to_string();
        assert_eq!(internal(&app, "release", json!({"reservation_id": held})).await.status, StatusCode::NO_CONTENT);
        assert_eq!(internal(&app, "release", json!({"reservation_id": held})).await.status, StatusCode::NO_CONTENT);
        let late = internal(&app, "settle", json!({"reservation_id": held, "usage": usage(10, "r2", "m")})).await;
        assert_eq!((late.status, late.error_code()), (StatusCode::CONFLICT, "reservation_released"));
        let q = quota(&app, &ada).await;
        assert_eq!((q["balance"].as_i64(), q["reserved"].as_i64()), (Some(880), Some(0)));

        let unknown = internal(&app, "settle", json!({"reservation_id": "01890000-0000-7000-8000-000000000000", "usage": usage(1, "x", "m")})).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let negative = internal(&app, "settle", json!({"reservation_id": id, "usage": usage(-5, "x", "m")})).await;
        assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
        for amount in [0, -10] {
            let r = internal(&app, "reserve", json!({"user_id": ada.id, "amount": amount})).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "amount {amount}");
        }
        let overflow = internal(&app, "reserve", json!({"user_id": ada.id, "amount": i64::MAX})).await;
        assert_eq!((overflow.status, overflow.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
        let too_big_cost = internal(&app, "settle", json!({"reservation_id": id, "usage": usage(i64::MAX, "x", "m")})).await;
        assert_eq!(too_big_cost.status, StatusCode::UNPROCESSABLE_ENTITY);
        let nobody = internal(&app, "reserve", json!({"user_id": "01890000-0000-7000-8000-000000000000", "amount": 1})).await;
        assert_eq!(nobody.status, StatusCode::NOT_FOUND);
        let wrong_type = internal(&app, "reserve", json!({"user_id": ada.id, "amount": "lots"})).await;
        assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
        verify_clean(&app, &root, &ada).await;
    }

    async fn a_key_limit_is_checked_and_charged_with_the_user(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        adjust(&app, &root, &ada.id, 10_000).await;
        let key = json!({"user_id": ada.id, "key_id": "key-1", "key_limit": 300, "amount": 200});
        let first = internal(&app, "reserve", key.clone()).await;
        assert_eq!(first.status, StatusCode::OK);
        let second = internal(&app, "reserve", key.clone()).await;
        assert_eq!((second.status, second.error_code()), (StatusCode::PAYMENT_REQUIRED, "key_quota_exceeded"));
        assert_eq!(quota(&app, &ada).await["reserved"], 200, "a refused key hold leaves no user hold behind");
        let id = first.json["id"].as_str().unwrap();
        internal(&app, "settle", json!({"reservation_id": id, "usage": usage(150, "k1", "m")})).await;
        // 150 used of 300: a hold of 150 fits, 151 does not.
        let fits = internal(&app, "reserve", json!({"user_id": ada.id, "key_id": "key-1", "key_limit": 300, "amount": 150})).await;
        assert_eq!(fits.status, StatusCode::OK);
        let other_key = internal(&app, "reserve", json!({"user_id": ada.id, "key_id": "key-2", "amount": 5000})).await;
        assert_eq!(other_key.status, StatusCode::OK, "no limit on key-2");
        let q = quota(&app, &ada).await;
        assert_eq!((q["balance"].as_i64(), q["reserved"].as_i64()), (Some(9_850), Some(5_150)));
    }

    async fn a_redemption_code_is_redeemed_exactly_once(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let r = app.post("/api/v1/admin/redemption-codes", Some(&root.access), json!({"name": "launch", "amount": 5000, "count": 3})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let codes: Vec<String> = r.json.as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap().to_string()).collect();
        assert_eq!(codes.len(), 3);

        let mut people = Vec::new();
        for i in 0..12 {
            people.push(app.register(&format!("racer{i}")).await);
        }
        let race = people.iter().map(|p| app.post("/api/v1/billing/redeem", Some(&p.access), json!({"code": codes[0]})));
        let results = futures::future::join_all(race).await;
        let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.status == StatusCode::OK).map(|(i, _)| i).collect();
        assert_eq!(winners.len(), 1, "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
        assert!(results.iter().all(|r| r.status == StatusCode::OK || r.error_code() == "invalid_redemption_code"));
        let winner = &people[winners[0]];
        assert_eq!(quota(&app, winner).await["balance"], 5000);
        let again = app.post("/api/v1/billing/redeem", Some(&winner.access), json!({"code": codes[0]})).await;
        assert_eq!(again.error_code(), "invalid_redemption_code");

        // Disabled codes cannot be redeemed; re-enabled ones can.
        let list = app.get("/api/v1/admin/redemption-codes?name=launch&status=active", Some(&root.access)).await;
        assert_eq!(list.json["total"], 2);
        let second = list.json["items"].as_array().unwrap().iter().find(|c| c["code"] == codes[1].as_str()).unwrap();
        let id = second["id"].as_str().unwrap();
        let off = app.patch(&format!("/api/v1/admin/redemption-codes/{id}"), Some(&root.access), json!({"disabled": true})).await;
        assert_eq!(off.json["status"], "disabled");
        let loser = &people[(winners[0] + 1) % people.len()];
        assert_eq!(app.post("/api/v1/billing/redeem", Some(&loser.access), json!({"code": codes[1]})).await.error_code(), "invalid_redemption_code");
        app.patch(&format!("/api/v1/admin/redemption-codes/{id}"), Some(&root.access), json!({"disabled": false})).await;
        assert_eq!(app.post("/api/v1/billing/redeem", Some(&loser.access), json!({"code": codes[1]})).await.status, StatusCode::OK);

        // Whoever made a code cannot redeem it (an admin funding themselves); it stays usable.
        let before = quota(&app, &root).await["balance"].clone();
        let own = app.post("/api/v1/billing/redeem", Some(&root.access), json!({"code": codes[2]})).await;
        assert_eq!((own.status, own.error_code()), (StatusCode::FORBIDDEN, "own_redemption_code"), "{}", own.text);
        assert_eq!(quota(&app, &root).await["balance"], before);

        let csv = app.get("/api/v1/admin/redemption-codes/export?name=launch", Some(&root.access)).await;
        assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
        assert_eq!(csv.text.lines().count(), 4, "{}", csv.text);
        assert!(codes.iter().all(|c| csv.text.contains(c.as_str())));
        assert_eq!(app.get("/api/v1/admin/redemption-codes", Some(&loser.access)).await.status, StatusCode::FORBIDDEN);
        for p in [winner, loser] {
            verify_clean(&app, &root, p).await;
        }
    }

    async fn admin_adjustments_are_exact_under_concurrency(backend) {
        let app = billing_app(backend, |_| {}).await;
        let (root, admin) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let credits = (0..25).map(|_| adjust(&app, &admin, &ada.id, 1_000));
        for r in futures::future::join_all(credits).await {
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        assert_eq!(quota(&app, &ada).await["balance"], 25_000);
        let debits = (0..30).map(|_| adjust(&app, &admin, &ada.id, -1_000));
        let results = futures::future::join_all(debits).await;
        let ok = results.iter().filter(|r| r.status == StatusCode::OK).count();
        assert_eq!(ok, 25, "debits may not take the balance below zero");
        assert!(results.iter().all(|r| r.status == StatusCode::OK || r.error_code() == "insufficient_balance"));
        assert_eq!(quota(&app, &ada).await["balance"], 0);

        let ledger = app.get(&format!("/api/v1/admin/billing/users/{}/ledger?kind=admin_adjust&per_page=1", ada.id), Some(&root.access)).await;
        assert_eq!(ledger.json["total"], 50);
        assert_eq!(ledger.json["items"][0]["memo"], "test credit");
        assert_eq!(ledger.json["items"][0]["actor_id"], admin.id.as_str());
        verify_clean(&app, &root, &ada).await;
    }

    async fn bad_adjustments_are_refused(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        let path = format!("/api/v1/admin/billing/users/{}/adjust", ada.id);
        for (body, status) in [
            (json!({"amount": 0, "memo": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"amount": 1_000_000_000_001_i64, "memo": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"amount": i64::MIN, "memo": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"amount": 5, "memo": "   "}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"amount": 5}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"amount": 1.5, "memo": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"amount": "5", "memo": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"amount": -1, "memo": "more than there is"}), StatusCode::CONFLICT),
        ] {
            let r = app.post(&path, Some(&root.access), body.clone()).await;
            assert_eq!(r.status, status, "{body}: {}", r.text);
        }
        let unknown = app.post("/api/v1/admin/billing/users/01890000-0000-7000-8000-000000000000/adjust", Some(&root.access), json!({"amount": 5, "memo": "x"})).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let garbage = app.get("/api/v1/admin/billing/users/'%20OR%201=1/quota", Some(&root.access)).await;
        assert_eq!(garbage.status, StatusCode::NOT_FOUND);
        assert_eq!(app.post(&path, Some(&ada.access), json!({"amount": 5, "memo": "x"})).await.status, StatusCode::FORBIDDEN);
        // No one adjusts their own balance: not root, not an admin; root adjusts an admin.
        let admin = app.register("admin").await;
        let promoted = app.patch(&format!("/api/v1/admin/users/{}", admin.id), Some(&root.access), json!({"role": "admin"})).await;
        assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text);
        for who in [&root, &admin] {
            let own = app.post(&format!("/api/v1/admin/billing/users/{}/adjust", who.id), Some(&who.access), json!({"amount": 5, "memo": "mine"})).await;
            assert_eq!((own.status, own.error_code()), (StatusCode::FORBIDDEN, "self_adjustment"), "{}", own.text);
            assert_eq!(quota(&app, who).await["balance"], 0, "a self-adjustment was applied");
        }
        let r = app.post(&format!("/api/v1/admin/billing/users/{}/adjust", admin.id), Some(&root.access), json!({"amount": 5, "memo": "for the admin"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.post(&format!("/api/v1/admin/billing/users/{}/adjust", root.id), Some(&admin.access), json!({"amount": 5, "memo": "for root"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(quota(&app, &ada).await["balance"], 0, "nothing was applied");
        // With an Idempotency-Key, a retried adjustment applies once.
        for _ in 0..3 {
            let r = app.send(app.client.post(app.url(&path)).bearer_auth(&root.access)
                .header("idempotency-key", "topup-2026-11-26").json(&json!({"amount": 70, "memo": "retry-safe"}))).await;
            assert_eq!((r.status, r.json["balance"].as_i64()), (StatusCode::OK, Some(70)), "{}", r.text);
        }
        assert_eq!(quota(&app, &ada).await["balance"], 70);
        let nul = app.send(app.client.post(app.url(&path)).bearer_auth(&root.access)
            .header("content-type", "application/json").body(r#"{"amount": 1, "memo": "a\u0000b"}"#)).await;
        assert_eq!(nul.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", nul.text);
    }

    async fn usage_records_are_listed_filtered_exported_and_private(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;
        adjust(&app, &root, &ada.id, 10_000).await;
        adjust(&app, &root, &bob.id, 10_000).await;
        for (who, model, cost) in [(&ada, "gpt-4o", 30), (&ada, "gpt-4o", 20), (&ada, "claude-sonnet", 7), (&bob, "gpt-4o", 99)] {
            let id = internal(&app, "reserve", json!({"user_id": who.id, "amount": 100})).await.json["id"].as_str().unwrap().to_string();
            let r = internal(&app, "settle", json!({"reservation_id": id, "usage": usage(cost, &format!("req,{cost}"), model)})).await;
            assert_eq!(r.status, StatusCode::OK);
        }
        let mine = app.get("/api/v1/billing/usage", Some(&ada.access)).await;
        assert_eq!(mine.json["total"], 3, "only ada's own records");
        assert!(mine.json["items"].as_array().unwrap().iter().all(|r| r["user_id"] == ada.id.as_str()));
        let gpt = app.get("/api/v1/billing/usage?model=gpt-4o", Some(&ada.access)).await;
        assert_eq!(gpt.json["total"], 2);
        let future = app.get("/api/v1/billing/usage?from=2999-01-01T00:00:00Z", Some(&ada.access)).await;
        assert_eq!(future.json["total"], 0);
        let bad_time = app.get("/api/v1/billing/usage?from=yesterday", Some(&ada.access)).await;
        assert_eq!(bad_time.status, StatusCode::UNPROCESSABLE_ENTITY);

        let daily = app.get("/api/v1/billing/usage/daily", Some(&ada.access)).await;
        let rows = daily.json.as_array().unwrap();
        let gpt_day = rows.iter().find(|r| r["key"] == "gpt-4o").unwrap();
        assert_eq!((gpt_day["requests"].as_i64(), gpt_day["cost"].as_i64()), (Some(2), Some(50)));
        assert_eq!(gpt_day["day"].as_str().unwrap().len(), 10);

        let csv = app.get("/api/v1/billing/usage/export", Some(&ada.access)).await;
        assert_eq!(csv.text.lines().count(), 4, "{}", csv.text);
        assert!(csv.text.contains("\"req,30\""), "commas are quoted: {}", csv.text);
        assert!(!csv.text.contains(&bob.id), "another user's records leaked into the export");

        let everyone = app.get("/api/v1/admin/billing/usage/daily?group=user", Some(&root.access)).await;
        assert_eq!(everyone.json.as_array().unwrap().len(), 2);
        let bobs = app.get(&format!("/api/v1/admin/billing/usage?user_id={}", bob.id), Some(&root.access)).await;
        assert_eq!(bobs.json["total"], 1);
        assert_eq!(app.get("/api/v1/admin/billing/usage", Some(&ada.access)).await.status, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn abandoned_reservations_expire_and_free_their_hold() {
    let app = billing_app(Backend::Sqlite, |c| c.billing.reservation_ttl_secs = 1).await;
    let root = app.root().await;
    let ada = app.register("ada").await;
    adjust(&app, &root, &ada.id, 100).await;
    let r = internal(&app, "reserve", json!({"user_id": ada.id, "amount": 100})).await;
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(quota(&app, &ada).await["available"], 0);
    let mut freed = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if quota(&app, &ada).await["available"] == 100 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the hold was never released");
    // A late settle still charges what was delivered, exactly once.
    let late = internal(
        &app,
        "settle",
        json!({"reservation_id": id, "usage": usage(40, "late", "m")}),
    )
    .await;
    assert_eq!(late.status, StatusCode::OK, "{}", late.text);
    let q = quota(&app, &ada).await;
    assert_eq!(
        (q["balance"].as_i64(), q["reserved"].as_i64()),
        (Some(60), Some(0))
    );
    verify_clean(&app, &root, &ada).await;
}

#[tokio::test]
async fn the_internal_api_needs_its_token() {
    let app = billing_app(Backend::Sqlite, |_| {}).await;
    let root = app.root().await;
    let body = json!({"user_id": root.id, "amount": 1});
    let none = app
        .send(
            app.client
                .post(app.internal_url("/internal/billing/reserve"))
                .json(&body),
        )
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let user_token = app
        .send(
            app.client
                .post(app.internal_url("/internal/billing/reserve"))
                .bearer_auth(&root.access)
                .json(&body),
        )
        .await;
    assert_eq!(
        user_token.status,
        StatusCode::UNAUTHORIZED,
        "a user's JWT is not the service token"
    );
    let closed = TestApp::spawn(Backend::Sqlite).await;
    let r = closed
        .send(
            closed
                .client
                .post(closed.url("/internal/billing/reserve"))
                .bearer_auth(TOKEN)
                .json(&body),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "without a configured token the internal API does not exist"
    );
}

#[tokio::test]
async fn expired_codes_cannot_be_redeemed() {
    let app = billing_app(Backend::Sqlite, |_| {}).await;
    let root = app.root().await;
    // Codes are for others: whoever made one cannot redeem it.
    let user = app.register("ada").await;
    let soon = time_in(1_200);
    let r = app
        .post(
            "/api/v1/admin/redemption-codes",
            Some(&root.access),
            json!({"name": "flash", "amount": 10, "count": 1, "expires_at": soon}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let code = r.json[0]["code"].as_str().unwrap().to_string();
    let bad = app
        .post(
            "/api/v1/admin/redemption-codes",
            Some(&root.access),
            json!({"name": "old", "amount": 10, "count": 1, "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for body in [
        json!({"name": "", "amount": 10, "count": 1}),
        json!({"name": "x", "amount": 0, "count": 1}),
        json!({"name": "x", "amount": 10, "count": 0}),
        json!({"name": "x", "amount": 10, "count": 1001}),
    ] {
        let r = app
            .post(
                "/api/v1/admin/redemption-codes",
                Some(&root.access),
                body.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let late = app
        .post(
            "/api/v1/billing/redeem",
            Some(&user.access),
            json!({"code": code}),
        )
        .await;
    assert_eq!(
        (late.status, late.error_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_redemption_code")
    );
    let empty = app
        .post(
            "/api/v1/billing/redeem",
            Some(&user.access),
            json!({"code": "  "}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(quota(&app, &root).await["balance"], 0);
}

fn time_in(ms: i64) -> String {
    skein_core::ids::ms_to_rfc3339(skein_core::ids::now_ms() + ms)
}
