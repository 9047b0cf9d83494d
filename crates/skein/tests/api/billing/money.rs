//! Money that cannot leak (issue #10), through the internal billing API: partial holds that
//! grant what is left and refuse with numbers, charges beyond a hold capped at the overdraft
//! and recorded, renewed holds that outlive their first expiry, and one ledger order (seq)
//! when two instances share a PostgreSQL database.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::{Backend, Persona, TestApp, on_both_backends};

use super::{adjust, billing_app, cli_verify, internal, quota, usage, verify_clean};

/// Reserves through the internal API; answers the response.
async fn reserve(app: &TestApp, body: Value) -> skein_testkit::Resp {
    internal(app, "reserve", body).await
}

/// Every entry of a user's ledger through the admin API, oldest first, walking the `before`
/// cursor by seq.
async fn whole_ledger(app: &TestApp, admin: &Persona, user_id: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut before = String::new();
    loop {
        let r = app
            .get(
                &format!("/api/v1/admin/billing/users/{user_id}/ledger?per_page=100{before}"),
                Some(&admin.access),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.json["items"].as_array().unwrap().clone();
        let Some(last) = items.last() else { break };
        before = format!("&before={}", last["seq"].as_i64().unwrap());
        let done = items.len() < 100;
        all.extend(items);
        if done {
            break;
        }
    }
    all.reverse();
    all
}

/// Asserts the ledger is numbered 1..n in order and each balance_after is the running sum;
/// answers the final balance.
fn assert_ordered(entries: &[Value]) -> i64 {
    let mut running = 0;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            e["seq"].as_i64(),
            Some(i as i64 + 1),
            "seq out of order at {i}: {e}"
        );
        running += e["amount"].as_i64().unwrap();
        assert_eq!(
            e["balance_after"].as_i64(),
            Some(running),
            "balance_after is not the running sum at seq {}",
            i + 1
        );
    }
    running
}

on_both_backends! {
    async fn a_partial_hold_grants_what_is_left_and_then_refuses_with_numbers(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        assert_eq!(adjust(&app, &root, &ada.id, 1_000).await.status, StatusCode::OK);

        // All or nothing (no min_amount): 5,000 does not fit 1,000 and is refused.
        let whole = reserve(&app, json!({"user_id": ada.id, "amount": 5_000})).await;
        assert_eq!(whole.status, StatusCode::PAYMENT_REQUIRED, "{}", whole.text);
        assert_eq!(whole.error_code(), "insufficient_quota");
        assert_eq!(whole.json["error"]["details"], json!({"needed": 5_000, "available": 1_000}));

        // With a minimum that fits, the most that fits is granted.
        let part = reserve(&app, json!({"user_id": ada.id, "amount": 5_000, "min_amount": 100})).await;
        assert_eq!(part.status, StatusCode::OK, "{}", part.text);
        assert_eq!(part.json["amount"], 1_000, "granted what was left");
        assert_eq!(quota(&app, &ada).await["available"], 0);

        // Nothing is left: refused, saying what it needs at least and what is left.
        let refused = reserve(&app, json!({"user_id": ada.id, "amount": 5_000, "min_amount": 1})).await;
        assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(refused.error_code(), "insufficient_quota");
        assert_eq!(refused.json["error"]["details"], json!({"needed": 1, "available": 0}));
        let message = refused.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("at least 1") && message.contains("only 0"), "{message}");
        let zh = app
            .send(
                app.client
                    .post(app.internal_url("/internal/billing/reserve"))
                    .bearer_auth(super::super::TOKEN)
                    .header("accept-language", "zh-CN")
                    .json(&json!({"user_id": ada.id, "amount": 5, "min_amount": 2})),
            )
            .await;
        assert!(zh.json["error"]["message"].as_str().unwrap().contains("至少需要 2"), "{}", zh.text);

        // The partial hold settles like any other.
        let id = part.json["id"].as_str().unwrap();
        let s = internal(&app, "settle", json!({"reservation_id": id, "usage": usage(700, "p1", "m")})).await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.text);
        assert_eq!((s.json["charged"].as_i64(), s.json["overrun"].as_i64(), s.json["uncollected"].as_i64()), (Some(700), Some(0), Some(0)));
        let q = quota(&app, &ada).await;
        assert_eq!((q["balance"].as_i64(), q["reserved"].as_i64()), (Some(300), Some(0)));

        // A key's limit is a ceiling too: with 300 on the balance but 120 left on the key,
        // 120 is granted; then the key refuses with its own numbers.
        let keyed = reserve(&app, json!({"user_id": ada.id, "key_id": "k1", "key_limit": 120, "amount": 250, "min_amount": 50})).await;
        assert_eq!(keyed.status, StatusCode::OK, "{}", keyed.text);
        assert_eq!(keyed.json["amount"], 120);
        let key_refused = reserve(&app, json!({"user_id": ada.id, "key_id": "k1", "key_limit": 120, "amount": 250, "min_amount": 50})).await;
        assert_eq!(key_refused.status, StatusCode::PAYMENT_REQUIRED, "{}", key_refused.text);
        assert_eq!(key_refused.error_code(), "key_quota_exceeded");
        assert_eq!(key_refused.json["error"]["details"], json!({"needed": 50, "available": 0}));
        // The refused key hold gave back the balance it had taken.
        assert_eq!(quota(&app, &ada).await["reserved"], 120);
        let bad = reserve(&app, json!({"user_id": ada.id, "amount": 10, "min_amount": 11})).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
        let id = keyed.json["id"].as_str().unwrap();
        assert_eq!(internal(&app, "release", json!({"reservation_id": id})).await.status, StatusCode::NO_CONTENT);
        verify_clean(&app, &root, &ada).await;
    }

    async fn concurrent_partial_holds_never_hold_more_than_the_balance(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        assert_eq!(adjust(&app, &root, &ada.id, 10_000).await.status, StatusCode::OK);
        // On PostgreSQL, half of them go to a second instance on the same database.
        let sibling = match backend {
            Backend::Postgres => Some(app.sibling().await),
            Backend::Sqlite => None,
        };
        let attempts = (0..120).map(|i| {
            let at = sibling.as_ref().filter(|_| i % 2 == 1).unwrap_or(&app);
            reserve(at, json!({"user_id": ada.id, "amount": 300, "min_amount": 50, "reference": format!("r{i}")}))
        });
        let results = futures::future::join_all(attempts).await;
        let granted: i64 = results.iter().filter(|r| r.status == StatusCode::OK).map(|r| r.json["amount"].as_i64().unwrap()).sum();
        assert!(results.iter().all(|r| r.status == StatusCode::OK || r.status == StatusCode::PAYMENT_REQUIRED));
        assert!(granted <= 10_000, "held {granted} of a 10,000 balance");
        assert!(granted > 10_000 - 50, "a hold of at least 50 was still possible: held {granted}");
        assert!(results.iter().filter(|r| r.status == StatusCode::OK).all(|r| (50..=300).contains(&r.json["amount"].as_i64().unwrap())));
        assert_eq!(quota(&app, &ada).await["reserved"].as_i64(), Some(granted));
        verify_clean(&app, &root, &ada).await;
    }

    async fn a_cost_beyond_its_hold_is_charged_down_to_the_overdraft_and_no_further(backend) {
        for overdraft in [0_i64, 500] {
            let app = billing_app(backend, |c| c.billing.overdraft = overdraft).await;
            let root = app.root().await;
            let ada = app.register("ada").await;
            assert_eq!(adjust(&app, &root, &ada.id, 1_000).await.status, StatusCode::OK);
            let hold = reserve(&app, json!({"user_id": ada.id, "amount": 100})).await;
            assert_eq!(hold.status, StatusCode::OK, "{}", hold.text);
            let id = hold.json["id"].as_str().unwrap();
            let mut big = usage(50_000, "big", "m");
            big["cache_write_tokens"] = json!(1_234);
            let s = internal(&app, "settle", json!({"reservation_id": id, "usage": big})).await;
            assert_eq!(s.status, StatusCode::OK, "{}", s.text);
            let charged = 1_000 + overdraft;
            assert_eq!(s.json["charged"].as_i64(), Some(charged), "overdraft {overdraft}: {}", s.text);
            assert_eq!(s.json["overrun"].as_i64(), Some(50_000 - 100));
            assert_eq!(s.json["uncollected"].as_i64(), Some(50_000 - charged));
            assert_eq!(s.json["balance_after"].as_i64(), Some(-overdraft));
            let q = quota(&app, &ada).await;
            assert_eq!((q["balance"].as_i64(), q["reserved"].as_i64()), (Some(-overdraft), Some(0)));

            // A retried settle answers the same numbers and charges nothing more.
            let again = internal(&app, "settle", json!({"reservation_id": id, "usage": usage(50_000, "big", "m")})).await;
            assert_eq!((again.json["charged"].as_i64(), again.json["overrun"].as_i64(), again.json["uncollected"].as_i64()),
                (Some(charged), Some(49_900), Some(50_000 - charged)), "{}", again.text);
            assert_eq!(quota(&app, &ada).await["balance"].as_i64(), Some(-overdraft));

            // The usage record says what was charged and what was missed.
            let records = app.get("/api/v1/billing/usage", Some(&ada.access)).await;
            let record = &records.json["items"][0];
            assert_eq!((record["cost"].as_i64(), record["overrun"].as_i64(), record["uncollected"].as_i64()),
                (Some(charged), Some(49_900), Some(50_000 - charged)), "{}", records.text);
            assert_eq!(record["cache_write_tokens"].as_i64(), Some(1_234), "cache writes are kept");
            let csv = app.get("/api/v1/billing/usage/export", Some(&ada.access)).await;
            assert!(csv.text.lines().next().unwrap().ends_with(",cache_write_tokens,overrun,uncollected"), "{}", csv.text);
            assert!(csv.text.contains(&format!(",1234,49900,{}", 50_000 - charged)), "{}", csv.text);
            // And the admin's daily totals count it.
            let daily = app.get("/api/v1/admin/billing/usage/daily", Some(&root.access)).await;
            let day = &daily.json[0];
            assert_eq!((day["overrun_requests"].as_i64(), day["overrun"].as_i64(), day["uncollected"].as_i64()),
                (Some(1), Some(49_900), Some(50_000 - charged)), "{}", daily.text);
            verify_clean(&app, &root, &ada).await;
        }
    }

    async fn other_holds_stay_covered_when_a_cost_overruns(backend) {
        let app = billing_app(backend, |_| {}).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        assert_eq!(adjust(&app, &root, &ada.id, 1_000).await.status, StatusCode::OK);
        let first = reserve(&app, json!({"user_id": ada.id, "amount": 100})).await;
        let other = reserve(&app, json!({"user_id": ada.id, "amount": 300, "key_id": "k2", "key_limit": 10_000})).await;
        assert_eq!(other.status, StatusCode::OK, "{}", other.text);
        // Balance 1,000, holds 100 + 300: the overrun may take the first hold and the 600 no
        // hold covers, never the other request's 300.
        let s = internal(&app, "settle", json!({"reservation_id": first.json["id"], "usage": usage(5_000, "o", "m")})).await;
        assert_eq!(s.json["charged"].as_i64(), Some(700), "{}", s.text);
        let q = quota(&app, &ada).await;
        assert_eq!((q["balance"].as_i64(), q["reserved"].as_i64(), q["available"].as_i64()), (Some(300), Some(300), Some(0)));
        // The other request still gets all it held (and its own overrun finds nothing more).
        let s = internal(&app, "settle", json!({"reservation_id": other.json["id"], "usage": usage(900, "o2", "m")})).await;
        assert_eq!((s.json["charged"].as_i64(), s.json["uncollected"].as_i64()), (Some(300), Some(600)), "{}", s.text);
        assert_eq!(quota(&app, &ada).await["balance"].as_i64(), Some(0));
        verify_clean(&app, &root, &ada).await;
    }

    async fn a_renewed_hold_outlives_its_first_expiry_and_an_expired_one_still_settles(backend) {
        let app = billing_app(backend, |c| c.billing.reservation_ttl_secs = 4).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        assert_eq!(adjust(&app, &root, &ada.id, 1_000).await.status, StatusCode::OK);
        let kept = reserve(&app, json!({"user_id": ada.id, "amount": 200})).await;
        let left = reserve(&app, json!({"user_id": ada.id, "amount": 300})).await;
        let (kept, left) = (kept.json["id"].as_str().unwrap().to_string(), left.json["id"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
        let renewed = internal(&app, "renew", json!({"reservation_id": kept})).await;
        assert_eq!(renewed.status, StatusCode::NO_CONTENT, "{}", renewed.text);
        // Wait until the hold that was not renewed has expired (both had the same expiry).
        let mut expired = false;
        for _ in 0..60 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if quota(&app, &ada).await["reserved"] == 200 {
                expired = true;
                break;
            }
        }
        assert!(expired, "the hold that was not renewed never expired");
        // The renewed one is still held past its first expiry, and settles normally.
        let s = internal(&app, "settle", json!({"reservation_id": kept, "usage": usage(150, "kept", "m")})).await;
        assert_eq!((s.status, s.json["charged"].as_i64(), s.json["overrun"].as_i64()), (StatusCode::OK, Some(150), Some(0)), "{}", s.text);
        // The expired one still settles: what was delivered is charged, never refused.
        let late = internal(&app, "settle", json!({"reservation_id": left, "usage": usage(250, "late", "m")})).await;
        assert_eq!((late.status, late.json["charged"].as_i64()), (StatusCode::OK, Some(250)), "{}", late.text);
        let q = quota(&app, &ada).await;
        assert_eq!((q["balance"].as_i64(), q["reserved"].as_i64()), (Some(600), Some(0)));
        // Renewing what is settled is a no-op; an unknown id is not found.
        assert_eq!(internal(&app, "renew", json!({"reservation_id": kept})).await.status, StatusCode::NO_CONTENT);
        let unknown = internal(&app, "renew", json!({"reservation_id": "01890000-0000-7000-8000-000000000000"})).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
        verify_clean(&app, &root, &ada).await;
    }
}

/// Two instances on one PostgreSQL database, 2,000 concurrent reserve + settle pairs split
/// across both for four users: `skein billing verify` is clean and every user's ledger is
/// numbered 1..n in the order the balance moved, each balance_after the running sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_keep_one_ledger_order() {
    let app = billing_app(Backend::Postgres, |c| c.database.max_connections = Some(10)).await;
    let sibling = app.sibling().await;
    let root = app.root().await;
    let mut users = Vec::new();
    for name in ["ada", "bob", "cyd", "dee"] {
        let user = app.register(name).await;
        assert_eq!(
            adjust(&app, &root, &user.id, 10_000_000).await.status,
            StatusCode::OK
        );
        users.push(user);
    }
    let apps = [&app, &sibling];
    let pairs = futures::stream::iter(0..2_000_usize)
        .map(|i| {
            let at = apps[i % 2];
            let settle_at = apps[(i / 2) % 2];
            let user = &users[i % users.len()];
            async move {
                let r = reserve(at, json!({"user_id": user.id, "amount": 50, "reference": format!("r{i}")})).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                // Some costs are 0 (no entry), some beyond the hold (the one-by-one path).
                let cost = match i % 10 { 0 => 0, 1 => 80, n => n as i64 * 3 };
                let s = internal(settle_at, "settle", json!({"reservation_id": r.json["id"], "usage": usage(cost, &format!("q{i}"), "m")})).await;
                assert_eq!(s.status, StatusCode::OK, "{}", s.text);
                s.json["charged"].as_i64().unwrap()
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<i64>>()
        .await;
    let charged: i64 = pairs.iter().sum();
    let out = cli_verify(&app);
    println!(
        "skein billing verify ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim()
    );
    assert!(
        out.status.success(),
        "skein billing verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut final_total = 0;
    for (u, user) in users.iter().enumerate() {
        let entries = whole_ledger(&app, &root, &user.id).await;
        let balance = assert_ordered(&entries);
        assert_eq!(quota(&app, user).await["balance"].as_i64(), Some(balance));
        assert_eq!(quota(&sibling, user).await["reserved"].as_i64(), Some(0));
        final_total += balance;
        // The credit, and one entry per settle that cost something (cost 0 writes none).
        let settles = (0..2_000)
            .filter(|i| i % users.len() == u && i % 10 != 0)
            .count();
        assert_eq!(entries.len(), 1 + settles, "entries of {}", user.login);
        println!(
            "{}: seq 1..{} in order, balance_after the running sum, balance {balance}",
            user.login,
            entries.len()
        );
    }
    assert_eq!(final_total, 4 * 10_000_000 - charged);
}
