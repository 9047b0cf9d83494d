//! Monthly statements reconcile with the ledger exactly: opening + every kind = closing =
//! the balance, consumption by model and by key each sum to the consumption, the top-up
//! order paid is listed; the CSV says the same; statements are private; bad months refused.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::on_both_backends;

use crate::billing::payments::{EPAY_KEY, epay_notification, epay_notify, order, payment_config};
use crate::billing::{adjust, billing_app, internal, quota, usage, verify_clean};

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

        // The PDF says the same, in English and in Chinese: poppler's pdftotext reads the
        // words and figures back (the Chinese through the PDF's own UniGB-UCS2-H encoding).
        for (lang, words) in [("en", ["Skein monthly statement", "Closing balance", "By ledger kind"]), ("zh-CN", ["月度账单", "期末余额", "按模型消费"])] {
            let response = app.client.get(app.url(&format!("/api/v1/billing/statements/{month}/pdf?lang={lang}"))).bearer_auth(&ada.access).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["content-type"], "application/pdf");
            let pdf = response.bytes().await.unwrap();
            assert!(pdf.starts_with(b"%PDF-1.4"));
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("statement.pdf");
            std::fs::write(&path, &pdf).unwrap();
            let out = std::process::Command::new("pdftotext").args(["-layout"]).arg(&path).arg("-").output().expect("pdftotext (poppler-utils, which scripts/test installs)");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
            for word in words {
                assert!(text.contains(word), "{lang}: {word} missing in {text}");
            }
            let closing = balance.to_string();
            let grouped: String = closing.chars().rev().collect::<Vec<_>>().chunks(3).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(",").chars().rev().collect();
            assert!(text.contains(&grouped), "{lang}: closing balance {grouped} missing in {text}");
            assert!(text.contains("gpt-4o"), "{text}");
        }
        let r = app.get(&format!("/api/v1/billing/statements/{month}/pdf?lang=fr"), Some(&ada.access)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

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

/// A raw message with quoted-printable escapes (`=E6=9C=88`) decoded, as UTF-8 (lettre sends
/// Chinese that way; `messages_to` already joined the soft line breaks).
pub(crate) fn decoded_parts(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

on_both_backends! {
    async fn statements_are_mailed_on_demand_and_once_a_month_by_the_run(backend) {
        let Some((port, maildir)) = crate::user::accounts::smtp() else {
            eprintln!("SKEIN_TEST_SMTP_PORT is not set: mail is not tested (scripts/test starts aiosmtpd)");
            return;
        };
        let app = billing_app(backend, |c| {
            crate::user::accounts::mail_config(c, port);
            c.billing.payment = payment_config("http://127.0.0.1:9", Currency::Cny);
        })
        .await;
        let root = app.root().await;
        // Two users with verified addresses (one reads Chinese), one without an address.
        let mut people = Vec::new();
        for (name, lang) in [("mia", "en"), ("lin", "zh-CN")] {
            let name = crate::user::accounts::unique(name);
            let email = format!("{name}@mail.test");
            assert_eq!(crate::user::accounts::register_with_email(&app, &name, &email).await, StatusCode::CREATED);
            let who = app.login(&name, skein_testkit::PASSWORD).await;
            let token = crate::user::accounts::link_token(&crate::user::accounts::wait_for_mail(&maildir, &email, 1).await, "verify-email");
            assert_eq!(app.post("/api/v1/auth/verify-email", None, json!({"token": token})).await.status, StatusCode::OK);
            let r = app.patch("/api/v1/user/profile", Some(&who.access), json!({"language": lang})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            adjust(&app, &root, &who.id, 1_234_567).await;
            people.push((who, email));
        }
        let nobody = app.register("nobody").await;
        adjust(&app, &root, &nobody.id, 5).await;
        let month = skein_core::ids::ms_to_rfc3339(skein_core::ids::now_ms())[..7].to_string();

        // On demand, this month so far: the English reader gets the figures in English.
        let (mia, mia_email) = &people[0];
        let r = app.post(&format!("/api/v1/billing/statements/{month}/email"), Some(&mia.access), json!({})).await;
        assert_eq!((r.status, r.json["queued"].as_bool()), (StatusCode::ACCEPTED, Some(true)), "{}", r.text);
        let mail = crate::user::accounts::wait_for_mail(&maildir, mia_email, 2).await;
        assert!(mail.contains(&format!("Subject: Your Skein statement for {month}")), "{mail}");
        assert!(mail.contains("Closing balance: 1,234,567 ($2.46)"), "{mail}");
        assert!(mail.contains(&format!("http://skein.test/billing/statements?month={month}")), "{mail}");
        // No verified address: nothing queued, and it says so.
        let r = app.post(&format!("/api/v1/billing/statements/{month}/email"), Some(&nobody.access), json!({})).await;
        assert_eq!((r.status, r.json["queued"].as_bool()), (StatusCode::ACCEPTED, Some(false)), "{}", r.text);
        let r = app.post("/api/v1/billing/statements/2026-13/email", Some(&mia.access), json!({})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

        // The monthly run: only for a month that is over; users cannot run it.
        let r = app.post("/api/v1/admin/billing/statements/mail", Some(&root.access), json!({"month": month})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("month")), "{}", r.text);
        let r = app.post("/api/v1/admin/billing/statements/mail", Some(&mia.access), json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // A month that is over covers every account with a ledger before its end.
        let long_ago = format!("{}-01", month[..4].parse::<i32>().unwrap() - 1);
        let r = app.post("/api/v1/admin/billing/statements/mail", Some(&root.access), json!({"month": long_ago})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.json["queued"].as_i64(), r.json["no_address"].as_i64()), (Some(0), Some(0)), "nobody had a ledger then: {}", r.text);

        // Move everyone's entries into last month, as if they had been made then.
        let last = skein_billing::statement_mail::previous_month(skein_core::ids::now_ms(), 0);
        let (start, _) = skein_billing::statement::month_bounds(&last, 0).unwrap();
        let db = skein_db::Db::connect(&app.config.database_url(), 1).await.unwrap();
        skein_db::sqlx::query("UPDATE ledger_entries SET created_at = $1").bind(start + 3_600_000).execute(db.pool()).await.unwrap();
        db.close().await;

        // Last month, three runs at once: each user is mailed once, in their language.
        let runs = futures::future::join_all((0..3).map(|_| app.post("/api/v1/admin/billing/statements/mail", Some(&root.access), json!({})))).await;
        for r in &runs {
            assert_eq!((r.status, r.json["month"].as_str()), (StatusCode::OK, Some(last.as_str())), "{}", r.text);
        }
        let total = |field: &str| runs.iter().map(|r| r.json[field].as_i64().unwrap()).sum::<i64>();
        // Mia and Lin; nobody (and root, if it has a ledger) has no verified address.
        assert_eq!(total("queued"), 2, "{:?}", runs.iter().map(|r| &r.text).collect::<Vec<_>>());
        assert!(total("no_address") >= 1);
        let again = app.post("/api/v1/admin/billing/statements/mail", Some(&root.access), json!({})).await;
        assert_eq!((again.json["queued"].as_i64(), again.json["already"].as_i64()), (Some(0), Some(total("queued") + total("no_address"))), "{}", again.text);
        let mail = crate::user::accounts::wait_for_mail(&maildir, mia_email, 3).await;
        assert!(mail.contains(&format!("Subject: Your Skein statement for {last}")), "{mail}");
        assert!(mail.contains("Closing balance: 1,234,567"), "{mail}");
        let (_, lin_email) = &people[1];
        let raw = crate::user::accounts::wait_for_mail(&maildir, lin_email, 2).await;
        let text = decoded_parts(&raw);
        assert!(text.contains(&format!("这是您 {last} 的月度账单")), "{raw}");
        assert!(text.contains("期末余额：1,234,567"), "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(crate::user::accounts::messages_to(&maildir, mia_email).len(), 3, "one monthly mail each");
        assert_eq!(crate::user::accounts::messages_to(&maildir, lin_email).len(), 2);
        verify_clean(&app, &root, mia).await;
    }
}
