//! Sign-in with a company directory against a real OpenLDAP server (Debian's slapd) on
//! loopback, which `scripts/test` starts with a throwaway configuration seeded from
//! `scripts/ldap/seed.ldif` and exports as `SKEIN_TEST_LDAP_URL`. Without it these tests say so
//! and stop (like the OIDC tests without their provider).
//!
//! The same slapd speaks TLS with a certificate from a CA made at its start: StartTLS on
//! `SKEIN_TEST_LDAP_URL`, ldaps:// at `SKEIN_TEST_LDAPS_URL`, the CA's PEM file at
//! `SKEIN_TEST_LDAP_CA`; the TLS tests say so and stop without them, by the same rule.

use reqwest::StatusCode;
use serde_json::json;
use skein::config::Config;
use skein_core::secret::Secret;
use skein_testkit::{Backend, TestApp, on_both_backends};

const PASSWORD: &str = "correct horse battery";

fn ldap_url() -> Option<String> {
    let url = std::env::var("SKEIN_TEST_LDAP_URL").ok();
    if url.is_none() {
        eprintln!(
            "SKEIN_TEST_LDAP_URL is not set: LDAP sign-in is not tested (scripts/test starts slapd)"
        );
    }
    url
}

/// The ldaps:// URL, the plain URL (for StartTLS) and the CA's PEM text, when scripts/ldap/start
/// made them.
fn ldap_tls() -> Option<(String, String, String)> {
    let plain = ldap_url()?;
    let (Ok(ldaps), Ok(ca_file)) = (
        std::env::var("SKEIN_TEST_LDAPS_URL"),
        std::env::var("SKEIN_TEST_LDAP_CA"),
    ) else {
        eprintln!(
            "SKEIN_TEST_LDAPS_URL or SKEIN_TEST_LDAP_CA is not set: LDAP over TLS is not tested (scripts/test starts slapd with TLS)"
        );
        return None;
    };
    let ca = std::fs::read_to_string(&ca_file)
        .unwrap_or_else(|e| panic!("SKEIN_TEST_LDAP_CA={ca_file} cannot be read: {e}"));
    Some((ldaps, plain, ca))
}

fn with_ldap(c: &mut Config, url: &str) {
    c.ldap.url = Some(url.into());
    c.ldap.bind_dn = Some("uid=svc-skein,ou=people,dc=skein,dc=test".into());
    c.ldap.bind_password = Some(Secret::new("service secret 42"));
    c.ldap.base_dn = "ou=people,dc=skein,dc=test".into();
    c.ldap.group_base_dn = Some("ou=groups,dc=skein,dc=test".into());
    c.ldap.admin_groups = vec!["cn=skein-admins,ou=groups,dc=skein,dc=test".into()];
    c.ldap.allowed_groups = vec!["CN=Staff, ou=groups,dc=skein,dc=test".into()];
}

async fn ldap_login(app: &TestApp, login: &str, password: &str) -> skein_testkit::Resp {
    app.post(
        "/api/v1/auth/ldap/login",
        None,
        json!({ "login": login, "password": password }),
    )
    .await
}

on_both_backends! {
    async fn directory_sign_in_creates_accounts_and_maps_groups_to_roles(backend) {
        let Some(url) = ldap_url() else { return };
        let app = TestApp::spawn_with(backend, |c| with_ldap(c, &url)).await;
        let root = app.root().await;
        assert_eq!(app.get("/api/v1/auth/ldap", None).await.json["enabled"], true);

        // Ada is in staff and skein-admins: an admin account, her directory address verified.
        let ada = ldap_login(&app, "ada", PASSWORD).await;
        assert_eq!(ada.status, StatusCode::OK, "{}", ada.text);
        let user = &ada.json["user"];
        assert_eq!(user["role"], "admin", "{}", ada.text);
        assert_eq!(user["username"], "ada");
        assert_eq!(user["email"], "ada@skein.test");
        assert_eq!(user["email_verified"], true, "{}", ada.text);
        assert_eq!(user["display_name"], "Ada Lovelace");
        let access = ada.json["access_token"].as_str().unwrap();
        assert_eq!(app.get("/api/v1/admin/users", Some(access)).await.status, StatusCode::OK);
        // Her address finds the same person, and the same account.
        let by_mail = ldap_login(&app, "ada@skein.test", PASSWORD).await;
        assert_eq!(by_mail.json["user"]["id"], user["id"], "{}", by_mail.text);

        // Bob is staff only: a plain user.
        let bob = ldap_login(&app, "bob", PASSWORD).await;
        assert_eq!(bob.status, StatusCode::OK, "{}", bob.text);
        assert_eq!(bob.json["user"]["role"], "user");

        // Carol is in no allowed group: refused, in Chinese too, and no account is made.
        let carol = app.send(app.client.post(app.url("/api/v1/auth/ldap/login")).header("accept-language", "zh-CN").json(&json!({"login": "carol", "password": PASSWORD}))).await;
        assert_eq!(carol.status, StatusCode::FORBIDDEN, "{}", carol.text);
        assert_eq!(carol.error_code(), "ldap_not_allowed");
        assert!(carol.json["error"]["message"].as_str().unwrap().contains("目录"), "{}", carol.text);

        // Wrong, empty, unknown, and a filter injection: all the same 401.
        for (login, password) in [("ada", "wrong password"), ("ada", ""), ("nobody", PASSWORD), ("*", PASSWORD), ("ada)(uid=*", PASSWORD)] {
            let r = ldap_login(&app, login, password).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{login}: {}", r.text);
            assert_eq!(r.error_code(), "invalid_credentials");
        }

        // The role follows the groups at every sign-in: demoted here, admin again after.
        let ada_id = user["id"].as_str().unwrap();
        let demoted = app.patch(&format!("/api/v1/admin/users/{ada_id}"), Some(&root.access), json!({"role": "user"})).await;
        assert!(demoted.status.is_success(), "{}", demoted.text);
        let again = ldap_login(&app, "ada", PASSWORD).await;
        assert_eq!(again.json["user"]["role"], "admin", "{}", again.text);
        let users = app.get("/api/v1/admin/users?q=skein.test", Some(&root.access)).await;
        assert_eq!(users.json["total"], 2, "ada and bob only: {}", users.text);
    }

    async fn directory_sign_in_says_when_the_directory_is_missing_or_down(backend) {
        let off = TestApp::spawn(backend).await;
        assert_eq!(off.get("/api/v1/auth/ldap", None).await.json["enabled"], false);
        let r = ldap_login(&off, "ada", PASSWORD).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.error_code(), "ldap_unavailable");

        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let down = TestApp::spawn_with(backend, |c| {
            with_ldap(c, &format!("ldap://127.0.0.1:{port}"));
            c.ldap.timeout_secs = 2;
        }).await;
        let r = ldap_login(&down, "ada", PASSWORD).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert_eq!(r.error_code(), "ldap_unreachable");
    }
}

/// The wrong service-account password: the directory is "unavailable" (a configuration fault,
/// logged), never a sign-in that skips the search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_service_account_password_signs_nobody_in() {
    let Some(url) = ldap_url() else { return };
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        with_ldap(c, &url);
        c.ldap.bind_password = Some(Secret::new("not the service password"));
    })
    .await;
    let r = ldap_login(&app, "ada", PASSWORD).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
}

/// Over ldaps:// and over StartTLS, with the directory's CA configured: people sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_sign_in_over_ldaps_and_starttls_with_the_ca() {
    let Some((ldaps, plain, ca)) = ldap_tls() else {
        return;
    };
    let over_ldaps = TestApp::spawn_with(Backend::Sqlite, |c| {
        with_ldap(c, &ldaps);
        c.ldap.ca_pem = Some(ca.clone());
    })
    .await;
    let ada = ldap_login(&over_ldaps, "ada", PASSWORD).await;
    assert_eq!(ada.status, StatusCode::OK, "{}", ada.text);
    assert_eq!(ada.json["user"]["role"], "admin");

    let over_starttls = TestApp::spawn_with(Backend::Sqlite, |c| {
        with_ldap(c, &plain);
        c.ldap.starttls = true;
        c.ldap.ca_pem = Some(ca.clone());
    })
    .await;
    let bob = ldap_login(&over_starttls, "bob", PASSWORD).await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.text);
    assert_eq!(bob.json["user"]["role"], "user");
}

/// A certificate from a CA nobody configured (the system's roots do not hold the test CA):
/// the sign-in fails with `ldap_tls`, over ldaps:// and over StartTLS, and never carries on in
/// plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_directory_certificate_is_a_clear_error() {
    let Some((ldaps, plain, _ca)) = ldap_tls() else {
        return;
    };
    for (url, starttls) in [(ldaps, false), (plain, true)] {
        let app = TestApp::spawn_with(Backend::Sqlite, |c| {
            with_ldap(c, &url);
            c.ldap.starttls = starttls;
            c.ldap.timeout_secs = 5;
        })
        .await;
        let r = ldap_login(&app, "ada", PASSWORD).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{url}: {}", r.text);
        assert_eq!(r.error_code(), "ldap_tls", "{url}: {}", r.text);
        assert!(r.text.contains("certificate"), "{}", r.text);
    }
}

/// The directory settings as an admin stores them over those of the file.
fn admin_ldap(url: &str, ca: Option<&str>, password: Option<&str>) -> serde_json::Value {
    let mut ldap = json!({
        "url": url,
        "starttls": false,
        "ca_pem": ca,
        "bind_dn": "uid=svc-skein,ou=people,dc=skein,dc=test",
        "base_dn": "ou=people,dc=skein,dc=test",
        "username_attribute": "uid",
        "email_attribute": "mail",
        "name_attribute": "cn",
        "group_base_dn": "ou=groups,dc=skein,dc=test",
        "admin_groups": ["cn=skein-admins,ou=groups,dc=skein,dc=test"],
        "allowed_groups": ["cn=staff,ou=groups,dc=skein,dc=test"],
    });
    if let Some(password) = password {
        ldap["bind_password"] = json!(password);
    }
    json!({ "ldap": ldap })
}

const SIGN_IN: &str = "/api/v1/admin/sign-in";
const TEST: &str = "/api/v1/admin/sign-in/ldap/test";
const SERVICE_PASSWORD: &str = "service secret 42";

on_both_backends! {
    async fn an_admin_sets_the_directory_and_its_password_is_never_answered(backend) {
        let app = TestApp::spawn(backend).await;
        let root = app.root().await;
        let user = app.register("bea").await;
        let before = app.get(SIGN_IN, Some(&root.access)).await;
        assert_eq!(before.json["ldap"]["source"], "config", "{}", before.text);
        assert_eq!(before.json["ldap"]["enabled"], false);
        assert_eq!(before.json["ldap"]["username_attribute"], "uid", "the file's defaults show");

        // Admins only, for the settings and for the test.
        let body = admin_ldap("ldap://127.0.0.1:9", None, Some(SERVICE_PASSWORD));
        assert_eq!(app.put(SIGN_IN, Some(&user.access), body.clone()).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.post(TEST, Some(&user.access), json!({"login": "ada"})).await.status, StatusCode::FORBIDDEN);

        let saved = app.put(SIGN_IN, Some(&root.access), body).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
        assert_eq!(saved.json["ldap"]["source"], "admin");
        assert_eq!(saved.json["ldap"]["enabled"], true);
        assert_eq!(saved.json["ldap"]["bind_password_set"], true);
        assert!(saved.json["ldap"].get("bind_password").is_none());
        assert!(!saved.text.contains(SERVICE_PASSWORD));
        assert_eq!(saved.json["overridden"].as_array().unwrap().iter().filter(|n| *n == "sign_in.ldap").count(), 1);
        let read = app.get(SIGN_IN, Some(&root.access)).await;
        assert!(!read.text.contains(SERVICE_PASSWORD), "{}", read.text);
        assert_eq!(app.get("/api/v1/auth/ldap", None).await.json["enabled"], true, "in effect at once");

        // Sealed at rest.
        let db = skein_db::Db::connect(&app.config.database_url(), 1).await.unwrap();
        let row: String = skein_db::sqlx::query_scalar("SELECT value FROM system_settings WHERE name = $1")
            .bind("sign_in.ldap").fetch_one(db.pool()).await.unwrap();
        db.close().await;
        assert!(!row.contains(SERVICE_PASSWORD), "{row}");
        assert!(row.contains("svc-skein"), "{row}");

        // Saved again without the password: the one in effect is kept.
        let kept = app.put(SIGN_IN, Some(&root.access), admin_ldap("ldap://127.0.0.1:10", None, None)).await;
        assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
        assert_eq!(kept.json["ldap"]["bind_password_set"], true);
        assert_eq!(kept.json["ldap"]["url"], "ldap://127.0.0.1:10");

        // Settings that cannot work: refused field by field, nothing stored.
        for (bad, says) in [
            (json!({"ldap": {"url": "http://dir", "base_dn": "dc=x"}}), "ldap://"),
            (json!({"ldap": {"url": "ldap://dir", "base_dn": ""}}), "base_dn"),
            (json!({"ldap": {"url": "ldap://dir", "base_dn": "dc=x", "user_filter": "(uid=x)"}}), "{login}"),
            (json!({"ldap": {"url": "ldap://dir", "base_dn": "dc=x", "ca_pem": "not a certificate"}}), "ca_pem"),
            (json!({"ldap": {"url": "ldaps://dir", "base_dn": "dc=x", "starttls": true}}), "starttls"),
            (json!({"ldap": {"url": "ldap://dir", "base_dn": "dc=x", "timeout_secs": 0}}), "timeout"),
        ] {
            let r = app.put(SIGN_IN, Some(&root.access), bad.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.text);
            assert!(r.text.contains(says), "{bad}: {}", r.text);
        }
        assert_eq!(app.get(SIGN_IN, Some(&root.access)).await.json["ldap"]["url"], "ldap://127.0.0.1:10");

        // A test against a port nobody listens on: answered, with the error, not the password.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut form = admin_ldap(&format!("ldap://127.0.0.1:{port}"), None, None)["ldap"].clone();
        form["timeout_secs"] = json!(2);
        let t = app.post(TEST, Some(&root.access), json!({"login": "ada", "settings": form})).await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.text);
        assert_eq!(t.json["result"], "error", "{}", t.text);
        assert!(!t.json["error"].as_str().unwrap().is_empty());
        assert!(!t.text.contains(SERVICE_PASSWORD));
        let no_login = app.post(TEST, Some(&root.access), json!({"login": " "})).await;
        assert_eq!(no_login.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Reset: the file's again (off here), the stored password gone with the row.
        let reset = app.put(SIGN_IN, Some(&root.access), json!({"reset": ["sign_in.ldap"]})).await;
        assert_eq!(reset.json["ldap"]["source"], "config", "{}", reset.text);
        assert_eq!(reset.json["ldap"]["enabled"], false);
        assert_eq!(reset.json["ldap"]["bind_password_set"], false);
        assert_eq!(app.get("/api/v1/auth/ldap", None).await.json["enabled"], false);
        let off = app.post(TEST, Some(&root.access), json!({"login": "ada"})).await;
        assert_eq!(off.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", off.text);
    }

    async fn the_connection_test_finds_people_over_tls_and_names_the_exact_failure(backend) {
        let Some((ldaps, _plain, ca)) = ldap_tls() else { return };
        let app = TestApp::spawn(backend).await;
        let root = app.root().await;
        let saved = app.put(SIGN_IN, Some(&root.access), admin_ldap(&ldaps, Some(&ca), Some(SERVICE_PASSWORD))).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);

        // The settings in effect: Ada, her groups and the role they give.
        let found = app.post(TEST, Some(&root.access), json!({"login": "ada"})).await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.text);
        assert_eq!(found.json["result"], "found", "{}", found.text);
        let ada = &found.json["person"];
        assert_eq!(ada["dn"], "uid=ada,ou=people,dc=skein,dc=test");
        assert_eq!(ada["email"], "ada@skein.test");
        assert_eq!(ada["display_name"], "Ada Lovelace");
        assert_eq!(ada["role"], "admin");
        assert_eq!(ada["allowed"], true);
        assert!(ada["groups"].as_array().unwrap().iter().any(|g| g == "cn=staff,ou=groups,dc=skein,dc=test"));
        let carol = app.post(TEST, Some(&root.access), json!({"login": "carol"})).await;
        assert_eq!((carol.json["result"].as_str(), carol.json["person"]["allowed"].as_bool()), (Some("found"), Some(false)), "{}", carol.text);
        let nobody = app.post(TEST, Some(&root.access), json!({"login": "nobody"})).await;
        assert_eq!(nobody.json["result"], "not_found", "{}", nobody.text);
        // The whole people subtree matches this filter: more than one is "ambiguous".
        let mut wide = admin_ldap(&ldaps, Some(&ca), None)["ldap"].clone();
        wide["user_filter"] = json!("(|(objectClass=inetOrgPerson)(uid={login}))");
        let many = app.post(TEST, Some(&root.access), json!({"login": "ada", "settings": wide})).await;
        assert_eq!(many.json["result"], "ambiguous", "{}", many.text);
        assert!(many.json["matches"].as_u64().unwrap() >= 4);

        // A wrong service password: the directory's own words (invalid credentials, code 49).
        let wrong = admin_ldap(&ldaps, Some(&ca), Some("not the service password"))["ldap"].clone();
        let refused = app.post(TEST, Some(&root.access), json!({"login": "ada", "settings": wrong})).await;
        assert_eq!(refused.json["result"], "error", "{}", refused.text);
        let error = refused.json["error"].as_str().unwrap();
        assert!(error.contains("service account bind") && error.contains("49"), "{error}");
        assert!(!refused.text.contains("not the service password"));

        // The system's roots do not know the test CA: a TLS error, saying why.
        let untrusted = admin_ldap(&ldaps, None, None)["ldap"].clone();
        let tls = app.post(TEST, Some(&root.access), json!({"login": "ada", "settings": untrusted})).await;
        assert_eq!(tls.json["result"], "tls_error", "{}", tls.text);
        assert!(tls.json["error"].as_str().unwrap().to_lowercase().contains("certificate"), "{}", tls.text);

        // And people sign in with what the admin stored.
        let ada = ldap_login(&app, "ada", PASSWORD).await;
        assert_eq!(ada.status, StatusCode::OK, "{}", ada.text);
        assert_eq!(ada.json["user"]["role"], "admin");
    }
}

/// The stored `sign_in.ldap` row's sealed password, read straight from the database.
async fn stored_ldap_password(app: &TestApp) -> String {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let row: String =
        skein_db::sqlx::query_scalar("SELECT value FROM system_settings WHERE name = $1")
            .bind("sign_in.ldap")
            .fetch_one(db.pool())
            .await
            .unwrap();
    db.close().await;
    let value: serde_json::Value = serde_json::from_str(&row).unwrap();
    value["bind_password"].as_str().unwrap().to_string()
}

on_both_backends! {
    async fn the_stored_directory_password_is_resealed_when_the_key_rotates(backend) {
        let old_key = hex::encode([0x31u8; 32]);
        let app = TestApp::spawn_with(backend, |c| {
            c.relay.secret_key = Some(Secret::new(old_key.clone()));
        })
        .await;
        let root = app.root().await;
        let saved = app.put(SIGN_IN, Some(&root.access), admin_ldap("ldap://127.0.0.1:10", None, Some(SERVICE_PASSWORD))).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
        let sealed = stored_ldap_password(&app).await;
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains(SERVICE_PASSWORD), "{sealed}");

        // A new key with the old one listed as previous: sealed again under the new key at
        // start-up, and it still opens (the settings stay the admin's, the password set).
        let rotated = app.sibling_services("all", |c| {
            c.relay.secret_key = Some(Secret::new(hex::encode([0x32u8; 32])));
            c.relay.previous_secret_keys = vec![Secret::new(old_key.clone())];
        }).await;
        let resealed = stored_ldap_password(&rotated).await;
        assert_ne!(resealed.split(':').nth(2), sealed.split(':').nth(2), "under the new key: {resealed}");
        let root_again = rotated.post("/api/v1/auth/login", None, json!({"login": "root", "password": skein_testkit::PASSWORD})).await;
        let token = root_again.json["access_token"].as_str().unwrap_or(&root.access).to_string();
        let view = rotated.get(SIGN_IN, Some(&token)).await;
        assert_eq!(view.json["ldap"]["source"], "admin", "{}", view.text);
        assert_eq!(view.json["ldap"]["bind_password_set"], true);
    }
}
