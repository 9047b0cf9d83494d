//! Subscription plans bought and renewed through the order path (EPay's signed
//! notifications), each period's quota granted once — duplicated notifications, repeated
//! runs, and two instances on one PostgreSQL racing for the same period — cancel at period
//! end and expiry; and the two coupon holes: the cap on unpaid orders per user, and "first
//! purchase only" counting pending orders.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::{Backend, Persona, TestApp, on_both_backends};

use crate::billing::payments::{
    EPAY_KEY, epay_notification, epay_notify, order, pay_app, payment_config,
};
use crate::billing::{quota, verify_clean};

pub(crate) const DAY_MS: i64 = 86_400_000;

pub(crate) async fn make_plan(app: &TestApp, admin: &Persona, body: Value) -> Value {
    let r = app
        .post("/api/v1/admin/billing/plans", Some(&admin.access), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json
}

pub(crate) fn monthly() -> Value {
    json!({"name_en": "Pro monthly", "name_zh": "专业版（月付）", "price": 2900, "period": "month",
        "quota_per_period": 1_000_000, "group_name": "pro", "models": ["gpt-4o", "claude-sonnet-4"]})
}

/// Buys `plan` for `who` through EPay and pays it with a signed notification; the order id.
pub(crate) async fn buy_and_pay(app: &TestApp, who: &Persona, plan: &str) -> String {
    let r = app
        .post(
            &format!("/api/v1/billing/plans/{plan}/orders"),
            Some(&who.access),
            json!({"provider": "epay"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["order"]["id"].as_str().unwrap().to_string();
    let money = format!(
        "{}.00",
        r.json["order"]["amount_minor"].as_i64().unwrap() / 100
    );
    assert_eq!(
        epay_notify(app, &epay_notification(&id, &money, EPAY_KEY))
            .await
            .text,
        "success"
    );
    id
}

pub(crate) async fn subscriptions(app: &TestApp, who: &Persona) -> Vec<Value> {
    let r = app
        .get("/api/v1/billing/subscriptions", Some(&who.access))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json.as_array().unwrap().clone()
}

pub(crate) async fn grants(app: &TestApp, who: &Persona) -> Vec<Value> {
    let r = app
        .get(
            "/api/v1/billing/ledger?kind=subscription&per_page=100",
            Some(&who.access),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"].as_array().unwrap().clone()
}

pub(crate) async fn run(app: &TestApp, admin: &Persona) -> i64 {
    let r = app
        .post(
            "/api/v1/admin/billing/subscriptions/run",
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["granted_users"].as_i64().unwrap()
}

/// Moves a subscription's start `days` into the past, as if that time had gone by.
pub(crate) async fn backdate(app: &TestApp, id: &str, days: i64) {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let done = skein_db::sqlx::query(
        "UPDATE subscriptions SET started_at = started_at - $1 WHERE id = $2",
    )
    .bind(days * DAY_MS)
    .bind(id)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    db.close().await;
}

pub(crate) async fn balance(app: &TestApp, who: &Persona) -> i64 {
    quota(app, who).await["balance"].as_i64().unwrap()
}

on_both_backends! {
    async fn plans_are_bought_renewed_granted_once_canceled_and_expire(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;

        // Bad plans are refused with the field named; users cannot make plans.
        for (change, field) in [
            (json!({"name_en": " "}), "name_en"),
            (json!({"name_zh": ""}), "name_zh"),
            (json!({"period": "week"}), "period"),
            (json!({"price": 0}), "price"),
            (json!({"quota_per_period": -1}), "quota_per_period"),
        ] {
            let mut body = monthly();
            for (k, v) in change.as_object().unwrap() {
                body[k] = v.clone();
            }
            let r = app.post("/api/v1/admin/billing/plans", Some(&root.access), body).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{change}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
        }
        let r = app.post("/api/v1/admin/billing/plans", Some(&ada.access), monthly()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        let plan = make_plan(&app, &root, monthly()).await;
        let plan_id = plan["id"].as_str().unwrap().to_string();
        assert_eq!((plan["currency"].as_str(), plan["price"].as_str(), plan["period"].as_str()), (Some("CNY"), Some("29.00"), Some("month")));
        assert_eq!(plan["models"], json!(["gpt-4o", "claude-sonnet-4"]));
        make_plan(&app, &root, json!({"name_en": "Pro yearly", "name_zh": "专业版（年付）", "price": 29_000, "period": "year", "quota_per_period": 12_000_000})).await;
        let offered = app.get("/api/v1/billing/plans", Some(&ada.access)).await;
        let names: Vec<_> = offered.json.as_array().unwrap().iter().map(|p| p["name_zh"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, ["专业版（月付）", "专业版（年付）"], "{}", offered.text);

        // Bought and paid; the notification four more times at once: one grant.
        let r = app.post(&format!("/api/v1/billing/plans/{plan_id}/orders"), Some(&ada.access), json!({"provider": "epay"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["order"]["plan_id"].as_str(), r.json["order"]["amount_minor"].as_i64(), r.json["order"]["quota"].as_i64()),
            (Some(plan_id.as_str()), Some(2900), Some(1_000_000)), "{}", r.text);
        let first = r.json["order"]["id"].as_str().unwrap().to_string();
        let before = balance(&app, &ada).await;
        let genuine = epay_notification(&first, "29.00", EPAY_KEY);
        let all = futures::future::join_all((0..5).map(|_| epay_notify(&app, &genuine))).await;
        assert!(all.iter().all(|r| r.text == "success"));
        let subs = subscriptions(&app, &ada).await;
        assert_eq!(subs.len(), 1, "{subs:?}");
        let sub = subs[0]["id"].as_str().unwrap().to_string();
        assert_eq!((subs[0]["status"].as_str(), subs[0]["paid_periods"].as_i64(), subs[0]["granted_periods"].as_i64()), (Some("active"), Some(1), Some(1)), "{:?}", subs[0]);
        assert_eq!(subs[0]["plan"]["id"], plan_id.as_str());
        assert_eq!(grants(&app, &ada).await.len(), 1);
        assert_eq!(balance(&app, &ada).await, before + 1_000_000);
        // Not a top-up: no top-up entry.
        let r = app.get("/api/v1/billing/ledger?kind=topup", Some(&ada.access)).await;
        assert_eq!(r.json["total"], 0, "{}", r.text);

        // Renewed before it ends: one more paid period, granted only when it begins.
        buy_and_pay(&app, &ada, &plan_id).await;
        let subs = subscriptions(&app, &ada).await;
        assert_eq!(subs.len(), 1, "a renewal extends the subscription: {subs:?}");
        assert_eq!((subs[0]["paid_periods"].as_i64(), subs[0]["granted_periods"].as_i64()), (Some(2), Some(1)));
        assert_eq!(run(&app, &root).await, 0);
        assert_eq!(balance(&app, &ada).await, before + 1_000_000);

        // A month goes by: the second period is granted once, however often the job runs.
        backdate(&app, &sub, 32).await;
        assert_eq!(run(&app, &root).await, 1);
        assert_eq!(run(&app, &root).await, 0);
        assert_eq!(grants(&app, &ada).await.len(), 2);
        assert_eq!(balance(&app, &ada).await, before + 2_000_000);

        // Cancel at period end: only its owner can.
        let path = format!("/api/v1/billing/subscriptions/{sub}");
        let r = app.patch(&path, Some(&bob.access), json!({"cancel_at_period_end": true})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = app.patch(&path, Some(&ada.access), json!({"cancel_at_period_end": true})).await;
        assert_eq!((r.status, r.json["cancel_at_period_end"].as_bool()), (StatusCode::OK, Some(true)), "{}", r.text);

        // The paid periods run out: it ends as canceled, with nothing more granted.
        backdate(&app, &sub, 40).await;
        run(&app, &root).await;
        let subs = subscriptions(&app, &ada).await;
        assert_eq!(subs[0]["status"], "canceled", "{:?}", subs[0]);
        assert_eq!(grants(&app, &ada).await.len(), 2);
        let r = app.patch(&path, Some(&ada.access), json!({"cancel_at_period_end": false})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "an ended subscription cannot be changed: {}", r.text);

        // Buying again starts a new one; the admin sees both.
        buy_and_pay(&app, &ada, &plan_id).await;
        let subs = subscriptions(&app, &ada).await;
        assert_eq!((subs.len(), subs[0]["status"].as_str()), (2, Some("active")));
        let r = app.get(&format!("/api/v1/admin/billing/subscriptions?user_id={}", ada.id), Some(&root.access)).await;
        assert_eq!(r.json.as_array().unwrap().len(), 2, "{}", r.text);
        assert!(subscriptions(&app, &bob).await.is_empty());

        // A plan taken off the offer cannot be bought; unknown plans are 404.
        let r = app.patch(&format!("/api/v1/admin/billing/plans/{plan_id}"), Some(&root.access), json!({"active": false})).await;
        assert_eq!((r.status, r.json["active"].as_bool()), (StatusCode::OK, Some(false)), "{}", r.text);
        let r = app.post(&format!("/api/v1/billing/plans/{plan_id}/orders"), Some(&bob.access), json!({"provider": "epay"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = app.post("/api/v1/billing/plans/not-an-id/orders", Some(&bob.access), json!({"provider": "epay"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(app.get("/api/v1/billing/plans", Some(&bob.access)).await.json.as_array().unwrap().len(), 1);

        verify_clean(&app, &root, &ada).await;
    }

    async fn unpaid_orders_are_capped_per_user(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;
        // Eight orders at once against a cap of five: exactly five are made.
        let all = futures::future::join_all((0..8).map(|_| app.post("/api/v1/billing/orders", Some(&ada.access), json!({"amount": 1000, "provider": "epay"})))).await;
        let made: Vec<_> = all.iter().filter(|r| r.status == StatusCode::CREATED).collect();
        assert_eq!(made.len(), 5, "{:?}", all.iter().map(|r| &r.text).collect::<Vec<_>>());
        for r in all.iter().filter(|r| r.status != StatusCode::CREATED) {
            assert_eq!((r.status, r.error_code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_pending_orders"), "{}", r.text);
            assert_eq!(r.json["error"]["details"]["max_pending_orders"], 5);
        }
        // Plans count too; another user is not affected.
        let plan = make_plan(&app, &root, monthly()).await;
        let r = app.post(&format!("/api/v1/billing/plans/{}/orders", plan["id"].as_str().unwrap()), Some(&ada.access), json!({"provider": "epay"})).await;
        assert_eq!(r.error_code(), "too_many_pending_orders", "{}", r.text);
        order(&app, &bob, json!({"amount": 1000, "provider": "epay"})).await;
        // Paying one makes room for one.
        let id = made[0].json["order"]["id"].as_str().unwrap();
        assert_eq!(epay_notify(&app, &epay_notification(id, "10.00", EPAY_KEY)).await.text, "success");
        order(&app, &ada, json!({"amount": 1000, "provider": "epay"})).await;
        let r = app.post("/api/v1/billing/orders", Some(&ada.access), json!({"amount": 1000, "provider": "epay"})).await;
        assert_eq!(r.error_code(), "too_many_pending_orders", "{}", r.text);
        verify_clean(&app, &root, &ada).await;
    }

    async fn first_purchase_coupons_count_pending_orders(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let r = app.post("/api/v1/admin/billing/coupons", Some(&root.access),
            json!({"code": "NEWBIE", "name": "Welcome", "amount_off": 300, "first_purchase_only": true})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let checkout = |who: &Persona, coupon: Option<&str>| {
            let mut body = json!({"amount": 1000, "provider": "epay"});
            if let Some(c) = coupon {
                body["coupon"] = json!(c);
            }
            let access = who.access.clone();
            let app = &app;
            async move { app.post("/api/v1/billing/orders", Some(&access), body).await }
        };
        let refused = |r: &skein_testkit::Resp| {
            assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "coupon_unavailable"), "{}", r.text);
            assert_eq!(r.json["error"]["details"]["reason"], "first_purchase_only", "{}", r.text);
        };

        // An unpaid order without the coupon is a purchase already.
        let ada = app.register("ada").await;
        assert_eq!(checkout(&ada, None).await.status, StatusCode::CREATED);
        refused(&checkout(&ada, Some("NEWBIE")).await);
        let r = app.post("/api/v1/billing/coupons/quote", Some(&ada.access), json!({"code": "NEWBIE", "amount": 1000})).await;
        refused(&r);

        // One unpaid order holding the coupon: a second one is refused, and two at once get one.
        let carol = app.register("carol").await;
        assert_eq!(checkout(&carol, Some("NEWBIE")).await.status, StatusCode::CREATED);
        refused(&checkout(&carol, Some("newbie")).await);
        let dave = app.register("dave").await;
        let both = futures::future::join(checkout(&dave, Some("NEWBIE")), checkout(&dave, Some("NEWBIE"))).await;
        let created = [&both.0, &both.1].iter().filter(|r| r.status == StatusCode::CREATED).count();
        assert_eq!(created, 1, "{} / {}", both.0.text, both.1.text);
        refused(if both.0.status == StatusCode::CREATED { &both.1 } else { &both.0 });
        // A new user still gets it.
        let erin = app.register("erin").await;
        let r = checkout(&erin, Some("NEWBIE")).await;
        assert_eq!((r.status, r.json["order"]["discount_minor"].as_i64()), (StatusCode::CREATED, Some(300)), "{}", r.text);
    }
}

/// Two instances on one PostgreSQL, their schedulers ticking every second and an admin
/// running the job on both at once: the period that began is granted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_period_is_granted_once_across_two_instances() {
    let mut config = payment_config("http://127.0.0.1:9", Currency::Cny);
    config.subscription_every_secs = 1;
    let a = pay_app(Backend::Postgres, config).await;
    let b = a.sibling().await;
    let (root, _) = a.root_and_admin().await;
    let ada = a.register("ada").await;
    let plan = make_plan(&a, &root, monthly()).await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    buy_and_pay(&a, &ada, &plan_id).await;
    // The renewal is paid through the other instance.
    let r = b
        .post(
            &format!("/api/v1/billing/plans/{plan_id}/orders"),
            Some(&ada.access),
            json!({"provider": "epay"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        epay_notify(&b, &epay_notification(&id, "29.00", EPAY_KEY))
            .await
            .text,
        "success"
    );
    let before = balance(&a, &ada).await;
    let sub = subscriptions(&a, &ada).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(grants(&a, &ada).await.len(), 1);

    backdate(&a, &sub, 32).await;
    let runs = futures::future::join_all((0..8).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        run(app, &root)
    }))
    .await;
    // The schedulers may have got there first; nobody grants it twice.
    assert!(runs.iter().sum::<i64>() <= 1, "{runs:?}");
    // Let both schedulers tick a few times too.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(grants(&a, &ada).await.len(), 2);
    assert_eq!(grants(&b, &ada).await.len(), 2);
    assert_eq!(balance(&a, &ada).await, before + 1_000_000);
    let subs = subscriptions(&b, &ada).await;
    assert_eq!(
        (
            subs[0]["paid_periods"].as_i64(),
            subs[0]["granted_periods"].as_i64()
        ),
        (Some(2), Some(2))
    );
    verify_clean(&a, &root, &ada).await;
}
