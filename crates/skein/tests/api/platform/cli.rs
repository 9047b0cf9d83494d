//! The `skein` command itself: config check, migrate, admin commands, and a real `serve`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

fn skein(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skein"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SKEIN_DATA_DIR", data_dir)
        .current_dir(data_dir);
    cmd
}

#[test]
fn config_check_masks_secrets_and_rejects_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let out = skein(dir.path())
        .env(
            "SKEIN_JWT_SECRET",
            "a-very-long-secret-that-must-not-be-printed",
        )
        .env(
            "SKEIN_DATABASE_URL",
            "postgres://skein:hunter2@db.internal/skein",
        )
        .args(["config", "check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("a-very-long-secret") && !stdout.contains("hunter2"),
        "{stdout}"
    );
    assert!(stdout.contains("postgres://skein:****@db.internal/skein"));
    assert!(stdout.contains("listen = \"0.0.0.0:3000\""));

    let bad = skein(dir.path())
        .env("SKEIN_LISTEN", "nowhere")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("server.listen"));

    std::fs::write(
        dir.path().join("skein.toml"),
        "[limits]\napi_per_user_per_minte = 5\n",
    )
    .unwrap();
    let typo = skein(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("api_per_user_per_minte"));
}

#[test]
fn help_explains_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = skein(dir.path()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "migrate", "admin", "config", "SKEIN_"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let admin = skein(dir.path())
        .args(["admin", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&admin.stdout);
    for word in ["create-user", "set-role", "reset-password"] {
        assert!(text.contains(word), "admin --help lacks {word}");
    }
}

#[test]
fn migrate_is_idempotent_and_admin_commands_manage_accounts() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = skein(dir.path()).arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("data").exists() || dir.path().join("skein.db").exists());

    let mut child = skein(dir.path())
        .args([
            "admin",
            "create-user",
            "--username",
            "boss",
            "--role",
            "root",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"boss password 1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("role root"));

    let dup = skein(dir.path())
        .args(["admin", "create-user", "--username", "boss"])
        .output()
        .unwrap();
    assert!(!dup.status.success(), "a taken username was created twice");

    let out = skein(dir.path())
        .args(["admin", "create-user", "--email", "ops@example.com"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password is shown once")
        .to_string();

    assert!(
        skein(dir.path())
            .args(["admin", "set-role", "ops@example.com", "admin"])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        !skein(dir.path())
            .args(["admin", "set-role", "nobody", "admin"])
            .status()
            .unwrap()
            .success()
    );
    let reset = skein(dir.path())
        .args(["admin", "reset-password", "boss"])
        .output()
        .unwrap();
    assert!(reset.status.success());
    let boss_password = String::from_utf8_lossy(&reset.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_string();

    // Start the real binary on that data directory and sign in as both accounts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = KillOnDrop(
        skein(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "skein serve never became ready");
        let login = |login: &'static str, password: String| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let r = client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"login": login, "password": password}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                (status, body)
            }
        };
        let (status, body) = login("boss", boss_password.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["role"], "root");
        let (status, body) = login("ops@example.com", generated.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["role"], "admin");
        // The CLI-made root means a web registration now is an ordinary user.
        let r = client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"username": "web", "password": "web password 1"}))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["user"]["role"], "user");
    });
}

/// Stops the spawned server even when an assertion fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn the_example_configuration_is_valid_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../skein.example.toml");
    let out = skein(dir.path())
        .args(["--config", example, "config", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every key the server prints is documented in the example.
    let example_text = std::fs::read_to_string(example).unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let key = line
            .split(" = ")
            .next()
            .unwrap()
            .trim_start_matches("# ")
            .split(' ')
            .next()
            .unwrap();
        if key.is_empty() || key.starts_with('[') {
            continue;
        }
        assert!(
            example_text.contains(&format!("{key} =")),
            "{key} is not documented in skein.example.toml"
        );
    }
}

#[test]
fn an_operator_made_account_ends_the_first_account_rule() {
    let dir = tempfile::tempdir().unwrap();
    // The reviewer's scenario: an ordinary account from the CLI, promoted later, and closed
    // registration. A stranger's sign-up must neither become root nor bypass the closure.
    assert!(
        skein(dir.path())
            .args(["admin", "create-user", "--username", "ops"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = KillOnDrop(
        skein(dir.path())
            .env("SKEIN_REGISTRATION__ENABLED", "false")
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"username": "stranger", "password": "a long password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            403,
            "registration is closed and ops already exists"
        );
    });
}

/// A fresh `skein serve` prints a one-time setup token; only that token makes the first
/// account (root), and a restart after set-up prints none.
#[test]
fn serve_prints_a_setup_token_that_only_the_first_registration_needs() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = skein(dir.path())
        .env("SKEIN_LOG_LEVEL", "warn")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server printed nothing");
    let token = line
        .split("setup token: ")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect::<String>()
        })
        .unwrap_or_else(|| panic!("no setup token in {line:?}"));
    assert!(token.len() >= 32, "{token}");
    let base = format!("http://127.0.0.1:{port}");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let register = |body: serde_json::Value| {
            let client = client.clone();
            let url = format!("{base}/api/v1/auth/register");
            async move {
                let r = client.post(url).json(&body).send().await.unwrap();
                let status = r.status();
                (
                    status,
                    r.json::<serde_json::Value>().await.unwrap_or_default(),
                )
            }
        };
        let (status, body) =
            register(json!({"username": "eve", "password": "a long password"})).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "setup_token_required");
        let (status, body) = register(
            json!({"username": "ops", "password": "a long password", "setup_token": token}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["user"]["role"], "root");
    });
}

/// The real binary (jemalloc, the default build) reports its allocator's figures to admins,
/// and `SIGUSR1` logs a memory summary instead of ending the process (the signal's default).
#[cfg(unix)]
#[test]
fn the_binary_reports_its_allocator_and_logs_memory_on_sigusr1() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = skein(dir.path())
        .env("SKEIN_LOG_LEVEL", "warn")
        .env("SKEIN_SETUP_TOKEN", "memory-test-setup-token-0123456789")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let mut server = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let report = runtime.block_on(async {
        let mut ready = false;
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "skein serve never became ready");
        let root: serde_json::Value = client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"username": "root", "password": "a long password",
                "setup_token": "memory-test-setup-token-0123456789"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = root["access_token"].as_str().unwrap().to_string();
        client
            .get(format!("{base}/api/v1/admin/system/runtime"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    let allocator = &report["allocator"];
    assert_eq!(allocator["name"], "jemalloc", "{report}");
    let figure = |name: &str| allocator[name].as_u64().unwrap();
    assert!(
        figure("allocated_bytes") > 1_000_000,
        "a running server holds more than a megabyte: {report}"
    );
    assert!(
        figure("allocated_bytes") <= figure("active_bytes")
            && figure("active_bytes") <= figure("resident_bytes")
            && figure("metadata_bytes") > 0,
        "{report}"
    );
    assert!(
        figure("resident_bytes") <= report["rss_bytes"].as_u64().unwrap(),
        "the allocator's resident memory is part of the RSS: {report}"
    );

    // Whatever the server logged so far is not the summary.
    while rx.try_recv().is_ok() {}
    let sent = Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let summary = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("no memory summary was logged after SIGUSR1");
        if line.contains("memory summary") {
            break line;
        }
    };
    for part in [
        "rss_mib",
        "threads",
        "tasks",
        "jemalloc allocated=",
        "resident=",
        "retained=",
        "db.pool.size=",
        "relay.key_cache=",
        "limiter.keys=",
    ] {
        assert!(summary.contains(part), "{part} missing from {summary}");
    }
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "SIGUSR1 ended the server"
    );
    let ready = runtime.block_on(async {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    });
    assert!(ready, "the server still answers after SIGUSR1");
}

#[test]
fn channels_apply_prints_a_plan_then_applies_once_and_export_names_variables_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("channels.toml");
    std::fs::write(
        &file,
        "[[channel]]\nname = \"deepseek\"\ntype = \"deepseek\"\nkeys_env = [\"DS_KEY\"]\nmodels = [\"deepseek-chat\"]\n\n[prices.deepseek-chat]\ninput_per_mtok = 2000000\noutput_per_mtok = 3000000\ncache_read_per_mtok = 0\ncache_write_per_mtok = 0\nper_call = 0\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = skein(dir.path())
            .env("DS_KEY", "sk-secret-deepseek-key")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("sk-secret-deepseek-key"), "{stdout}");
        stdout
    };
    let path = file.to_str().unwrap();
    let plan = run(&["channels", "apply", path, "--dry-run"]);
    assert!(plan.contains("+ channel deepseek"), "{plan}");
    assert!(plan.contains("+ price deepseek-chat"), "{plan}");
    assert!(plan.contains("dry run: 2 change(s) planned"), "{plan}");
    let applied = run(&["channels", "apply", path]);
    assert!(applied.contains("2 change(s) applied"), "{applied}");
    let again = run(&["channels", "apply", path]);
    assert!(again.contains("0 change(s) applied"), "{again}");
    let exported = run(&["channels", "export"]);
    assert!(exported.contains("name = \"deepseek\""), "{exported}");
    assert!(
        exported.contains("keys_env = [\"SKEIN_CHANNEL_DEEPSEEK_KEY\"]"),
        "{exported}"
    );
    let help = run(&["channels", "apply", "--help"]);
    assert!(
        help.contains("--dry-run") && help.contains("--prune"),
        "{help}"
    );
}
