//! Billing against the real binary: a SIGKILL in the middle of settling loses no settled
//! charge, and `skein billing verify` finds drift when the database is tampered with.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::TOKEN;

struct Server {
    child: Child,
    base: String,
    /// The internal listener (`/internal/*`).
    internal: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn skein(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skein"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SKEIN_DATA_DIR", dir)
        .env("SKEIN_BILLING__INTERNAL_TOKEN", TOKEN)
        .env("SKEIN_SETUP_TOKEN", skein_testkit::SETUP_TOKEN)
        .env("SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE", "100000")
        .env("SKEIN_LIMITS__API_PER_USER_PER_MINUTE", "100000")
        .env("SKEIN_LOG_LEVEL", "warn")
        .current_dir(dir);
    cmd
}

async fn start(dir: &std::path::Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let internal_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = skein(dir)
        .env(
            "SKEIN_SERVER__INTERNAL_LISTEN",
            format!("127.0.0.1:{internal_port}"),
        )
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        internal: format!("http://127.0.0.1:{internal_port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{}/readyz", server.base)).send().await
            && r.status().is_success()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("skein never became ready");
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    match client.post(url).bearer_auth(token).json(&body).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_settles_loses_no_settled_charge() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start(dir.path()).await;
    let (_, reg) = post(
        &client,
        format!("{}/api/v1/auth/register", server.base),
        "",
        json!({"username": "root", "password": "correct horse battery", "setup_token": skein_testkit::SETUP_TOKEN}),
    )
    .await;
    let access = reg["access_token"].as_str().unwrap().to_string();
    // The money belongs to a second account: no one adjusts their own balance.
    let (_, payer) = post(
        &client,
        format!("{}/api/v1/auth/register", server.base),
        "",
        json!({"username": "payer", "password": "correct horse battery"}),
    )
    .await;
    let payer_id = payer["user"]["id"].as_str().unwrap().to_string();
    let (status, _) = post(
        &client,
        format!(
            "{}/api/v1/admin/billing/users/{payer_id}/adjust",
            server.base
        ),
        &access,
        json!({"amount": 1_000_000, "memo": "fault test"}),
    )
    .await;
    assert_eq!(status, 200);

    let mut holds = Vec::new();
    for i in 0..200 {
        let (status, r) = post(
            &client,
            format!("{}/internal/billing/reserve", server.internal),
            TOKEN,
            json!({"user_id": payer_id, "amount": 1000, "reference": format!("f{i}")}),
        )
        .await;
        assert_eq!(status, 200);
        holds.push(r["id"].as_str().unwrap().to_string());
    }
    // Fire 200 settles at once and kill the server once some have been confirmed.
    let confirmed_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let settles: Vec<_> = holds
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let client = client.clone();
            let url = format!("{}/internal/billing/settle", server.internal);
            let body = json!({"reservation_id": id, "usage": {"cost": 100 + i as i64, "model": "m", "request_id": id}});
            let counter = confirmed_so_far.clone();
            tokio::spawn(async move {
                let answer = post(&client, url, TOKEN, body).await;
                if answer.0 == 200 {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                (id, answer)
            })
        })
        .collect();
    for _ in 0..5000 {
        if confirmed_so_far.load(std::sync::atomic::Ordering::SeqCst) >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let pid = server.child.id();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let mut confirmed = Vec::new();
    for task in settles {
        let (id, (status, body)) = task.await.unwrap();
        if status == 200 {
            confirmed.push((id, body["charged"].as_i64().unwrap()));
        }
    }
    drop(server);
    println!(
        "{} of 200 settles were confirmed before SIGKILL",
        confirmed.len()
    );
    assert!(
        !confirmed.is_empty(),
        "the kill came before any settle; the test proved nothing"
    );

    let verify = skein(dir.path())
        .args(["billing", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let server = start(dir.path()).await;
    let (_, login) = post(
        &client,
        format!("{}/api/v1/auth/login", server.base),
        "",
        json!({"login": "payer", "password": "correct horse battery"}),
    )
    .await;
    let access = login["access_token"].as_str().unwrap().to_string();
    let mut recorded = std::collections::HashMap::new();
    for page in 1..=3 {
        let r: Value = client
            .get(format!(
                "{}/api/v1/billing/usage?per_page=100&page={page}",
                server.base
            ))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in r["items"].as_array().unwrap() {
            recorded.insert(
                item["request_id"].as_str().unwrap().to_string(),
                item["cost"].as_i64().unwrap(),
            );
        }
    }
    for (id, charged) in &confirmed {
        assert_eq!(
            recorded.get(id),
            Some(charged),
            "settle {id} was confirmed but is not in the ledger"
        );
    }
    // On SQLite holds live in the process's memory: the crash released the holds of settles that
    // never committed (nothing was charged for them), and every committed charge is in the balance.
    let quota: Value = client
        .get(format!("{}/api/v1/billing/quota", server.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quota["reserved"].as_i64(), Some(0));
    let spent: i64 = recorded.values().sum();
    assert_eq!(quota["balance"].as_i64(), Some(1_000_000 - spent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_drift() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    {
        let server = start(dir.path()).await;
        let (_, reg) = post(
            &client,
            format!("{}/api/v1/auth/register", server.base),
            "",
            json!({"username": "root", "password": "correct horse battery", "setup_token": skein_testkit::SETUP_TOKEN}),
        )
        .await;
        let access = reg["access_token"].as_str().unwrap().to_string();
        let (_, payer) = post(
            &client,
            format!("{}/api/v1/auth/register", server.base),
            "",
            json!({"username": "payer", "password": "correct horse battery"}),
        )
        .await;
        let id = payer["user"]["id"].as_str().unwrap().to_string();
        post(
            &client,
            format!("{}/api/v1/admin/billing/users/{id}/adjust", server.base),
            &access,
            json!({"amount": 500, "memo": "x"}),
        )
        .await;
    }
    let clean = skein(dir.path())
        .args(["billing", "verify"])
        .output()
        .unwrap();
    assert!(clean.status.success());
    // Change a balance behind the ledger's back.
    let db = dir.path().join("skein.db");
    let url = format!("sqlite://{}", db.display());
    let mut conn = <skein_db::sqlx::SqliteConnection as skein_db::sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    skein_db::sqlx::query("UPDATE billing_accounts SET balance = balance + 1")
        .execute(&mut conn)
        .await
        .unwrap();
    let dirty = skein(dir.path())
        .args(["billing", "verify"])
        .output()
        .unwrap();
    assert!(!dirty.status.success(), "drift went unnoticed");
    assert!(String::from_utf8_lossy(&dirty.stdout).contains("DRIFT"));
}
