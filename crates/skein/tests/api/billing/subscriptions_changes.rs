//! Coupons on plan purchases (scoped to top-ups, plans or some plans; the order records the
//! discount, a refund gives back what was paid, and a coupon of one use raced by many
//! buyers is taken once), and changes of plan: an upgrade prorated exactly and granted once
//! per period across the change, a downgrade scheduled for the end of the paid time,
//! cancellable until the cheaper plan is paid for.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::{Persona, TestApp, on_both_backends};

use crate::billing::payments::{EPAY_KEY, epay_notification, epay_notify, pay_app, payment_config};
use crate::billing::subscriptions::{
    backdate, balance, grants, make_plan, monthly, run, subscriptions,
};
use crate::billing::verify_clean;

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

fn basic() -> Value {
    json!({"name_en": "Basic monthly", "name_zh": "基础版（月付）", "price": 990, "period": "month", "quota_per_period": 300_000})
}

fn max() -> Value {
    json!({"name_en": "Max monthly", "name_zh": "旗舰版（月付）", "price": 9900, "period": "month", "quota_per_period": 5_000_000})
}

async fn coupon(app: &TestApp, admin: &Persona, body: Value) -> Value {
    let r = app
        .post("/api/v1/admin/billing/coupons", Some(&admin.access), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json
}

async fn buy(
    app: &TestApp,
    who: &Persona,
    plan: &str,
    coupon: Option<&str>,
) -> skein_testkit::Resp {
    app.post(
        &format!("/api/v1/billing/plans/{plan}/orders"),
        Some(&who.access),
        json!({"provider": "epay", "coupon": coupon}),
    )
    .await
}

/// Pays order `id` of `amount_minor` with a signed EPay notification.
async fn pay(app: &TestApp, id: &str, amount_minor: i64) {
    let r = epay_notify(app, &epay_notification(id, &money(amount_minor), EPAY_KEY)).await;
    assert_eq!(r.text, "success");
}

async fn del(app: &TestApp, path: &str, who: &Persona) -> skein_testkit::Resp {
    app.send(app.client.delete(app.url(path)).bearer_auth(&who.access))
        .await
}

/// Buys `plan` for `who` and pays it in full; the order id.
async fn buy_pay(app: &TestApp, who: &Persona, plan: &str) -> String {
    let r = buy(app, who, plan, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["order"]["id"].as_str().unwrap().to_string();
    pay(app, &id, r.json["order"]["amount_minor"].as_i64().unwrap()).await;
    id
}

fn reason(r: &skein_testkit::Resp) -> String {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    r.json["error"]["details"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ms(rfc3339: &Value) -> i64 {
    skein_core::ids::rfc3339_to_ms(rfc3339.as_str().unwrap()).unwrap()
}

/// `⌊value × (end − t) / (end − start)⌋` at the latest and earliest `t` a call could have
/// been answered at: the exact figure the server computed lies between.
fn prorated_bounds(value: i64, start: i64, end: i64, before: i64, after: i64) -> (i64, i64) {
    let at = |t: i64| (i128::from(value) * i128::from(end - t) / i128::from(end - start)) as i64;
    (at(after), at(before))
}

on_both_backends! {
    async fn coupons_apply_to_plans_by_scope_and_refunds_give_back_what_was_paid(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let pro = make_plan(&app, &root, monthly()).await["id"].as_str().unwrap().to_string();
        let cheap = make_plan(&app, &root, basic()).await["id"].as_str().unwrap().to_string();

        // Bad scopes are refused with the field named.
        for (body, field) in [
            (json!({"code": "WEEKLY", "name": "x", "percent_off": 10, "scope": "weekly"}), "scope"),
            (json!({"code": "TOPPLAN", "name": "x", "percent_off": 10, "scope": "topup", "plan_ids": [pro]}), "plan_ids"),
            (json!({"code": "NOPLAN", "name": "x", "percent_off": 10, "scope": "plan", "plan_ids": ["01890000-0000-7000-8000-000000000000"]}), "plan_ids"),
            (json!({"code": "JUNKID", "name": "x", "percent_off": 10, "plan_ids": ["junk"]}), "plan_ids"),
        ] {
            let r = app.post("/api/v1/admin/billing/coupons", Some(&root.access), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
        }

        // A top-up coupon is not for plans, and a coupon for one plan is not for another or
        // for top-ups.
        let topup = coupon(&app, &root, json!({"code": "TOPUP50", "name": "Top-ups", "percent_off": 50, "scope": "topup"})).await;
        assert_eq!(topup["scope"], "topup");
        assert_eq!(reason(&buy(&app, &ada, &pro, Some("topup50")).await), "scope");
        let only_pro = coupon(&app, &root, json!({"code": "PRO10", "name": "Pro", "percent_off": 10, "scope": "plan", "plan_ids": [pro]})).await;
        assert_eq!((only_pro["scope"].as_str(), only_pro["plan_ids"].clone()), (Some("plan"), json!([pro])));
        assert_eq!(reason(&buy(&app, &ada, &cheap, Some("PRO10")).await), "scope");
        let r = app.post("/api/v1/billing/orders", Some(&ada.access), json!({"amount": 5000, "provider": "epay", "coupon": "PRO10"})).await;
        assert_eq!(reason(&r), "scope");
        let r = app.post("/api/v1/billing/coupons/quote", Some(&ada.access), json!({"code": "PRO10", "amount": 990, "plan_id": cheap})).await;
        assert_eq!(reason(&r), "scope");
        // The minimum spend counts on plans as on top-ups.
        coupon(&app, &root, json!({"code": "BIGSPEND", "name": "Big", "amount_off": 500, "min_spend": 3000})).await;
        assert_eq!(reason(&buy(&app, &ada, &pro, Some("BIGSPEND")).await), "min_spend");
        // Refused checkouts made no orders.
        let r = app.get("/api/v1/billing/orders", Some(&ada.access)).await;
        assert_eq!(r.json["total"], 0, "{}", r.text);

        // The quote and the order agree: 10% off 29.00, for the whole period's quota.
        let r = app.post("/api/v1/billing/coupons/quote", Some(&ada.access), json!({"code": "pro10", "amount": 2900, "plan_id": pro})).await;
        assert_eq!((r.status, r.json["discount"].as_i64(), r.json["pay_amount"].as_i64()), (StatusCode::OK, Some(290), Some(2610)), "{}", r.text);
        let r = buy(&app, &ada, &pro, Some("pro10")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let order = &r.json["order"];
        assert_eq!((order["amount_minor"].as_i64(), order["discount_minor"].as_i64(), order["quota"].as_i64(), order["coupon_id"].as_str()),
            (Some(2610), Some(290), Some(1_000_000), only_pro["id"].as_str()), "{}", r.text);
        let id = order["id"].as_str().unwrap().to_string();
        // The full price does not pay a discounted order; the discounted amount does.
        let wrong = epay_notify(&app, &epay_notification(&id, "29.00", EPAY_KEY)).await;
        assert_eq!(wrong.text, "success", "taken, but as a mismatch");
        let r = app.get(&format!("/api/v1/billing/orders/{id}"), Some(&ada.access)).await;
        assert_eq!(r.json["status"], "failed", "{}", r.text);
        let r = buy(&app, &ada, &pro, Some("pro10")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.json["order"]["id"].as_str().unwrap().to_string();
        let before = balance(&app, &ada).await;
        pay(&app, &id, 2610).await;
        assert_eq!(balance(&app, &ada).await, before + 1_000_000);
        let r = app.get("/api/v1/admin/billing/coupons", Some(&root.access)).await;
        let taken = r.json["items"].as_array().unwrap().iter().find(|c| c["code"] == "PRO10").unwrap()["taken"].clone();
        assert_eq!(taken, 1, "{}", r.text);

        // A refund gives back what was paid, never the list price.
        let refund = |body: Value| {
            let app = &app;
            let root = &root;
            let id = id.clone();
            async move {
                let mut body = body;
                body["manual"] = json!(true);
                body["reason"] = json!("asked");
                app.post(&format!("/api/v1/admin/billing/orders/{id}/refunds"), Some(&root.access), body).await
            }
        };
        let r = refund(json!({"amount": 2900})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("refund_exceeds_order")), "{}", r.text);
        assert_eq!(r.json["error"]["details"]["remaining"], 2610, "{}", r.text);
        let r = refund(json!({})).await;
        assert_eq!((r.status, r.json["amount_minor"].as_i64()), (StatusCode::CREATED, Some(2610)), "{}", r.text);
        let r = app.get(&format!("/api/v1/billing/orders/{id}"), Some(&ada.access)).await;
        assert_eq!((r.json["status"].as_str(), r.json["refunded_minor"].as_i64()), (Some("refunded"), Some(2610)), "{}", r.text);
        assert_eq!(balance(&app, &ada).await, before, "the period's grant went back with the refund");
        verify_clean(&app, &root, &ada).await;
    }

    async fn a_plan_coupon_of_one_use_raced_by_many_buyers_is_taken_once(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let pro = make_plan(&app, &root, monthly()).await["id"].as_str().unwrap().to_string();
        let once = coupon(&app, &root, json!({"code": "ONLYONE", "name": "One", "amount_off": 900, "total_limit": 1, "scope": "plan"})).await;
        let mut people = Vec::new();
        for i in 0..10 {
            people.push(app.register(&format!("buyer{i}")).await);
        }
        let results = futures::future::join_all(people.iter().map(|p| buy(&app, p, &pro, Some("ONLYONE")))).await;
        let won: Vec<&skein_testkit::Resp> = results.iter().filter(|r| r.status == StatusCode::CREATED).collect();
        assert_eq!(won.len(), 1, "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
        assert!(results.iter().filter(|r| r.status != StatusCode::CREATED).all(|r| reason(r) == "used_up"));
        assert_eq!((won[0].json["order"]["amount_minor"].as_i64(), won[0].json["order"]["discount_minor"].as_i64()), (Some(2000), Some(900)));
        let r = app.get("/api/v1/admin/billing/coupons", Some(&root.access)).await;
        let found = r.json["items"].as_array().unwrap().iter().find(|c| c["id"] == once["id"]).unwrap().clone();
        assert_eq!(found["taken"], 1, "{found}");
        // Paid, it stays taken; nobody else gets it.
        let id = won[0].json["order"]["id"].as_str().unwrap().to_string();
        pay(&app, &id, 2000).await;
        assert_eq!(reason(&buy(&app, &people[0], &pro, Some("ONLYONE")).await), "used_up");
    }

    async fn an_upgrade_is_prorated_exactly_and_granted_once_per_period(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;
        let cheap = make_plan(&app, &root, basic()).await["id"].as_str().unwrap().to_string();
        let pro = make_plan(&app, &root, monthly()).await["id"].as_str().unwrap().to_string();
        let top = make_plan(&app, &root, max()).await["id"].as_str().unwrap().to_string();
        buy_pay(&app, &ada, &cheap).await;
        let sub = subscriptions(&app, &ada).await[0]["id"].as_str().unwrap().to_string();
        // Ten days of the month used.
        backdate(&app, &sub, 10).await;
        let view = subscriptions(&app, &ada).await[0].clone();
        let (start, end) = (ms(&view["current_period_start"]), ms(&view["paid_until"]));

        // Bad changes.
        let path = format!("/api/v1/billing/subscriptions/{sub}/change");
        let r = app.post(&format!("{path}/preview"), Some(&ada.access), json!({"plan_id": cheap})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("same_plan")), "{}", r.text);
        let r = app.post(&format!("{path}/preview"), Some(&bob.access), json!({"plan_id": pro})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "not bob's: {}", r.text);
        let r = app.post(&format!("{path}/preview"), Some(&ada.access), json!({"plan_id": "01890000-0000-7000-8000-000000000000"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = app.post(&path, Some(&ada.access), json!({"plan_id": pro})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("provider")), "{}", r.text);

        // The preview: credit for the unused two thirds of 9.90, and the unused part of the
        // 300,000 granted, exactly by the documented rule.
        let before = skein_core::ids::now_ms();
        let r = app.post(&format!("{path}/preview"), Some(&ada.access), json!({"plan_id": pro})).await;
        let after = skein_core::ids::now_ms();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let p = r.json.clone();
        assert_eq!(p["kind"], "upgrade");
        let (lo, hi) = prorated_bounds(990, start, end, before, after);
        let credit = p["credit_minor"].as_i64().unwrap();
        assert!((lo..=hi).contains(&credit), "credit {credit} not in {lo}..={hi}: {p}");
        assert!(credit > 0 && credit < 990, "{p}");
        let (qlo, qhi) = prorated_bounds(300_000, start, end, before, after);
        let offset = p["quota_offset"].as_i64().unwrap();
        assert!((qlo..=qhi).contains(&offset), "offset {offset} not in {qlo}..={qhi}: {p}");
        assert_eq!(p["pay_minor"].as_i64().unwrap(), 2900 - credit, "{p}");
        assert_eq!(p["first_grant"].as_i64().unwrap(), 1_000_000 - offset, "{p}");
        assert_eq!(p["forfeited_minor"], 0);

        // Applied: an order of the prorated price, which records its credit.
        let before = skein_core::ids::now_ms();
        let r = app.post(&path, Some(&ada.access), json!({"plan_id": pro, "provider": "epay"})).await;
        let after = skein_core::ids::now_ms();
        assert_eq!((r.status, r.json["kind"].as_str()), (StatusCode::OK, Some("upgrade")), "{}", r.text);
        let order = r.json["order"].clone();
        let credit = order["credit_minor"].as_i64().unwrap();
        let (lo, hi) = prorated_bounds(990, start, end, before, after);
        assert!((lo..=hi).contains(&credit), "{order}");
        assert_eq!((order["amount_minor"].as_i64(), order["change_from"].as_str(), order["plan_id"].as_str()),
            (Some(2900 - credit), Some(sub.as_str()), Some(pro.as_str())), "{order}");
        let offset = 1_000_000 - order["quota"].as_i64().unwrap();
        let (qlo, qhi) = prorated_bounds(300_000, start, end, before, after);
        assert!((qlo..=qhi).contains(&offset), "{order}");
        // Not yet paid: nothing changed.
        assert_eq!(subscriptions(&app, &ada).await.len(), 1);
        let balance_before = balance(&app, &ada).await;
        let order_id = order["id"].as_str().unwrap().to_string();
        // Paid twice over: one change, one grant.
        for _ in 0..2 {
            pay(&app, &order_id, 2900 - credit).await;
        }
        let subs = subscriptions(&app, &ada).await;
        assert_eq!(subs.len(), 2, "{subs:?}");
        let new = subs.iter().find(|s| s["plan"]["id"] == pro.as_str()).unwrap();
        let old = subs.iter().find(|s| s["id"] == sub.as_str()).unwrap();
        assert_eq!((new["status"].as_str(), old["status"].as_str()), (Some("active"), Some("upgraded")), "{subs:?}");
        assert_eq!(balance(&app, &ada).await, balance_before + 1_000_000 - offset);
        let amounts: Vec<i64> = grants(&app, &ada).await.iter().map(|g| g["amount"].as_i64().unwrap()).collect();
        assert_eq!(amounts, vec![1_000_000 - offset, 300_000], "newest first");
        // The ticks grant nothing more for either subscription.
        for _ in 0..3 {
            assert_eq!(run(&app, &root).await, 0);
        }
        assert_eq!(grants(&app, &ada).await.len(), 2);
        // The old one cannot be changed again; the next period of the new one is granted once.
        let r = app.post(&format!("{path}/preview"), Some(&ada.access), json!({"plan_id": top})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let new_id = new["id"].as_str().unwrap().to_string();
        buy_pay(&app, &ada, &pro).await;
        // Renewed ahead: no upgrade, the renewal would be lost.
        let r = app.post(&format!("/api/v1/billing/subscriptions/{new_id}/change/preview"), Some(&ada.access), json!({"plan_id": top})).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("renewed_ahead")), "{}", r.text);
        backdate(&app, &new_id, 32).await;
        assert_eq!(run(&app, &root).await, 1);
        assert_eq!(run(&app, &root).await, 0);
        let amounts: Vec<i64> = grants(&app, &ada).await.iter().map(|g| g["amount"].as_i64().unwrap()).collect();
        assert_eq!(amounts, vec![1_000_000, 1_000_000 - offset, 300_000], "the second period is whole");
        verify_clean(&app, &root, &ada).await;
    }

    async fn a_downgrade_waits_for_the_paid_time_and_can_be_cancelled(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let cheap = make_plan(&app, &root, basic()).await["id"].as_str().unwrap().to_string();
        let pro = make_plan(&app, &root, monthly()).await["id"].as_str().unwrap().to_string();
        buy_pay(&app, &ada, &pro).await;
        let view = subscriptions(&app, &ada).await[0].clone();
        let sub = view["id"].as_str().unwrap().to_string();
        let path = format!("/api/v1/billing/subscriptions/{sub}/change");

        let r = app.post(&format!("{path}/preview"), Some(&ada.access), json!({"plan_id": cheap})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.json["kind"].as_str(), r.json["pay_minor"].as_i64(), r.json["credit_minor"].as_i64(), r.json["price_minor"].as_i64()),
            (Some("downgrade"), Some(0), Some(0), Some(990)), "{}", r.text);
        assert_eq!(ms(&r.json["effective_at"]), ms(&view["paid_until"]));
        let balance_before = balance(&app, &ada).await;

        // Scheduled, with no payment; nothing changes now.
        let r = app.post(&path, Some(&ada.access), json!({"plan_id": cheap})).await;
        assert_eq!((r.status, r.json["kind"].as_str(), r.json["order"].clone()), (StatusCode::OK, Some("downgrade"), Value::Null), "{}", r.text);
        assert_eq!(r.json["subscription"]["scheduled_plan"]["id"], cheap.as_str(), "{}", r.text);
        assert_eq!(r.json["subscription"]["plan"]["id"], pro.as_str());
        assert_eq!(balance(&app, &ada).await, balance_before);
        // Renewing the plan being left is refused until the downgrade is cancelled.
        let r = buy(&app, &ada, &pro, None).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("downgrade_scheduled")), "{}", r.text);
        let r = del(&app, &path, &ada).await;
        assert_eq!((r.status, r.json["scheduled_plan"].clone()), (StatusCode::OK, Value::Null), "{}", r.text);
        let r = del(&app, &path, &ada).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing left to cancel: {}", r.text);
        let r = buy(&app, &ada, &pro, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

        // Scheduled again and the cheaper plan paid for: it waits for the paid time to end.
        let r = app.post(&path, Some(&ada.access), json!({"plan_id": cheap})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        buy_pay(&app, &ada, &cheap).await;
        let subs = subscriptions(&app, &ada).await;
        let next = subs.iter().find(|s| s["plan"]["id"] == cheap.as_str()).unwrap().clone();
        assert_eq!((next["upcoming"].as_bool(), next["granted_periods"].as_i64()), (Some(true), Some(0)), "{next}");
        assert_eq!(ms(&next["started_at"]), ms(&view["paid_until"]));
        assert_eq!(balance(&app, &ada).await, balance_before, "nothing granted before it begins");
        let r = del(&app, &path, &ada).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("downgrade_paid")), "{}", r.text);

        // A month later: the old plan ended, the cheaper one began and was granted once.
        backdate(&app, &sub, 32).await;
        backdate(&app, next["id"].as_str().unwrap(), 32).await;
        assert_eq!(run(&app, &root).await, 1);
        assert_eq!(run(&app, &root).await, 0);
        let subs = subscriptions(&app, &ada).await;
        let old = subs.iter().find(|s| s["id"] == sub.as_str()).unwrap();
        let next = subs.iter().find(|s| s["plan"]["id"] == cheap.as_str()).unwrap();
        assert_eq!((old["status"].as_str(), next["status"].as_str(), next["upcoming"].as_bool()), (Some("expired"), Some("active"), Some(false)), "{subs:?}");
        assert_eq!(balance(&app, &ada).await, balance_before + 300_000);
        verify_clean(&app, &root, &ada).await;
    }
}
