//! Expiry reminders, through a real SMTP server: a subscriber is mailed once, in their
//! language, when their plan is about to end and once when it has ended — however often
//! the job runs, on one instance or two (PostgreSQL) — and a renewal makes the next end
//! remindable again.

use reqwest::StatusCode;
use serde_json::json;
use skein_billing::payment::Currency;
use skein_testkit::{Backend, Persona, TestApp, on_both_backends};

use crate::billing::payments::payment_config;
use crate::billing::subscriptions::{DAY_MS, buy_and_pay, make_plan, monthly, subscriptions};
use crate::billing::{billing_app, verify_clean};
use crate::user::accounts::{
    link_token, mail_config, messages_to, register_with_email, smtp, unique, wait_for_mail,
};

/// Moves subscription `id` so that its paid time ends `in_ms` from now (one correction is
/// enough: a shift moves the end by as much, bar the clamping of a 31st).
async fn end_in(app: &TestApp, who: &Persona, id: &str, in_ms: i64) {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    for _ in 0..2 {
        let sub = subscriptions(app, who)
            .await
            .into_iter()
            .find(|s| s["id"] == id)
            .unwrap();
        let end = skein_core::ids::rfc3339_to_ms(sub["paid_until"].as_str().unwrap()).unwrap();
        let shift = skein_core::ids::now_ms() + in_ms - end;
        skein_db::sqlx::query(
            "UPDATE subscriptions SET started_at = started_at + $1 WHERE id = $2",
        )
        .bind(shift)
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();
    }
    db.close().await;
}

async fn run_on(app: &TestApp, admin: &Persona) -> serde_json::Value {
    let r = app
        .post(
            "/api/v1/admin/billing/subscriptions/run",
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

on_both_backends! {
    async fn plan_reminders_are_mailed_once_per_period_before_and_after_the_end(backend) {
        let Some((port, maildir)) = smtp() else {
            eprintln!("SKEIN_TEST_SMTP_PORT is not set: mail is not tested (scripts/test starts aiosmtpd)");
            return;
        };
        let app = billing_app(backend, |c| {
            mail_config(c, port);
            c.billing.payment = payment_config("http://127.0.0.1:9", Currency::Cny);
        })
        .await;
        // A second instance on the same PostgreSQL runs the job too.
        let other = if backend == Backend::Postgres { Some(app.sibling().await) } else { None };
        let root = app.root().await;
        let plan = make_plan(&app, &root, monthly()).await["id"].as_str().unwrap().to_string();
        let mut people = Vec::new();
        for (name, lang) in [("rita", "en"), ("ming", "zh-CN")] {
            let name = unique(name);
            let email = format!("{name}@mail.test");
            assert_eq!(register_with_email(&app, &name, &email).await, StatusCode::CREATED);
            let who = app.login(&name, skein_testkit::PASSWORD).await;
            let token = link_token(&wait_for_mail(&maildir, &email, 1).await, "verify-email");
            assert_eq!(app.post("/api/v1/auth/verify-email", None, json!({"token": token})).await.status, StatusCode::OK);
            let r = app.patch("/api/v1/user/profile", Some(&who.access), json!({"language": lang})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            buy_and_pay(&app, &who, &plan).await;
            people.push((who, email));
        }
        let (rita, rita_email) = &people[0];
        let (ming, ming_email) = &people[1];
        let rita_sub = subscriptions(&app, rita).await[0]["id"].as_str().unwrap().to_string();
        let ming_sub = subscriptions(&app, ming).await[0]["id"].as_str().unwrap().to_string();

        // A month away: no reminder yet.
        let r = run_on(&app, &root).await;
        assert_eq!(r["reminders"]["queued"], 0, "{r}");

        // Two days before the end (the default is three): one mail each, however many runs.
        end_in(&app, rita, &rita_sub, 2 * DAY_MS).await;
        end_in(&app, ming, &ming_sub, 2 * DAY_MS).await;
        let runs = futures::future::join_all((0..6).map(|i| {
            let on = match (&other, i % 2) {
                (Some(b), 1) => b,
                _ => &app,
            };
            run_on(on, &root)
        }))
        .await;
        let queued: i64 = runs.iter().map(|r| r["reminders"]["queued"].as_i64().unwrap()).sum();
        assert_eq!(queued, 2, "{runs:?}");
        let mail = wait_for_mail(&maildir, rita_email, 2).await;
        assert!(mail.contains("Subject: Your Skein plan Pro monthly ends on"), "{mail}");
        assert!(mail.contains("http://skein.test/billing/plans"), "{mail}");
        let raw = wait_for_mail(&maildir, ming_email, 2).await;
        let text = crate::billing::statements::decoded_parts(&raw);
        assert!(text.contains("已付费至"), "in Chinese: {text}");

        // Rita renews: her next end is a new period, reminded of again when it comes.
        buy_and_pay(&app, rita, &plan).await;
        assert_eq!(run_on(&app, &root).await["reminders"]["queued"], 0, "renewed: a month away again");

        // Ming's paid time ends: one "ended" mail, once.
        end_in(&app, ming, &ming_sub, -60_000).await;
        let runs = futures::future::join_all((0..4).map(|_| run_on(&app, &root))).await;
        let queued: i64 = runs.iter().map(|r| r["reminders"]["queued"].as_i64().unwrap()).sum();
        assert_eq!(queued, 1, "{runs:?}");
        let subs = subscriptions(&app, ming).await;
        assert_eq!(subs[0]["status"], "expired", "{subs:?}");
        wait_for_mail(&maildir, ming_email, 3).await;

        // Rita's renewed period nears its end: reminded once more.
        end_in(&app, rita, &rita_sub, DAY_MS).await;
        assert_eq!(run_on(&app, &root).await["reminders"]["queued"], 1);
        assert_eq!(run_on(&app, &root).await["reminders"]["queued"], 0);
        let mail = wait_for_mail(&maildir, rita_email, 3).await;
        assert!(mail.contains("Subject: Your Skein plan Pro monthly ends on"), "{mail}");

        // A restart does not send them again: the claims are in the database.
        let restarted = app.sibling().await;
        assert_eq!(run_on(&restarted, &root).await["reminders"]["queued"], 0);
        tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
        assert_eq!(messages_to(&maildir, rita_email).len(), 3, "verify + two reminders");
        assert_eq!(messages_to(&maildir, ming_email).len(), 3, "verify + ending + ended");
        verify_clean(&app, &root, rita).await;
    }
}
