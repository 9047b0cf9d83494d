//! Many instances, one truth: several servers on one PostgreSQL database (and one Redis), as
//! an operator runs them behind a load balancer. A change made through one instance reaches
//! the others at once over the bus (Redis pub/sub, or PostgreSQL `LISTEN/NOTIFY` without
//! Redis); chat's answer lock, stop and re-attach work whichever instance a request lands on;
//! limits and the ledger stay exact.
//!
//! PostgreSQL only, by nature: SQLite is one process's database (one writer), so a deployment
//! of several instances runs on PostgreSQL, and single-process SQLite has no one to tell.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::reply_to;
use skein_testkit::proxy::RoundRobin;
use skein_testkit::{
    Backend, Persona, Price, RelayWorld, TestApp, Upstream, redis_url, relay_world,
};

/// The bound within which a change made on one instance must show on another. The notice takes
/// milliseconds (measured 3–9 ms); without it a change waits for the 10 s reload. 1 s leaves
/// room for a machine loaded by parallel builds (100 ms was missed at load 12), and a broken bus
/// could pass one such check only when a reload happens to fall inside that second — not the
/// seven checks in this file together.
const AT_ONCE: Duration = Duration::from_secs(1);

fn configure(c: &mut skein::config::Config) {
    // No titles: each answer is one upstream call.
    c.chat.title_model = Some(String::new());
}

/// The first instance of a deployment on PostgreSQL, with Redis when `redis_prefix` is given.
async fn first_instance(redis_prefix: Option<&str>) -> TestApp {
    TestApp::spawn_with(Backend::Postgres, |c| {
        configure(c);
        if let Some(prefix) = redis_prefix {
            c.redis.url = Some(redis_url());
            c.redis.key_prefix = prefix.to_string();
        }
    })
    .await
}

/// Polls `check` until it holds; answers how long that took after `since`, or panics after
/// `limit`.
async fn within<F, Fut>(since: Instant, limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return since.elapsed();
        }
        assert!(since.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The input price `who` sees for `gpt-test` on `app` (from the instance's memory).
async fn shown_price(app: &TestApp, who: &Persona) -> Option<i64> {
    let r = app.get("/api/v1/chat/models", Some(&who.access)).await;
    r.json.as_array()?.iter().find(|m| m["id"] == "gpt-test")?["input_price"].as_i64()
}

async fn complete(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(
            &json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hello there"}]}),
        )
        .send()
        .await
        .unwrap()
}

/// Server-sent events of a stream read so far, as `(event, data)`.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut name = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            Some((name?, data?))
        })
        .collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn find<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|(e, _)| e == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
        .1
}

/// Reads `stream` until `enough` holds for what was read, or it ends.
async fn read_until(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    enough: impl Fn(&str) -> bool,
) {
    while !enough(seen) {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            Ok(None) => return,
            Err(_) => panic!("stream went quiet; read so far: {seen}"),
        }
    }
}

async fn new_conversation(app: &TestApp, who: &Persona) -> String {
    let r = app
        .post("/api/v1/chat/conversations", Some(&who.access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Starts an answer on `app`; answers its message id and the stream (read past `start`).
async fn start_answer(
    app: &TestApp,
    who: &Persona,
    conversation: &str,
    content: &str,
) -> (
    String,
    impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
) {
    let r = app
        .client
        .post(app.url(&format!(
            "/api/v1/chat/conversations/{conversation}/messages"
        )))
        .bearer_auth(&who.access)
        .json(&json!({"content": content}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, |s| s.contains("event: start")).await;
    let answer = find(&events(&seen), "start")["assistant_message_id"]
        .as_str()
        .unwrap()
        .to_string();
    (answer, stream)
}

async fn saved(app: &TestApp, who: &Persona, conversation: &str, message: &str) -> Value {
    for _ in 0..500 {
        let h = app
            .get(
                &format!("/api/v1/chat/conversations/{conversation}/messages"),
                Some(&who.access),
            )
            .await
            .json;
        if let Some(m) = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == message)
            && m["status"] != "streaming"
        {
            return m.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the answer never finished");
}

/// Prices, channels, keys and users changed through `a` show on `b` at once. Answers how
/// long the price change took to show, and the user signed in again (disabling them ended
/// their sessions).
async fn changes_reach_every_instance(
    a: &TestApp,
    b: &TestApp,
    world: &RelayWorld,
) -> (Duration, Persona) {
    let RelayWorld {
        root, user, key, ..
    } = world;
    // The channel and price were made on A after B started: B serves them within the bound
    // (the note is heard at once, the reload it starts may still be running on a busy machine).
    within(
        Instant::now(),
        AT_ONCE,
        "the new channel and price on B",
        || async move { complete(b, key).await.status() == StatusCode::OK },
    )
    .await;

    // A price change on A: B shows it within the bound.
    let before = shown_price(b, user).await;
    a.set_price(root, "gpt-test", Price::tokens(3_000_000, 9_000_000))
        .await;
    let changed = Instant::now();
    let expected = shown_price(a, user).await;
    assert_ne!(before, expected);
    let took = within(changed, AT_ONCE, "price change on B", || async move {
        shown_price(b, user).await == expected
    })
    .await;

    // A key disabled on A is refused on B at once (B had it cached: it was just used there).
    let keys = a.get("/api/v1/keys", Some(&user.access)).await.json;
    let key_id = keys["items"][0]["id"].as_str().unwrap().to_string();
    let r = a
        .patch(
            &format!("/api/v1/keys/{key_id}"),
            Some(&user.access),
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let disabled = Instant::now();
    within(
        disabled,
        AT_ONCE,
        "disabled key refused on B",
        || async move { complete(b, key).await.status() == StatusCode::UNAUTHORIZED },
    )
    .await;
    let r = a
        .patch(
            &format!("/api/v1/keys/{key_id}"),
            Some(&user.access),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let enabled = Instant::now();
    within(enabled, AT_ONCE, "enabled key served on B", || async move {
        complete(b, key).await.status() == StatusCode::OK
    })
    .await;

    // A user disabled on A: their key and their session stop on B at once.
    let r = a
        .patch(
            &format!("/api/v1/admin/users/{}", user.id),
            Some(&root.access),
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let gone = Instant::now();
    within(
        gone,
        AT_ONCE,
        "disabled user's key refused on B",
        || async move { complete(b, key).await.status() == StatusCode::UNAUTHORIZED },
    )
    .await;
    within(
        gone,
        AT_ONCE,
        "disabled user's session refused on B",
        || async move {
            b.get("/api/v1/user/profile", Some(&user.access))
                .await
                .status
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
    let r = a
        .patch(
            &format!("/api/v1/admin/users/{}", user.id),
            Some(&root.access),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let back = Instant::now();
    within(
        back,
        AT_ONCE,
        "re-enabled user's key served on B",
        || async move { complete(b, key).await.status() == StatusCode::OK },
    )
    .await;
    (took, b.login(&user.login, &user.password).await)
}

/// An answer written on `a` is locked, re-attached and stopped through `b`.
async fn chat_works_across_instances(a: &TestApp, b: &TestApp, world: &RelayWorld, user: &Persona) {
    world.upstream.set_stream_pause(Duration::from_millis(30));
    let words = "one two three four five six seven eight nine ten eleven twelve thirteen \
                 fourteen fifteen sixteen seventeen eighteen nineteen twenty";
    let full = reply_to(&json!([{"role": "user", "content": words}]));

    // Re-attached through B while A writes it (and A's client left): all of it arrives.
    let id = new_conversation(a, user).await;
    let (answer, stream) = start_answer(a, user, &id, words).await;
    drop(stream);
    // The conversation is locked on every instance while A writes.
    let second = b
        .post(
            &format!("/api/v1/chat/conversations/{id}/messages"),
            Some(&user.access),
            json!({"content": "again"}),
        )
        .await;
    assert_eq!(
        (second.status, second.error_code()),
        (StatusCode::CONFLICT, "generation_in_progress"),
        "{}",
        second.text
    );
    let r = b
        .client
        .get(b.url(&format!("/api/v1/chat/messages/{answer}/stream")))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ev = events(&r.text().await.unwrap());
    assert!(
        ev.iter().filter(|(e, _)| e == "delta").count() > 2,
        "B streamed live deltas, not only what was saved: {ev:?}"
    );
    assert_eq!(text_of(&ev), full);
    assert_eq!(find(&ev, "done")["message"]["status"], "done");
    let kept = saved(b, user, &id, &answer).await;
    assert_eq!(kept["content"], full.as_str());
    // Free again on every instance as soon as it is done.
    let next = b
        .client
        .post(b.url(&format!("/api/v1/chat/conversations/{id}/messages")))
        .bearer_auth(&user.access)
        .json(&json!({"content": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    let ev = events(&next.text().await.unwrap());
    assert_eq!(find(&ev, "done")["message"]["status"], "done");

    // Stopped through B while A writes it, with a client watching through B.
    let id = new_conversation(a, user).await;
    let (answer, mut on_a) = start_answer(a, user, &id, words).await;
    let r = b
        .client
        .get(b.url(&format!("/api/v1/chat/messages/{answer}/stream")))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    let mut on_b = r.bytes_stream();
    let mut seen_b = String::new();
    read_until(&mut on_b, &mut seen_b, |s| {
        s.matches("event: delta").count() >= 3
    })
    .await;
    let r = b
        .post(
            &format!("/api/v1/chat/messages/{answer}/stop"),
            Some(&user.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["stopping"].as_bool()),
        (StatusCode::ACCEPTED, Some(true)),
        "{}",
        r.text
    );
    let mut seen_a = String::new();
    read_until(&mut on_a, &mut seen_a, |_| false).await;
    read_until(&mut on_b, &mut seen_b, |_| false).await;
    let (ev_a, ev_b) = (events(&seen_a), events(&seen_b));
    let done = &find(&ev_a, "done")["message"];
    assert_eq!(done["status"], "stopped", "{seen_a}");
    let kept = done["content"].as_str().unwrap();
    assert!(
        !kept.is_empty() && kept.len() < full.len() && full.starts_with(kept),
        "kept {kept:?}"
    );
    // B's client saw exactly what was kept, and the end.
    assert_eq!(text_of(&ev_b), kept, "{seen_b}");
    assert_eq!(find(&ev_b, "done")["message"]["status"], "stopped");
    let stored = saved(b, user, &id, &answer).await;
    assert_eq!(
        (stored["status"].as_str(), stored["content"].as_str()),
        (Some("stopped"), Some(kept))
    );
    world.upstream.set_stream_pause(Duration::ZERO);
}

/// Kills the bus listeners' PostgreSQL connections of `app`'s database; answers how many.
async fn kill_pg_listeners(app: &TestApp) -> u64 {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let killed: i64 = skein_db::sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'skein-bus' AND datname = current_database()) AS killed",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    db.close().await;
    u64::try_from(killed).unwrap()
}

/// After the bus lost its connection, a change made meanwhile still arrives (the reconnected
/// listener reloads everything) well before the 10-second reload, and notes flow again.
async fn a_lost_bus_connection_heals(
    a: &TestApp,
    b: &TestApp,
    world: &RelayWorld,
    user: &Persona,
    kill: impl std::future::Future<Output = u64>,
) {
    let root = &world.root;
    assert!(kill.await >= 2, "both instances' listeners were cut off");
    a.set_price(root, "gpt-test", Price::tokens(4_000_000, 9_000_000))
        .await;
    let changed = Instant::now();
    let expected = shown_price(a, user).await;
    within(
        changed,
        Duration::from_secs(3),
        "change after reconnect",
        || async move { shown_price(b, user).await == expected },
    )
    .await;
    // Notes flow again (and not only the reload after reconnecting).
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.set_price(root, "gpt-test", Price::tokens(5_000_000, 9_000_000))
        .await;
    let changed = Instant::now();
    let expected = shown_price(a, user).await;
    within(
        changed,
        AT_ONCE,
        "price change after reconnect",
        || async move { shown_price(b, user).await == expected },
    )
    .await;
}

/// Three instances on PostgreSQL and Redis behind a round-robin balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_postgres_and_redis_are_one_deployment() {
    let prefix = format!("skein-test-{}:", uuid::Uuid::now_v7().simple());
    let a = first_instance(Some(&prefix)).await;
    let b = a.sibling().await;
    let c = a.sibling().await;
    let world = relay_world(&a, Upstream::OpenAi).await;

    let (took, user) = changes_reach_every_instance(&a, &b, &world).await;
    eprintln!("redis bus: a price change on A showed on B after {took:?}");
    chat_works_across_instances(&a, &c, &world, &user).await;

    // Rate limits and the ledger are exact across the instances: 30 parallel requests spread
    // over all three by the balancer, with a key allowed 10 a minute.
    let (root, user) = (&world.root, &user);
    let r = a
        .post(
            "/api/v1/keys",
            Some(&user.access),
            json!({"name": "limited", "rpm_limit": 10}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let limited = r.json["key"].as_str().unwrap().to_string();
    let limited_id = r.json["id"].as_str().unwrap().to_string();
    let balancer = RoundRobin::start(&[&a.base, &b.base, &c.base]).await;
    // One connection per request, so the balancer spreads them.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Enough for every hold the burst may take at once (a hold covers the longest answer).
    a.fund(root, user, 100_000_000).await;
    let before = crate::billing::quota(&a, user).await;
    let requests = (0..30).map(|_| {
        client
            .post(balancer.url("/v1/chat/completions"))
            .bearer_auth(&limited)
            .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hello there"}]}))
            .send()
    });
    let answers = futures::future::join_all(requests).await;
    let statuses: Vec<StatusCode> = answers
        .iter()
        .map(|r| r.as_ref().unwrap().status())
        .collect();
    assert_eq!(balancer.connections(), [10, 10, 10]);
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited_out = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, limited_out), (10, 20), "{statuses:?}");
    // Every one of the 10 was billed once, at the price all instances agree on.
    let after = loop {
        let q = crate::billing::quota(&a, user).await;
        if q["reserved"] == 0 {
            break q;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let usage = a
        .get("/api/v1/billing/usage?per_page=100", Some(&user.access))
        .await
        .json;
    let costs: Vec<i64> = usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["key_id"] == limited_id.as_str())
        .map(|r| r["cost"].as_i64().unwrap())
        .collect();
    assert_eq!(
        costs.len(),
        10,
        "one usage record per served request: {usage}"
    );
    assert!(costs.iter().all(|c| *c > 0 && *c == costs[0]), "{costs:?}");
    let spent = before["balance"].as_i64().unwrap() - after["balance"].as_i64().unwrap();
    assert_eq!(
        spent,
        costs.iter().sum::<i64>(),
        "the balance moved by exactly what was billed"
    );
    crate::billing::verify_clean(&a, root, user).await;
}

/// Two instances on PostgreSQL alone: the bus is `LISTEN/NOTIFY`, and it heals after its
/// connection is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_alone_are_one_deployment() {
    let a = first_instance(None).await;
    let b = a.sibling().await;
    let world = relay_world(&a, Upstream::OpenAi).await;
    let (took, user) = changes_reach_every_instance(&a, &b, &world).await;
    eprintln!("postgres bus: a price change on A showed on B after {took:?}");
    chat_works_across_instances(&a, &b, &world, &user).await;
    a_lost_bus_connection_heals(&a, &b, &world, &user, kill_pg_listeners(&a)).await;
}

/// The Redis bus heals after its subscriptions are cut, too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redis_bus_heals_after_its_connection_is_cut() {
    let prefix = format!("skein-test-{}:", uuid::Uuid::now_v7().simple());
    let a = first_instance(Some(&prefix)).await;
    let b = a.sibling().await;
    let world = relay_world(&a, Upstream::OpenAi).await;
    let kill = async {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        // Every subscriber on this Redis (other tests' buses resync, which is harmless).
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut conn)
            .await
            .unwrap();
        u64::try_from(killed).unwrap()
    };
    let user = world.user.clone();
    a_lost_bus_connection_heals(&a, &b, &world, &user, kill).await;
}

/// `x-skein-cache` of a deterministic request on `app`.
async fn cached_ask(app: &TestApp, key: &str) -> Option<String> {
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-test", "temperature": 0,
            "messages": [{"role": "user", "content": "what is two and two"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()
        .get("x-skein-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Answers `app`'s response cache keeps now (its own memory).
async fn kept_answers(app: &TestApp, admin: &Persona) -> u64 {
    let r = app.get("/api/v1/admin/cache", Some(&admin.access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["entries"].as_u64().unwrap()
}

/// The response cache lives in each instance's memory: a settings change made on A drops the
/// answers B keeps within the bus's bound (not at B's next 10-second reload), so a group that
/// stops sharing never serves one user's answer to another from any instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cache_settings_change_on_one_instance_empties_every_instances_cache() {
    let first = first_instance(None).await;
    let second = first.sibling().await;
    let (a, b) = (&first, &second);
    let world = relay_world(a, Upstream::OpenAi).await;
    let root = &world.root;
    let set = |share: bool| async move {
        let r = a
            .put(
                "/api/v1/admin/cache/default",
                Some(&root.access),
                json!({"enabled": true, "ttl_secs": 600, "share_across_users": share, "price_percent": 0}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    };
    set(false).await;
    // B learns the policy over the bus: its first ask is kept, its second is a hit.
    let key = &world.key;
    within(
        Instant::now(),
        AT_ONCE,
        "the cache turned on at B",
        || async move { cached_ask(b, key).await.as_deref() == Some("miss") },
    )
    .await;
    assert_eq!(cached_ask(b, key).await.as_deref(), Some("hit"));
    assert_eq!(kept_answers(b, root).await, 1);

    set(true).await;
    let changed = Instant::now();
    let took = within(changed, AT_ONCE, "B's cache emptied", || async move {
        kept_answers(b, root).await == 0
    })
    .await;
    eprintln!("a cache settings change on A emptied B's cache after {took:?}");
    assert_eq!(
        cached_ask(b, key).await.as_deref(),
        Some("miss"),
        "asked upstream again"
    );
}
