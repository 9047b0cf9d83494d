//! Refunds of plan orders: a refund takes whole periods off the subscription it paid for —
//! a period paid ahead is removed and never granted, the period in progress is debited and
//! ends the subscription, an ended subscription's order is debited like a top-up — and the
//! order's state shows its refunds (`partially_refunded`, `refunded`). A refund racing the
//! period grant, on one instance or two on one PostgreSQL, takes one period exactly once.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::{Backend, Persona, TestApp, on_both_backends};

use crate::billing::payments::{EPAY_KEY, epay_notification, epay_notify, pay_app, payment_config};
use crate::billing::subscriptions::{
    backdate, balance, buy_and_pay, grants, make_plan, monthly, run, subscriptions,
};
use crate::billing::verify_clean;

/// An admin's refund of `order`, recorded by hand (EPay has no refund call).
async fn refund(app: &TestApp, admin: &Persona, order: &str, body: Value) -> skein_testkit::Resp {
    let mut body = body;
    body["manual"] = json!(true);
    if body.get("reason").is_none() {
        body["reason"] = json!("customer asked");
    }
    app.post(
        &format!("/api/v1/admin/billing/orders/{order}/refunds"),
        Some(&admin.access),
        body,
    )
    .await
}

async fn order_of(app: &TestApp, who: &Persona, id: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/billing/orders/{id}"), Some(&who.access))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

/// The subscription `id` of `who`.
async fn subscription(app: &TestApp, who: &Persona, id: &str) -> Value {
    subscriptions(app, who)
        .await
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no subscription {id}"))
}

fn periods(sub: &Value) -> (i64, i64, String) {
    (
        sub["paid_periods"].as_i64().unwrap(),
        sub["granted_periods"].as_i64().unwrap(),
        sub["status"].as_str().unwrap().to_string(),
    )
}

on_both_backends! {
    async fn a_refunded_plan_order_takes_its_period_off(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let plan = make_plan(&app, &root, monthly()).await;
        let plan_id = plan["id"].as_str().unwrap().to_string();
        let start = balance(&app, &ada).await;

        // Bought, and renewed ahead: two paid periods, one granted.
        let first = buy_and_pay(&app, &ada, &plan_id).await;
        let ahead = buy_and_pay(&app, &ada, &plan_id).await;
        let sub = subscriptions(&app, &ada).await[0]["id"].as_str().unwrap().to_string();
        assert_eq!(periods(&subscription(&app, &ada, &sub).await), (2, 1, "active".into()));
        assert_eq!(balance(&app, &ada).await, start + 1_000_000);

        // A part of the renewal goes back: money only, the period stays.
        let r = refund(&app, &root, &ahead, json!({"amount": 900})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["quota"].as_i64(), r.json["periods"].as_i64(), r.json["subscription_id"].as_str()), (Some(0), Some(0), Some(sub.as_str())), "{}", r.text);
        assert_eq!(order_of(&app, &ada, &ahead).await["status"], "partially_refunded");
        assert_eq!(periods(&subscription(&app, &ada, &sub).await), (2, 1, "active".into()));

        // The rest: the period paid ahead goes, and nothing is debited (it was never granted).
        let r = refund(&app, &root, &ahead, json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["amount_minor"].as_i64(), r.json["quota"].as_i64(), r.json["periods"].as_i64(), r.json["ended_subscription"].as_bool()),
            (Some(2000), Some(0), Some(1), Some(false)), "{}", r.text);
        let order = order_of(&app, &ada, &ahead).await;
        assert_eq!((order["status"].as_str(), order["refunded_minor"].as_i64()), (Some("refunded"), Some(2900)), "{order}");
        assert_eq!(periods(&subscription(&app, &ada, &sub).await), (1, 1, "active".into()));
        assert_eq!(balance(&app, &ada).await, start + 1_000_000);
        let r = refund(&app, &root, &ahead, json!({})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "already_refunded"), "{}", r.text);

        // A month goes by: the refunded period is never granted, and the subscription ends.
        backdate(&app, &sub, 32).await;
        assert_eq!(run(&app, &root).await, 0);
        assert_eq!(grants(&app, &ada).await.len(), 1);
        assert_eq!(periods(&subscription(&app, &ada, &sub).await), (1, 1, "expired".into()));
        assert_eq!(balance(&app, &ada).await, start + 1_000_000);

        // A new subscription refunded in its first period: its grant goes back and it ends.
        let third = buy_and_pay(&app, &ada, &plan_id).await;
        assert_eq!(balance(&app, &ada).await, start + 2_000_000);
        let new_sub = subscriptions(&app, &ada).await[0]["id"].as_str().unwrap().to_string();
        assert_ne!(new_sub, sub);
        let r = refund(&app, &root, &third, json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["quota"].as_i64(), r.json["periods"].as_i64(), r.json["ended_subscription"].as_bool()),
            (Some(1_000_000), Some(1), Some(true)), "{}", r.text);
        assert_eq!(periods(&subscription(&app, &ada, &new_sub).await), (0, 1, "refunded".into()));
        assert_eq!(balance(&app, &ada).await, start + 1_000_000);
        // Ended by the refund: nothing more is granted, and renewal cannot revive it.
        assert_eq!(run(&app, &root).await, 0);
        assert_eq!(grants(&app, &ada).await.len(), 2);

        // The first order, whose subscription ended long ago: its quota goes as a top-up's.
        let r = refund(&app, &root, &first, json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["quota"].as_i64(), r.json["periods"].as_i64()), (Some(1_000_000), Some(0)), "{}", r.text);
        assert_eq!(balance(&app, &ada).await, start);

        // A refunded order's notification, again: nothing is credited, its state stays.
        let r = epay_notify(&app, &epay_notification(&first, "29.00", EPAY_KEY)).await;
        assert_eq!(r.text, "success");
        assert_eq!(order_of(&app, &ada, &first).await["status"], "refunded");
        assert_eq!(balance(&app, &ada).await, start);

        // Admins filter orders by the new states.
        let r = app.get("/api/v1/admin/billing/orders?status=refunded", Some(&root.access)).await;
        assert_eq!(r.json["total"], 3, "{}", r.text);
        verify_clean(&app, &root, &ada).await;
    }

    async fn a_refund_racing_the_period_grant_takes_one_period_once(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let plan = make_plan(&app, &root, monthly()).await;
        let plan_id = plan["id"].as_str().unwrap().to_string();
        for name in ["ada", "bob", "carol", "dave"] {
            let who = app.register(name).await;
            buy_and_pay(&app, &who, &plan_id).await;
            let ahead = buy_and_pay(&app, &who, &plan_id).await;
            let sub = subscriptions(&app, &who).await[0]["id"].as_str().unwrap().to_string();
            let before = balance(&app, &who).await;
            // The renewed period has begun: the grant and the refund of its order race.
            backdate(&app, &sub, 32).await;
            let (refunded, _) = futures::future::join(refund(&app, &root, &ahead, json!({"force": true})), run(&app, &root)).await;
            assert_eq!(refunded.status, StatusCode::CREATED, "{}", refunded.text);
            run(&app, &root).await;
            // Either the period went before it was granted, or it was granted and taken back.
            let granted = grants(&app, &who).await.len() as i64;
            assert!(granted == 1 || granted == 2, "{granted}");
            assert_eq!(refunded.json["quota"].as_i64(), Some((granted - 1) * 1_000_000), "{name}: {}", refunded.text);
            assert_eq!(balance(&app, &who).await, before, "{name}: one period's quota, net of its refund");
            let (paid, _, status) = periods(&subscription(&app, &who, &sub).await);
            assert_eq!(paid, 1, "{name}");
            assert!(status == "expired" || status == "refunded", "{name}: {status}");
            verify_clean(&app, &root, &who).await;
        }
    }
}

/// Two instances on one PostgreSQL: the refund on one, the grant on the other, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_and_a_grant_on_two_instances_take_one_period_once() {
    let a = pay_app(
        Backend::Postgres,
        payment_config("http://127.0.0.1:9", Currency::Cny),
    )
    .await;
    let b = a.sibling().await;
    let (root, _) = a.root_and_admin().await;
    let plan = make_plan(&a, &root, monthly()).await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    for name in ["ada", "bob", "carol"] {
        let who = a.register(name).await;
        buy_and_pay(&a, &who, &plan_id).await;
        let ahead = buy_and_pay(&b, &who, &plan_id).await;
        let sub = subscriptions(&a, &who).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let before = balance(&a, &who).await;
        backdate(&a, &sub, 32).await;
        let (refunded, _) = futures::future::join(
            refund(&a, &root, &ahead, json!({"force": true})),
            run(&b, &root),
        )
        .await;
        assert_eq!(refunded.status, StatusCode::CREATED, "{}", refunded.text);
        run(&a, &root).await;
        let granted = grants(&a, &who).await.len() as i64;
        assert_eq!(
            refunded.json["quota"].as_i64(),
            Some((granted - 1) * 1_000_000),
            "{name}: {}",
            refunded.text
        );
        assert_eq!(balance(&b, &who).await, before, "{name}");
        let (paid, _, status) = periods(&subscription(&b, &who, &sub).await);
        assert_eq!(paid, 1);
        assert!(status == "expired" || status == "refunded", "{status}");
        verify_clean(&a, &root, &who).await;
    }
}
