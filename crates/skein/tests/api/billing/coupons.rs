//! Coupons at checkout: admins make them (bad input refused), users check and apply them,
//! the order pays the discounted amount for the full quota, and the limits hold under
//! concurrency — the same coupon used twice at once by one user, and a limited coupon raced
//! by many users — on SQLite and PostgreSQL. Orders that fail give their coupon back; an
//! expired one keeps it while its payment page may still be paid.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::{Backend, Persona, TestApp, on_both_backends};

use crate::billing::payments::{
    EPAY_KEY, epay_notification, epay_notify, order_status, pay_app, payment_config,
};
use crate::billing::{quota, verify_clean};

async fn make(app: &TestApp, admin: &Persona, body: Value) -> Value {
    let r = app
        .post("/api/v1/admin/billing/coupons", Some(&admin.access), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json
}

async fn checkout(app: &TestApp, who: &Persona, amount: i64, coupon: &str) -> skein_testkit::Resp {
    app.post(
        "/api/v1/billing/orders",
        Some(&who.access),
        json!({"amount": amount, "provider": "epay", "coupon": coupon}),
    )
    .await
}

fn reason(r: &skein_testkit::Resp) -> String {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "coupon_unavailable", "{}", r.text);
    r.json["error"]["details"]["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

fn iso(ms: i64) -> String {
    skein_core::ids::ms_to_rfc3339(ms)
}

on_both_backends! {
    async fn coupons_discount_top_ups_and_hold_to_their_limits_under_concurrency(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;

        // Bad input is refused with the field named; users cannot make coupons.
        for (body, field) in [
            (json!({"code": "X1", "name": "short", "percent_off": 10}), "code"),
            (json!({"code": "BOTH", "name": "both", "percent_off": 10, "amount_off": 100}), "percent_off"),
            (json!({"code": "NONE", "name": "none"}), "percent_off"),
            (json!({"code": "P101", "name": "too much", "percent_off": 101}), "percent_off"),
            (json!({"code": "LIMIT0", "name": "zero", "percent_off": 10, "total_limit": 0}), "total_limit"),
            (json!({"code": "WHEN", "name": "when", "percent_off": 10, "ends_at": "tomorrow"}), "ends_at"),
            (json!({"code": "BACKWARD", "name": "backwards", "percent_off": 10, "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}), "ends_at"),
        ] {
            let r = app.post("/api/v1/admin/billing/coupons", Some(&root.access), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
        }
        let r = app.post("/api/v1/admin/billing/coupons", Some(&ada.access), json!({"code": "MINE", "name": "mine", "percent_off": 90})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        let spring = make(&app, &root, json!({"code": "spring20", "name": "Spring", "percent_off": 20, "min_spend": 2000, "per_user_limit": 1})).await;
        assert_eq!((spring["code"].as_str(), spring["kind"].as_str(), spring["currency"].as_str()), (Some("SPRING20"), Some("percent"), Some("CNY")));
        let r = app.post("/api/v1/admin/billing/coupons", Some(&root.access), json!({"code": "Spring20", "name": "again", "percent_off": 5})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("coupon_code_taken")), "{}", r.text);

        // A quote, before paying: below the minimum spend, unknown, then the discount.
        let quote = |code: &'static str, amount: i64| {
            let app = &app;
            let ada = &ada;
            async move { app.post("/api/v1/billing/coupons/quote", Some(&ada.access), json!({"code": code, "amount": amount})).await }
        };
        assert_eq!(reason(&quote("spring20", 1000).await), "min_spend");
        assert_eq!(reason(&quote("NOPE", 5000).await), "unknown");
        let q = quote(" spring20 ", 5000).await;
        assert_eq!((q.status, q.json["discount"].as_i64(), q.json["pay_amount"].as_i64()), (StatusCode::OK, Some(1000), Some(4000)), "{}", q.text);

        // The same coupon (one use per user) used twice at once: one order gets it.
        let both = futures::future::join(checkout(&app, &ada, 5000, "SPRING20"), checkout(&app, &ada, 5000, "spring20")).await;
        let (won, lost) = if both.0.status == StatusCode::CREATED { (both.0, both.1) } else { (both.1, both.0) };
        assert_eq!(won.status, StatusCode::CREATED, "{}", won.text);
        assert_eq!(reason(&lost), "per_user_limit");
        let placed = &won.json["order"];
        // 50.00 less 20 %: 40.00 is paid for 50.00 worth of quota.
        assert_eq!((placed["amount_minor"].as_i64(), placed["discount_minor"].as_i64(), placed["quota"].as_i64()), (Some(4000), Some(1000), Some(2_500_000)), "{}", won.text);
        assert_eq!(placed["coupon_id"], spring["id"]);
        assert!(won.json["pay_url"].as_str().unwrap().contains("money=40.00"), "{}", won.text);
        let id = placed["id"].as_str().unwrap().to_string();

        // Paid the undiscounted amount: the order fails, nothing is credited, and the coupon
        // comes back.
        let before = quota(&app, &ada).await["balance"].as_i64().unwrap();
        epay_notify(&app, &epay_notification(&id, "50.00", EPAY_KEY)).await;
        assert_eq!(order_status(&app, &ada, &id).await, "failed");
        let again = checkout(&app, &ada, 5000, "SPRING20").await;
        assert_eq!(again.status, StatusCode::CREATED, "a failed order gave the coupon back: {}", again.text);
        let id = again.json["order"]["id"].as_str().unwrap().to_string();
        let r = epay_notify(&app, &epay_notification(&id, "40.00", EPAY_KEY)).await;
        assert_eq!(r.text, "success");
        assert_eq!(order_status(&app, &ada, &id).await, "paid");
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 2_500_000);
        assert_eq!(reason(&checkout(&app, &ada, 5000, "SPRING20").await), "per_user_limit");

        // A coupon of three uses raced by eight users at once: exactly three orders get it.
        make(&app, &root, json!({"code": "FIRST3", "name": "Three", "amount_off": 500, "total_limit": 3})).await;
        let mut racers = Vec::new();
        for i in 0..8 {
            racers.push(app.register(&format!("racer{i}")).await);
        }
        let all = futures::future::join_all(racers.iter().map(|p| checkout(&app, p, 1000, "FIRST3"))).await;
        let wins: Vec<_> = all.iter().filter(|r| r.status == StatusCode::CREATED).collect();
        assert_eq!(wins.len(), 3, "{:?}", all.iter().map(|r| &r.text).collect::<Vec<_>>());
        assert!(wins.iter().all(|r| r.json["order"]["amount_minor"] == 500));
        assert!(all.iter().filter(|r| r.status != StatusCode::CREATED).all(|r| reason(r) == "used_up"));
        let list = app.get("/api/v1/admin/billing/coupons", Some(&root.access)).await;
        let first3 = list.json["items"].as_array().unwrap().iter().find(|c| c["code"] == "FIRST3").unwrap().clone();
        assert_eq!(first3["taken"], 3, "{first3}");

        // First purchase only: ada has paid, a new user has not.
        make(&app, &root, json!({"code": "NEWBIE", "name": "Welcome", "amount_off": 300, "first_purchase_only": true})).await;
        assert_eq!(reason(&checkout(&app, &ada, 1000, "NEWBIE").await), "first_purchase_only");
        let carol = app.register("carol").await;
        assert_eq!(checkout(&app, &carol, 1000, "NEWBIE").await.status, StatusCode::CREATED);

        // The validity window, and an admin switching a coupon off (and on).
        let now = skein_core::ids::now_ms();
        make(&app, &root, json!({"code": "LATER", "name": "Later", "percent_off": 10, "starts_at": iso(now + 86_400_000)})).await;
        make(&app, &root, json!({"code": "GONE", "name": "Gone", "percent_off": 10, "ends_at": iso(now - 1000)})).await;
        assert_eq!(reason(&checkout(&app, &carol, 1000, "LATER").await), "not_started");
        assert_eq!(reason(&checkout(&app, &carol, 1000, "GONE").await), "ended");
        let off = make(&app, &root, json!({"code": "SWITCH", "name": "Switch", "percent_off": 10})).await;
        let path = format!("/api/v1/admin/billing/coupons/{}", off["id"].as_str().unwrap());
        let r = app.patch(&path, Some(&root.access), json!({"disabled": true})).await;
        assert_eq!((r.status, r.json["disabled"].as_bool()), (StatusCode::OK, Some(true)), "{}", r.text);
        assert_eq!(reason(&checkout(&app, &carol, 1000, "SWITCH").await), "unknown");
        app.patch(&path, Some(&root.access), json!({"disabled": false})).await;
        assert_eq!(checkout(&app, &carol, 1000, "SWITCH").await.status, StatusCode::CREATED);
        let r = app.patch("/api/v1/admin/billing/coupons/not-an-id", Some(&root.access), json!({"disabled": true})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        verify_clean(&app, &root, &ada).await;
    }
}

/// An order that expires unpaid keeps its coupon use: its payment page may still be paid
/// (and is credited), so giving the use to another order at once would let both be paid
/// past the coupon's limit. A late payment is credited and the use stays taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_orders_coupon_is_not_handed_out_again_while_it_can_still_be_paid() {
    let mut config = payment_config("http://127.0.0.1:9", Currency::Cny);
    config.order_ttl_secs = 1;
    config.reconcile_every_secs = 1;
    let app = pay_app(Backend::Sqlite, config).await;
    let root = app.root().await;
    let ada = app.register("ada").await;
    let bob = app.register("bob").await;
    make(
        &app,
        &root,
        json!({"code": "ONLYONE", "name": "One", "amount_off": 100, "total_limit": 1}),
    )
    .await;
    let held = checkout(&app, &ada, 1000, "ONLYONE").await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    assert_eq!(
        reason(&checkout(&app, &bob, 1000, "ONLYONE").await),
        "used_up"
    );
    let id = held.json["order"]["id"].as_str().unwrap().to_string();
    let mut expired = false;
    for _ in 0..100 {
        if order_status(&app, &ada, &id).await == "expired" {
            expired = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(expired, "the order never expired");
    // Two more expiry sweeps: the use is still held.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(
        reason(&checkout(&app, &bob, 1000, "ONLYONE").await),
        "used_up"
    );
    // Ada pays the old page late: credited at the discounted price, the use stays hers.
    let before = quota(&app, &ada).await["balance"].as_i64().unwrap();
    let r = epay_notify(&app, &epay_notification(&id, "9.00", EPAY_KEY)).await;
    assert_eq!(r.text, "success");
    assert_eq!(order_status(&app, &ada, &id).await, "paid");
    assert!(quota(&app, &ada).await["balance"].as_i64().unwrap() > before);
    assert_eq!(
        reason(&checkout(&app, &bob, 1000, "ONLYONE").await),
        "used_up"
    );
    verify_clean(&app, &root, &ada).await;
}

/// Two instances of one deployment on PostgreSQL (each with its own writer) racing for a
/// coupon: the row lock taken before the limits are counted keeps the total exact, and one
/// user's two checkouts at once, one per instance, still get one use.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limited_coupon_raced_across_two_instances_is_taken_exactly() {
    let one = pay_app(
        Backend::Postgres,
        payment_config("http://127.0.0.1:9", Currency::Cny),
    )
    .await;
    let two = one.sibling().await;
    let root = one.root().await;
    make(
        &one,
        &root,
        json!({"code": "TWOHOSTS", "name": "Across", "amount_off": 100, "total_limit": 4}),
    )
    .await;
    make(
        &one,
        &root,
        json!({"code": "ONCEEACH", "name": "Once", "amount_off": 100, "per_user_limit": 1}),
    )
    .await;
    let mut racers = Vec::new();
    for i in 0..12 {
        racers.push(one.register(&format!("host{i}")).await);
    }
    let all = futures::future::join_all(racers.iter().enumerate().map(|(i, p)| {
        let app = if i % 2 == 0 { &one } else { &two };
        checkout(app, p, 1000, "TWOHOSTS")
    }))
    .await;
    let won = all
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        won,
        4,
        "{:?}",
        all.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert!(
        all.iter()
            .filter(|r| r.status != StatusCode::CREATED)
            .all(|r| reason(r) == "used_up")
    );

    let ada = one.register("ada").await;
    let both = futures::future::join(
        checkout(&one, &ada, 1000, "ONCEEACH"),
        checkout(&two, &ada, 1000, "ONCEEACH"),
    )
    .await;
    let statuses = [both.0.status, both.1.status];
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{} / {}",
        both.0.text,
        both.1.text
    );
}
