//! Accounts, complete: email verification, password reset by mail, the mail queue when the
//! SMTP server is down, sessions and devices, and two-factor sign-in (TOTP).
//!
//! Mail goes to a real SMTP server on loopback (aiosmtpd, started by `scripts/test`, which
//! exports `SKEIN_TEST_SMTP_PORT` and `SKEIN_TEST_MAILDIR`); the tests read the delivered
//! messages from its Maildir and follow their links. Every test uses addresses of its own,
//! because the tests share that one mailbox.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use skein::config::Config;
use skein_testkit::{Backend, PASSWORD, SETUP_TOKEN, TestApp, both_backends, on_both_backends};

/// The SMTP server and its Maildir, when `scripts/test` started them.
pub(crate) fn smtp() -> Option<(u16, PathBuf)> {
    let port = std::env::var("SKEIN_TEST_SMTP_PORT").ok()?.parse().ok()?;
    let dir = std::env::var("SKEIN_TEST_MAILDIR").ok()?;
    Some((port, PathBuf::from(dir)))
}

/// Skips (loudly) a test that needs the SMTP server when it is not running.
macro_rules! need_smtp {
    () => {
        match smtp() {
            Some(found) => found,
            None => {
                eprintln!("SKEIN_TEST_SMTP_PORT is not set: mail is not tested (scripts/test starts aiosmtpd)");
                return;
            }
        }
    };
}

pub(crate) fn mail_config(c: &mut Config, port: u16) {
    c.mail.smtp_host = Some("127.0.0.1".into());
    c.mail.smtp_port = port;
    c.mail.security = skein_user::config::SmtpSecurity::Plain;
    c.mail.public_url = "http://skein.test".into();
    c.mail.poll_interval_ms = 100;
    c.mail.first_retry_ms = 300;
    c.mail.timeout_secs = 5;
}

/// A name no other test uses, so its mail is its own.
pub(crate) fn unique(name: &str) -> String {
    format!("{name}{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// Every delivered message addressed to `to`, in the order delivered, raw, with
/// quoted-printable soft breaks undone.
pub(crate) fn messages_to(maildir: &Path, to: &str) -> Vec<String> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(raw) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let delivered = entry.metadata().and_then(|m| m.modified()).ok();
            let text = raw
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=");
            let addressed = text.lines().any(|l| {
                l.to_ascii_lowercase().starts_with("to:") && l.to_ascii_lowercase().contains(to)
            });
            if addressed {
                found.push((delivered, entry.file_name(), text));
            }
        }
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    found.into_iter().map(|(_, _, text)| text).collect()
}

/// Waits for the `n`-th message to `to` and answers it.
pub(crate) async fn wait_for_mail(maildir: &Path, to: &str, n: usize) -> String {
    let start = Instant::now();
    loop {
        let mut found = messages_to(maildir, to);
        if found.len() >= n {
            return found.swap_remove(n - 1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no mail #{n} to {to} arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The token of the first link to `page` in a message.
pub(crate) fn link_token(mail: &str, page: &str) -> String {
    let marker = format!("http://skein.test/{page}?token=");
    let at = mail
        .find(&marker)
        .unwrap_or_else(|| panic!("no {page} link in:\n{mail}"))
        + marker.len();
    mail[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// Signs in with the password only, where two-factor sign-in is on: answers the challenge.
async fn challenge(app: &TestApp, login: &str) -> String {
    let r = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": login, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["two_factor_required"], true, "{}", r.text);
    assert!(
        r.json.get("access_token").is_none(),
        "no tokens after the password alone"
    );
    r.json["challenge"].as_str().unwrap().to_string()
}

pub(crate) async fn register_with_email(
    app: &TestApp,
    username: &str,
    email: &str,
) -> reqwest::StatusCode {
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": username, "email": email, "password": PASSWORD, "setup_token": SETUP_TOKEN}),
        )
        .await;
    r.status
}

on_both_backends! {
    async fn verification_link_works_once(backend) {
        let (port, maildir) = need_smtp!();
        let app = TestApp::spawn_with(backend, |c| mail_config(c, port)).await;
        let name = unique("vera");
        let email = format!("{name}@mail.test");
        assert_eq!(register_with_email(&app, &name, &email).await, StatusCode::CREATED);
        let vera = app.login(&name, PASSWORD).await;
        let me = app.get("/api/v1/user/profile", Some(&vera.access)).await;
        assert_eq!(me.json["email_verified"], false);

        let mail = wait_for_mail(&maildir, &email, 1).await;
        assert!(mail.contains("Subject: Confirm your email address"), "{mail}");
        assert!(mail.contains("multipart/alternative") && mail.contains("text/html"), "both parts: {mail}");
        let token = link_token(&mail, "verify-email");
        let ok = app.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        assert_eq!(ok.json["email"], email.as_str());
        let me = app.get("/api/v1/user/profile", Some(&vera.access)).await;
        assert_eq!(me.json["email_verified"], true);

        let again = app.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert_eq!(again.error_code(), "invalid_link");
        let forged = app.post("/api/v1/auth/verify-email", None, json!({"token": "skl_forged"})).await;
        assert_eq!(forged.error_code(), "invalid_link");
        let resend = app.post("/api/v1/user/email/verification", Some(&vera.access), json!({})).await;
        assert_eq!(resend.status, StatusCode::CONFLICT, "already verified: {}", resend.text);
    }

    async fn expired_links_are_refused(backend) {
        let (port, maildir) = need_smtp!();
        let app = TestApp::spawn_with(backend, |c| {
            mail_config(c, port);
            c.auth.email_verification_ttl_secs = 1;
        })
        .await;
        let name = unique("exp");
        let email = format!("{name}@mail.test");
        assert_eq!(register_with_email(&app, &name, &email).await, StatusCode::CREATED);
        let token = link_token(&wait_for_mail(&maildir, &email, 1).await, "verify-email");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let late = app.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
        assert_eq!(late.status, StatusCode::BAD_REQUEST);
        assert_eq!(late.error_code(), "invalid_link");
        // A new mail can be asked for (it works as the first one did; its own 1 s is too short
        // to open it reliably on a loaded machine, so this test stops at its arrival).
        let exp = app.login(&name, PASSWORD).await;
        let resend = app
            .post("/api/v1/user/email/verification", Some(&exp.access), json!({}))
            .await;
        assert_eq!(resend.status, StatusCode::ACCEPTED, "{}", resend.text);
        let second = link_token(&wait_for_mail(&maildir, &email, 2).await, "verify-email");
        assert_ne!(second, token);
    }

    async fn password_reset_by_mail_signs_everyone_out(backend) {
        let (port, maildir) = need_smtp!();
        let app = TestApp::spawn_with(backend, |c| mail_config(c, port)).await;
        let name = unique("rita");
        let email = format!("{name}@mail.test");
        assert_eq!(register_with_email(&app, &name, &email).await, StatusCode::CREATED);
        let laptop = app.login(&name, PASSWORD).await;
        let phone = app.login(&email, PASSWORD).await;

        let asked = app.post("/api/v1/auth/password/forgot", None, json!({"email": email.to_uppercase()})).await;
        let nobody = format!("{}@mail.test", unique("nobody"));
        let stranger = app.post("/api/v1/auth/password/forgot", None, json!({"email": nobody})).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text);
        assert_eq!((stranger.status, &stranger.json), (asked.status, &asked.json), "no account enumeration");

        // The registration mail comes first, then the reset.
        let mail = wait_for_mail(&maildir, &email, 2).await;
        let mail = if mail.contains("reset-password") { mail } else { wait_for_mail(&maildir, &email, 1).await };
        assert!(mail.contains("Subject: Reset your password"), "{mail}");
        let token = link_token(&mail, "reset-password");
        assert!(messages_to(&maildir, &nobody).is_empty(), "no mail for an address without an account");

        let short = app.post("/api/v1/auth/password/reset", None, json!({"token": token, "new_password": "short"})).await;
        assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", short.text);
        let done = app.post("/api/v1/auth/password/reset", None, json!({"token": token, "new_password": "a brand new secret"})).await;
        assert_eq!(done.status, StatusCode::OK, "the short password did not use the link up: {}", done.text);
        assert_eq!(done.json["revoked_sessions"], 3, "registration, laptop and phone");
        for old in [&laptop, &phone] {
            let r = app.get("/api/v1/user/profile", Some(&old.access)).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "sessions end after a reset");
        }
        let replay = app.post("/api/v1/auth/password/reset", None, json!({"token": token, "new_password": "yet another secret"})).await;
        assert_eq!(replay.error_code(), "invalid_link");
        let old = app.post("/api/v1/auth/login", None, json!({"login": name, "password": PASSWORD})).await;
        assert_eq!(old.status, StatusCode::UNAUTHORIZED);
        let me = app.login(&name, "a brand new secret").await;
        let profile = app.get("/api/v1/user/profile", Some(&me.access)).await;
        assert_eq!(profile.json["email_verified"], true, "opening the reset mail proved the address");

        // A reset link asked for before the password was changed by its owner stops working.
        let asked = app.post("/api/v1/auth/password/forgot", None, json!({"email": email})).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED);
        let mail = wait_for_mail(&maildir, &email, 3).await;
        let stale = link_token(&mail, "reset-password");
        assert_ne!(stale, token);
        let changed = app.put("/api/v1/user/password", Some(&me.access), json!({"current_password": "a brand new secret", "new_password": "changed by its owner"})).await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
        let r = app.post("/api/v1/auth/password/reset", None, json!({"token": stale, "new_password": "taken over by a thief"})).await;
        assert_eq!(r.error_code(), "invalid_link", "{}", r.text);
        app.login(&name, "changed by its owner").await;
    }

    async fn verified_email_required_for_login(backend) {
        let (port, maildir) = need_smtp!();
        let app = TestApp::spawn_with(backend, |c| {
            mail_config(c, port);
            c.auth.verified_email_for_login = true;
        })
        .await;
        app.root().await;
        let name = unique("una");
        let email = format!("{name}@mail.test");
        let no_email = app.post("/api/v1/auth/register", None, json!({"username": unique("nomail"), "password": PASSWORD})).await;
        assert_eq!(no_email.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", no_email.text);
        let r = app.post("/api/v1/auth/register", None, json!({"username": name, "email": email, "password": PASSWORD})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        assert_eq!(r.json["verification_required"], true);
        assert!(r.json.get("access_token").is_none(), "no tokens before verification");
        let refused = app.post("/api/v1/auth/login", None, json!({"login": name, "password": PASSWORD})).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.error_code(), "email_not_verified");
        let token = link_token(&wait_for_mail(&maildir, &email, 1).await, "verify-email");
        let ok = app.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        app.login(&name, PASSWORD).await;
    }

    async fn email_change_waits_for_the_new_address(backend) {
        let (port, maildir) = need_smtp!();
        let app = TestApp::spawn_with(backend, |c| mail_config(c, port)).await;
        let (a, b) = (unique("alma"), unique("bert"));
        let (a_mail, b_mail) = (format!("{a}@mail.test"), format!("{b}@mail.test"));
        assert_eq!(register_with_email(&app, &a, &a_mail).await, StatusCode::CREATED);
        assert_eq!(register_with_email(&app, &b, &b_mail).await, StatusCode::CREATED);
        let alma = app.login(&a, PASSWORD).await;
        let bert = app.login(&b, PASSWORD).await;

        let wrong = app.put("/api/v1/user/email", Some(&alma.access), json!({"email": "x@mail.test", "current_password": "wrong password"})).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        // Bert asks for Alma's address: the same answer as for a free one; Alma is told.
        let taken = app.put("/api/v1/user/email", Some(&bert.access), json!({"email": a_mail, "current_password": PASSWORD})).await;
        let new_addr = format!("{}@mail.test", unique("alma-new"));
        let free = app.put("/api/v1/user/email", Some(&alma.access), json!({"email": new_addr, "current_password": PASSWORD})).await;
        assert_eq!(taken.status, StatusCode::ACCEPTED, "{}", taken.text);
        assert_eq!((taken.status, &taken.json), (free.status, &free.json));
        let notice = wait_for_mail(&maildir, &a_mail, 2).await;
        let notice = if notice.contains("tried to use") { notice } else { wait_for_mail(&maildir, &a_mail, 1).await };
        assert!(notice.contains("Subject: Someone tried to use your email address"), "{notice}");
        assert!(!notice.contains("verify-email"), "no link that would move the address");

        let me = app.get("/api/v1/user/profile", Some(&alma.access)).await;
        assert_eq!(me.json["email"], a_mail.as_str(), "unchanged until the link is opened");
        // A reset link mailed to the old address before the move...
        let asked = app.post("/api/v1/auth/password/forgot", None, json!({"email": a_mail})).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED);
        let reset = wait_for_mail(&maildir, &a_mail, 3).await;
        let reset = [reset].into_iter().chain(messages_to(&maildir, &a_mail)).find(|m| m.contains("reset-password")).expect("the reset mail");
        let old_link = link_token(&reset, "reset-password");
        let token = link_token(&wait_for_mail(&maildir, &new_addr, 1).await, "verify-email");
        let ok = app.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        let me = app.get("/api/v1/user/profile", Some(&alma.access)).await;
        assert_eq!(me.json["email"], new_addr.as_str());
        assert_eq!(me.json["email_verified"], true);
        // ...stops working once the account names another mailbox.
        let r = app.post("/api/v1/auth/password/reset", None, json!({"token": old_link, "new_password": "taken over by a thief"})).await;
        assert_eq!(r.error_code(), "invalid_link", "{}", r.text);
        app.login(&a, PASSWORD).await;
    }

    async fn smtp_down_answers_at_once_and_retries(backend) {
        let python = match std::env::var("SKEIN_TEST_PYTHON") {
            Ok(p) if smtp().is_some() => p,
            _ => {
                eprintln!("SKEIN_TEST_SMTP_PORT / SKEIN_TEST_PYTHON not set: the retry is not tested (scripts/test sets them)");
                return;
            }
        };
        // A port nothing listens on (yet).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let app = TestApp::spawn_with(backend, |c| mail_config(c, port)).await;
        let name = unique("dora");
        let email = format!("{name}@mail.test");
        let started = Instant::now();
        assert_eq!(register_with_email(&app, &name, &email).await, StatusCode::CREATED);
        let asked = app.post("/api/v1/auth/password/forgot", None, json!({"email": email})).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED);
        assert!(started.elapsed() < Duration::from_secs(3), "requests do not wait for SMTP: {:?}", started.elapsed());
        // Let a few attempts fail, then bring the server up on that port.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let dir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let mut server = tokio::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let verify = wait_for_mail(dir.path(), &email, 1).await;
        let reset = wait_for_mail(dir.path(), &email, 2).await;
        let both = format!("{verify}{reset}");
        assert!(both.contains("verify-email") && both.contains("reset-password"), "both queued mails arrive once the server is up");
        server.kill().await.ok();
    }
}

both_backends! {
    async fn sessions_list_and_revoke(app) {
        app.root().await;
        let alice = app.register("alice").await;
        let bob = app.register("bob").await;
        let phone = {
            let r = app
                .send(app.client.post(app.url("/api/v1/auth/login")).header("user-agent", "PhoneApp/1.0").json(&json!({"login": "alice", "password": PASSWORD})))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.json["access_token"].as_str().unwrap().to_string()
        };
        let tablet = app.login("alice", PASSWORD).await;
        let list = app.get("/api/v1/user/sessions", Some(&alice.access)).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        let items = list.json["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
        let phone_session = items.iter().find(|s| s["user_agent"] == "PhoneApp/1.0").expect("the phone's user agent");
        assert!(phone_session["ip"].is_string() && phone_session["last_seen_at"].is_string());
        let phone_id = phone_session["id"].as_str().unwrap().to_string();

        // Bob cannot end Alice's session: 404 as for an unknown id.
        let theirs = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/sessions/{phone_id}"), Some(&bob.access), None).await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/v1/user/profile", Some(&phone)).await.status, StatusCode::OK);

        let mine = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/sessions/{phone_id}"), Some(&alice.access), None).await;
        assert_eq!(mine.status, StatusCode::NO_CONTENT, "{}", mine.text);
        assert_eq!(app.get("/api/v1/user/profile", Some(&phone)).await.status, StatusCode::UNAUTHORIZED);
        let again = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/sessions/{phone_id}"), Some(&alice.access), None).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);

        let others = app.post("/api/v1/user/sessions/revoke-others", Some(&alice.access), json!({})).await;
        assert_eq!(others.json["revoked_sessions"], 1, "{}", others.text);
        assert_eq!(app.get("/api/v1/user/profile", Some(&tablet.access)).await.status, StatusCode::UNAUTHORIZED);
        let refresh = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": tablet.refresh})).await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get("/api/v1/user/profile", Some(&alice.access)).await.status, StatusCode::OK);
        assert_eq!(app.get("/api/v1/user/profile", Some(&bob.access)).await.status, StatusCode::OK, "Bob is untouched");
    }

    async fn totp_sign_in_with_codes_and_recovery_codes(app) {
        app.root().await;
        let tess = app.register("tess").await;
        let wrong_pw = app.post("/api/v1/user/2fa/totp/setup", Some(&tess.access), json!({"password": "not it at all"})).await;
        assert_eq!(wrong_pw.status, StatusCode::UNAUTHORIZED);
        let setup = app.post("/api/v1/user/2fa/totp/setup", Some(&tess.access), json!({"password": PASSWORD})).await;
        assert_eq!(setup.status, StatusCode::OK, "{}", setup.text);
        let secret = setup.json["secret"].as_str().unwrap().to_string();
        assert!(setup.json["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Skein:"));
        let step = skein_core::ids::now_ms() / 1000 / 30;
        let code = |s: i64| skein_user::totp::code_at(&secret, s).unwrap();
        let wrong = if code(step) == "000000" { "111111" } else { "000000" };

        // Not on until confirmed: sign-in still answers tokens.
        app.login("tess", PASSWORD).await;
        let bad = app.post("/api/v1/user/2fa/totp/enable", Some(&tess.access), json!({"code": wrong})).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let on = app.post("/api/v1/user/2fa/totp/enable", Some(&tess.access), json!({"code": code(step)})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);
        let recovery: Vec<String> = on.json["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        assert_eq!(recovery.len(), 10);
        let me = app.get("/api/v1/user/profile", Some(&tess.access)).await;
        assert_eq!(me.json["two_factor_enabled"], true);

        let c1 = challenge(&app, "tess").await;
        let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c1, "code": code(step)})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "the code that enabled 2FA cannot be used again");
        let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c1, "code": code(step + 1)})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.json["access_token"].is_string());
        let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c1, "code": code(step + 1)})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a challenge works once");
        let c2 = challenge(&app, "tess").await;
        let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c2, "code": code(step + 1)})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "a code works once");
        let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c2, "code": recovery[0].to_lowercase()})).await;
        assert_eq!(r.status, StatusCode::OK, "a recovery code, typed in lower case: {}", r.text);
        let c3 = challenge(&app, "tess").await;
        let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c3, "code": recovery[0]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "a recovery code works once");
        let status = app.get("/api/v1/user/2fa", Some(&tess.access)).await;
        assert_eq!(status.json["recovery_codes_left"], 9, "{}", status.text);

        // Wrong codes so far: 3 (bad enable, replayed code x2... and the used recovery code).
        // Keep guessing: the account is locked out of codes with 429, even with a right one.
        let mut locked = false;
        for _ in 0..6 {
            let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c3, "code": wrong})).await;
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                locked = true;
                assert!(r.header("retry-after").is_some());
                break;
            }
            if r.status == StatusCode::UNAUTHORIZED {
                // The challenge died after 5 wrong codes: ask for another.
                let fresh = challenge(&app, "tess").await;
                let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": fresh, "code": wrong})).await;
                if r.status == StatusCode::TOO_MANY_REQUESTS {
                    locked = true;
                    break;
                }
            }
        }
        assert!(locked, "wrong codes are rate-limited");
        let c4 = challenge(&app, "tess").await;
        let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c4, "code": recovery[1]})).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "even a right code waits out the lock");
    }

    async fn parallel_guesses_cannot_outrun_the_code_limits(app) {
        app.root().await;
        let gus = app.register("gus").await;
        let setup = app.post("/api/v1/user/2fa/totp/setup", Some(&gus.access), json!({"password": PASSWORD})).await;
        let secret = setup.json["secret"].as_str().unwrap().to_string();
        let step = skein_core::ids::now_ms() / 1000 / 30;
        let code = |s: i64| skein_user::totp::code_at(&secret, s).unwrap();
        let on = app.post("/api/v1/user/2fa/totp/enable", Some(&gus.access), json!({"code": code(step)})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);
        // Twenty guesses at once on one challenge: each is counted before it is checked, so
        // at most five are looked at; the rest are refused unread.
        let c = challenge(&app, "gus").await;
        let guesses = (0..20).map(|i| {
            let c = c.clone();
            let app = &app;
            async move {
                app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c, "code": format!("{:06}", 100_000 + i)})).await.status
            }
        });
        let answers = futures::future::join_all(guesses).await;
        let checked = answers.iter().filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY || **s == StatusCode::OK).count();
        assert!(checked <= 5, "{answers:?}");
        assert!(answers.iter().all(|s| [StatusCode::UNPROCESSABLE_ENTITY, StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)), "{answers:?}");
        // The challenge is spent, whatever the right code.
        let r = app.post("/api/v1/auth/login/2fa", None, json!({"challenge": c, "code": code(step + 1)})).await;
        assert!(r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    }

    async fn totp_disable_needs_password_and_code(app) {
        app.root().await;
        let ned = app.register("ned").await;
        let setup = app.post("/api/v1/user/2fa/totp/setup", Some(&ned.access), json!({"password": PASSWORD})).await;
        let secret = setup.json["secret"].as_str().unwrap().to_string();
        let step = skein_core::ids::now_ms() / 1000 / 30;
        let on = app.post("/api/v1/user/2fa/totp/enable", Some(&ned.access), json!({"code": skein_user::totp::code_at(&secret, step).unwrap()})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);
        let again = app.post("/api/v1/user/2fa/totp/setup", Some(&ned.access), json!({"password": PASSWORD})).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "set-up cannot replace an active secret");
        let recovery = on.json["recovery_codes"][0].as_str().unwrap().to_string();
        let no_pw = app.post("/api/v1/user/2fa/totp/disable", Some(&ned.access), json!({"password": "wrong password!", "code": recovery})).await;
        assert_eq!(no_pw.status, StatusCode::UNAUTHORIZED);
        let off = app.post("/api/v1/user/2fa/totp/disable", Some(&ned.access), json!({"password": PASSWORD, "code": recovery})).await;
        assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.text);
        app.login("ned", PASSWORD).await;
    }
}

on_both_backends! {
    async fn admins_act_as_users_until_they_turn_on_totp(backend) {
        let app = TestApp::spawn_with(backend, |c| c.auth.two_factor_required_for_admins = true).await;
        let root = app.root().await;
        let held = app.get("/api/v1/admin/users", Some(&root.access)).await;
        assert_eq!(held.status, StatusCode::FORBIDDEN, "{}", held.text);
        let status = app.get("/api/v1/user/2fa", Some(&root.access)).await;
        assert_eq!(status.json["required"], true);
        let setup = app.post("/api/v1/user/2fa/totp/setup", Some(&root.access), json!({"password": PASSWORD})).await;
        let secret = setup.json["secret"].as_str().unwrap().to_string();
        let step = skein_core::ids::now_ms() / 1000 / 30;
        let on = app.post("/api/v1/user/2fa/totp/enable", Some(&root.access), json!({"code": skein_user::totp::code_at(&secret, step).unwrap()})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);
        let admin = app.get("/api/v1/admin/users", Some(&root.access)).await;
        assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    }

    async fn mail_routes_say_when_no_mail_is_configured(backend) {
        let app = TestApp::spawn(backend).await;
        let r = app.post("/api/v1/auth/password/forgot", None, json!({"email": "a@b.test"})).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.error_code(), "mail_unavailable");
    }
}

#[test]
fn requiring_verified_email_without_mail_is_a_config_error() {
    let mut c = Config::default();
    c.auth.verified_email_for_login = true;
    assert!(c.validate().is_err());
    c.mail.smtp_host = Some("smtp.example.com".into());
    assert!(c.validate().is_ok());
    let _ = Backend::Sqlite;
}

const AVATAR_BOUNDARY: &str = "skein-avatar-test-boundary";

async fn put_avatar(app: &TestApp, token: &str, content: &[u8]) -> skein_testkit::Resp {
    let mut body = format!(
        "--{AVATAR_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"me.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{AVATAR_BOUNDARY}--\r\n").as_bytes());
    app.send(
        app.client
            .put(app.url("/api/v1/user/avatar"))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={AVATAR_BOUNDARY}"),
            )
            .body(body),
    )
    .await
}

both_backends! {
    async fn avatars_upload_small_and_default_to_initials(app) {
        app.root().await;
        let ava = app.register("ava").await;
        let renamed = app.patch("/api/v1/user/profile", Some(&ava.access), json!({"display_name": "Ava Lin"})).await;
        assert_eq!(renamed.status, StatusCode::OK);
        let url = format!("/api/v1/users/{}/avatar", ava.id);
        let initials = app.get(&url, None).await;
        assert_eq!(initials.status, StatusCode::OK);
        assert_eq!(initials.header("content-type"), Some("image/svg+xml"));
        assert!(initials.text.contains(">AL<"), "{}", initials.text);
        assert_eq!(app.get(&url, None).await.text, initials.text, "the same colour every time");

        // A 600×300 picture is cropped to the centre square and stored at 256 px.
        let mut picture = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(600, 300, image::Rgb([10, 120, 200])))
            .write_to(&mut std::io::Cursor::new(&mut picture), image::ImageFormat::Jpeg)
            .unwrap();
        let up = put_avatar(&app, &ava.access, &picture).await;
        assert_eq!(up.status, StatusCode::OK, "{}", up.text);
        let avatar_url = up.json["avatar_url"].as_str().unwrap().to_string();
        assert!(avatar_url.starts_with(&url), "{avatar_url}");
        let served = app.send(app.client.get(app.url(&avatar_url))).await;
        assert_eq!(served.header("content-type"), Some("image/png"));
        let bytes = app.client.get(app.url(&avatar_url)).send().await.unwrap().bytes().await.unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (256, 256));

        let not_image = put_avatar(&app, &ava.access, b"hello, not a picture").await;
        assert_eq!(not_image.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", not_image.text);
        let huge = put_avatar(&app, &ava.access, &vec![0u8; 6 * 1024 * 1024]).await;
        assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", huge.text);
        let still = app.get("/api/v1/user/profile", Some(&ava.access)).await;
        assert_eq!(still.json["avatar_url"], avatar_url.as_str(), "a refused upload changes nothing");

        let removed = app.call(reqwest::Method::DELETE, "/api/v1/user/avatar", Some(&ava.access), None).await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
        assert!(removed.json["avatar_url"].is_null());
        assert_eq!(app.get(&url, None).await.header("content-type"), Some("image/svg+xml"));
        let unknown = app.get("/api/v1/users/0190aaaa-0000-7000-8000-000000000000/avatar", None).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    }
}

both_backends! {
    async fn avatars_are_served_at_sizes_with_etags_to_anyone(app) {
        app.root().await;
        let ava = app.register("ava").await;
        let bo = app.register("bob").await;
        let url = format!("/api/v1/users/{}/avatar", ava.id);
        let get = |query: String, accept: &'static str, etag: Option<String>| {
            let mut request = app.client.get(app.url(&format!("{url}{query}"))).header("accept", accept);
            if let Some(etag) = etag {
                request = request.header("if-none-match", etag);
            }
            request.send()
        };

        // Generated initials at each size: the SVG declares the size asked for, with a strong
        // ETag that a browser's If-None-Match turns into a 304.
        for size in [32, 64, 128, 256] {
            let r = get(format!("?size={size}"), "*/*", None).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["content-type"], "image/svg+xml");
            let etag = r.headers()["etag"].to_str().unwrap().to_string();
            assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong: {etag}");
            assert!(r.headers()["cache-control"].to_str().unwrap().contains("no-cache"));
            let svg = r.text().await.unwrap();
            assert!(svg.contains(&format!("width=\"{size}\" height=\"{size}\"")), "{svg}");
            let again = get(format!("?size={size}"), "*/*", Some(etag.clone())).await.unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
            assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        }
        // A new name is new initials: the old ETag no longer matches.
        let before = get("?size=64".into(), "*/*", None).await.unwrap().headers()["etag"].to_str().unwrap().to_string();
        app.patch("/api/v1/user/profile", Some(&ava.access), json!({"display_name": "Ava Lin"})).await;
        let renamed = get("?size=64".into(), "*/*", Some(before)).await.unwrap();
        assert_eq!(renamed.status(), StatusCode::OK);
        assert!(renamed.text().await.unwrap().contains(">AL<"));

        // An uploaded picture with a sharp edge (left half dark, right half light).
        let mut picture = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(512, 512, |x, _| {
            if x < 256 { image::Rgb([20, 20, 20]) } else { image::Rgb([240, 240, 240]) }
        }))
        .write_to(&mut std::io::Cursor::new(&mut picture), image::ImageFormat::Png)
        .unwrap();
        let up = put_avatar(&app, &ava.access, &picture).await;
        assert_eq!(up.status, StatusCode::OK, "{}", up.text);
        let mut etags = std::collections::HashSet::new();
        for (asked, served) in [(32, 32), (64, 64), (100, 128), (128, 128), (256, 256), (16, 32), (512, 256)] {
            for (accept, content_type) in [("image/png,*/*;q=0.8", "image/png"), ("image/avif,image/webp,*/*;q=0.8", "image/webp")] {
                let r = get(format!("?v=1&size={asked}"), accept, None).await.unwrap();
                assert_eq!(r.status(), StatusCode::OK, "{asked} {accept}");
                assert_eq!(r.headers()["content-type"], content_type);
                assert_eq!(r.headers()["vary"], "Accept");
                let etag = r.headers()["etag"].to_str().unwrap().to_string();
                let bytes = r.bytes().await.unwrap();
                let decoded = image::load_from_memory(&bytes).unwrap();
                assert_eq!((decoded.width(), decoded.height()), (served, served), "{asked} as {content_type}");
                // The edge survives the resize: dark on the left, light on the right.
                let rgba = decoded.to_rgba8();
                assert!(rgba.get_pixel(1, served / 2)[0] < 60 && rgba.get_pixel(served - 2, served / 2)[0] > 200);
                let cached = get(format!("?v=1&size={asked}"), accept, Some(etag.clone())).await.unwrap();
                assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{asked} {accept}");
                assert!(cached.bytes().await.unwrap().is_empty());
                etags.insert(etag);
            }
        }
        assert_eq!(etags.len(), 8, "one ETag per size and format: {etags:?}");
        // No size: today's 256 px PNG.
        let plain = get(String::new(), "*/*", None).await.unwrap();
        let decoded = image::load_from_memory(&plain.bytes().await.unwrap()).unwrap();
        assert_eq!(decoded.width(), 256);
        // A new picture is a new ETag: the browser's copy of the old one is not current.
        let old = get("?size=64".into(), "image/png", None).await.unwrap().headers()["etag"].to_str().unwrap().to_string();
        let mut other = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(300, 300, image::Rgb([200, 0, 0])))
            .write_to(&mut std::io::Cursor::new(&mut other), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(put_avatar(&app, &ava.access, &other).await.status, StatusCode::OK);
        let fresh = get("?size=64".into(), "image/png", Some(old)).await.unwrap();
        assert_eq!(fresh.status(), StatusCode::OK);
        let red = image::load_from_memory(&fresh.bytes().await.unwrap()).unwrap().to_rgba8();
        assert_eq!((red.width(), red.get_pixel(30, 30)[0] > 150), (64, true));

        // Sizes that are not a size: a clear 422, in Chinese too.
        for bad in ["0", "15", "513", "4096", "-1", "big", "64.5"] {
            let r = app.get(&format!("{url}?size={bad}"), None).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.text);
            assert_eq!(r.error_code(), "avatar_size");
        }
        let zh = app.send(app.client.get(app.url(&format!("{url}?size=9000"))).header("accept-language", "zh-CN")).await;
        assert!(zh.json["error"]["message"].as_str().unwrap().contains("头像尺寸"), "{}", zh.text);

        // Privacy as before: anyone, signed in as someone else or not at all, sees the
        // picture and nothing else; an unknown user is a 404 at every size.
        let as_bo = app.send(app.client.get(app.url(&format!("{url}?size=32"))).bearer_auth(&bo.access).header("accept", "image/png")).await;
        assert_eq!(as_bo.status, StatusCode::OK);
        assert_eq!(as_bo.header("content-type"), Some("image/png"));
        let unknown = app.get("/api/v1/users/0190aaaa-0000-7000-8000-000000000000/avatar?size=64", None).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let bo_own = app.get(&format!("/api/v1/users/{}/avatar?size=32", bo.id), None).await;
        assert_eq!(bo_own.header("content-type"), Some("image/svg+xml"));
    }
}
