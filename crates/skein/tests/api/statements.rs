//! Monthly statements reconcile with the ledger exactly: opening + every kind = closing =
//! the balance, consumption by model and by key each sum to the consumption, the top-up
//! order paid is listed; the CSV says the same; statements are private; bad months refused.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::on_both_backends;

use crate::billing::{adjust, billing_app, internal, quota, usage, verify_clean};
use crate::payments::{EPAY_KEY, epay_notification, epay_notify, order, payment_config};

fn sum(lines: &Value, field: &str) -> i64 {
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l[field].as_i64().unwrap())
        .sum()
}

on_both_backends! {
    async fn a_monthly_statement_reconciles_with_the_ledger_exactly(backend) {
        let app = billing_app(backend, |c| c.billing.payment = payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;
        adjust(&app, &root, &ada.id, 10_000).await;
        assert_eq!(adjust(&app, &root, &ada.id, -1_000).await.status, StatusCode::OK);
        // A top-up paid through EPay: 10.00 yuan at 50,000 units per yuan.
        let created = order(&app, &ada, json!({"amount": 1000, "provider": "epay"})).await;
        let order_id = created["order"]["id"].as_str().unwrap().to_string();
        assert_eq!(epay_notify(&app, &epay_notification(&order_id, "10.00", EPAY_KEY)).await.text, "success");
        // Consumption through two keys and without one, on two models.
        for (key, model, cost) in [(Some("key-1"), "gpt-4o", 30), (Some("key-1"), "claude-sonnet", 20), (Some("key-2"), "gpt-4o", 5), (None, "gpt-4o", 7)] {
            let mut hold = json!({"user_id": ada.id, "amount": 100});
            if let Some(key) = key {
                hold["key_id"] = json!(key);
            }
            let id = internal(&app, "reserve", hold).await.json["id"].as_str().unwrap().to_string();
            let r = internal(&app, "settle", json!({"reservation_id": id, "usage": usage(cost, &format!("r{cost}"), model)})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        // A hold released unused costs nothing and shows nowhere.
        let id = internal(&app, "reserve", json!({"user_id": ada.id, "amount": 100})).await.json["id"].as_str().unwrap().to_string();
        internal(&app, "release", json!({"reservation_id": id})).await;

        let month = &skein_core::ids::ms_to_rfc3339(skein_core::ids::now_ms())[..7];
        let balance = quota(&app, &ada).await["balance"].as_i64().unwrap();
        for offset in [0, 480, -720] {
            let r = app.get(&format!("/api/v1/billing/statements/{month}?utc_offset_minutes={offset}"), Some(&ada.access)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let s = &r.json;
            let (opening, closing) = (s["opening_balance"].as_i64().unwrap(), s["closing_balance"].as_i64().unwrap());
            if opening == 0 {
                // Everything happened inside this month in this offset.
                assert_eq!(closing, balance, "{s}");
            }
            assert_eq!(opening + sum(&s["by_kind"], "amount"), closing, "{s}");
            assert_eq!(s["credits"].as_i64().unwrap() - s["debits"].as_i64().unwrap(), closing - opening, "{s}");
        }
        let s = app.get(&format!("/api/v1/billing/statements/{month}"), Some(&ada.access)).await.json;
        assert_eq!((s["opening_balance"].as_i64(), s["closing_balance"].as_i64()), (Some(0), Some(balance)), "{s}");
        assert_eq!(s["top_ups"], 500_000);
        assert_eq!(s["consumption"], 62);
        assert_eq!(sum(&s["by_model"], "amount"), 62);
        assert_eq!(sum(&s["by_key"], "amount") + s["unattributed"].as_i64().unwrap(), 62);
        assert_eq!(s["unattributed"], 0, "{s}");
        let line = |list: &str, name: Value| s[list].as_array().unwrap().iter().find(|l| l["name"] == name).map(|l| (l["requests"].as_i64().unwrap(), l["amount"].as_i64().unwrap()));
        assert_eq!(line("by_model", json!("gpt-4o")), Some((3, 42)));
        assert_eq!(line("by_model", json!("claude-sonnet")), Some((1, 20)));
        assert_eq!(line("by_key", json!("key-1")), Some((2, 50)));
        assert_eq!(line("by_key", json!("key-2")), Some((1, 5)));
        assert_eq!(line("by_key", Value::Null), Some((1, 7)));
        let kinds = s["by_kind"].as_array().unwrap();
        let adjust_line = kinds.iter().find(|k| k["kind"] == "admin_adjust").unwrap();
        assert_eq!((adjust_line["entries"].as_i64(), adjust_line["amount"].as_i64()), (Some(2), Some(9_000)));
        assert_eq!(s["orders"].as_array().unwrap().len(), 1);
        assert_eq!(s["orders"][0]["id"], order_id.as_str());
        assert_eq!((s["orders"][0]["amount_minor"].as_i64(), s["orders"][0]["quota"].as_i64()), (Some(1000), Some(500_000)));

        // The CSV says the same.
        let csv = app.get(&format!("/api/v1/billing/statements/{month}/csv"), Some(&ada.access)).await;
        assert_eq!(csv.status, StatusCode::OK);
        assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
        assert!(csv.text.starts_with("section,name,count,amount\n"), "{}", csv.text);
        assert!(csv.text.contains(&format!("summary,closing_balance,,{balance}\n")), "{}", csv.text);
        assert!(csv.text.contains("model,gpt-4o,3,42\n"), "{}", csv.text);
        assert!(csv.text.contains("key,key-1,2,50\n"), "{}", csv.text);

        // A month before anything happened: empty, and it closes where the next one opens.
        let s = app.get("/api/v1/billing/statements/2020-01", Some(&ada.access)).await.json;
        assert_eq!((s["opening_balance"].as_i64(), s["closing_balance"].as_i64(), s["by_kind"].as_array().map(Vec::len)), (Some(0), Some(0), Some(0)));

        // Private: bob sees only his own; an admin sees ada's; bob cannot use the admin route.
        let b = app.get(&format!("/api/v1/billing/statements/{month}"), Some(&bob.access)).await.json;
        assert_eq!((b["consumption"].as_i64(), b["orders"].as_array().map(Vec::len)), (Some(0), Some(0)));
        let a = app.get(&format!("/api/v1/admin/billing/users/{}/statements/{month}", ada.id), Some(&root.access)).await;
        assert_eq!((a.status, a.json["closing_balance"].as_i64()), (StatusCode::OK, Some(balance)), "{}", a.text);
        let r = app.get(&format!("/api/v1/admin/billing/users/{}/statements/{month}", ada.id), Some(&bob.access)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        for bad in ["2026-13", "2026-1", "december", "2026-12?utc_offset_minutes=900"] {
            let r = app.get(&format!("/api/v1/billing/statements/{bad}"), Some(&ada.access)).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.text);
        }
        verify_clean(&app, &root, &ada).await;
    }
}
