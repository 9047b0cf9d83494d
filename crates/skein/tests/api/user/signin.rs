//! Admin → Sign-in (`/api/v1/admin/sign-in`): an admin picks the SMS vendor and its
//! credentials and turns sign-in methods on and off; the change applies at once without a
//! restart (on another instance over the bus), the vendor secret is sealed in the database and
//! never answered, and bad settings are refused field by field in both languages.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_sms::MockSms;
use skein_testkit::{Backend, PASSWORD, TestApp, on_both_backends};

const SIGN_IN: &str = "/api/v1/admin/sign-in";
const ACCOUNT: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "twilio-admin-token-93b";

fn twilio(fake: &MockSms, token: Option<&str>, from: &str) -> Value {
    let mut settings = json!({ "account_sid": ACCOUNT, "from": from, "endpoint": fake.base });
    if let Some(token) = token {
        settings["auth_token"] = json!(token);
    }
    json!({ "sms": { "provider": "twilio", "settings": settings } })
}

/// The stored `sign_in.sms` row, read straight from the database.
async fn stored_sms(app: &TestApp) -> String {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let value: String =
        skein_db::sqlx::query_scalar("SELECT value FROM system_settings WHERE name = $1")
            .bind("sign_in.sms")
            .fetch_one(db.pool())
            .await
            .unwrap();
    db.close().await;
    value
}

async fn ask_code(app: &TestApp, phone: &str) -> skein_testkit::Resp {
    app.post("/api/v1/auth/phone/code", None, json!({ "phone": phone }))
        .await
}

on_both_backends! {
    async fn an_admin_picks_the_sms_vendor_at_run_time_and_its_secret_stays_sealed(backend) {
        let fake = MockSms::twilio(ACCOUNT, ACCOUNT, TOKEN).await;
        let app = TestApp::spawn(backend).await;
        let root = app.root().await;
        let user = app.register("ada").await;

        let before = app.get(SIGN_IN, Some(&root.access)).await;
        assert_eq!(before.status, StatusCode::OK, "{}", before.text);
        assert!(before.json["sms"]["provider"].is_null());
        assert_eq!(before.json["sms"]["source"], "config");
        assert_eq!(app.get("/api/v1/settings/public", None).await.json["sign_in"]["phone"], false);
        assert_eq!(ask_code(&app, "+447700900300").await.status, StatusCode::SERVICE_UNAVAILABLE);
        // Admins only.
        assert_eq!(app.get(SIGN_IN, Some(&user.access)).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.put(SIGN_IN, Some(&user.access), twilio(&fake, Some(TOKEN), "+15005550006")).await.status, StatusCode::FORBIDDEN);

        // Twilio, chosen here: applied at once, the secret never answered.
        let set = app.put(SIGN_IN, Some(&root.access), twilio(&fake, Some(TOKEN), "+15005550006")).await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
        assert_eq!(set.json["sms"]["provider"], "twilio");
        assert_eq!(set.json["sms"]["source"], "admin");
        assert_eq!(set.json["sms"]["secret_set"], true);
        assert_eq!(set.json["sms"]["settings"]["from"], "+15005550006");
        assert!(set.json["sms"]["settings"].get("auth_token").is_none());
        assert!(!set.text.contains(TOKEN));
        assert!(!app.get(SIGN_IN, Some(&root.access)).await.text.contains(TOKEN));
        assert_eq!(set.json["overridden"], json!(["sign_in.sms"]));
        // Sealed at rest: the row names the vendor but holds no readable token.
        let row = stored_sms(&app).await;
        assert!(row.contains("twilio") && !row.contains(TOKEN), "{row}");

        assert_eq!(app.get("/api/v1/settings/public", None).await.json["sign_in"]["phone"], true);
        assert_eq!(ask_code(&app, "+447700900300").await.status, StatusCode::ACCEPTED);
        let code = fake.wait_for_code_to("+447700900300").await;
        let signed = app.post("/api/v1/auth/phone/login", None, json!({"phone": "+447700900300", "code": code})).await;
        assert_eq!(signed.status, StatusCode::CREATED, "{}", signed.text);

        // Changing the sender without retyping the token keeps the stored one.
        let kept = app.put(SIGN_IN, Some(&root.access), twilio(&fake, None, "+15005550007")).await;
        assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
        assert_eq!(kept.json["sms"]["settings"]["from"], "+15005550007");
        assert_eq!(ask_code(&app, "+447700900301").await.status, StatusCode::ACCEPTED);
        fake.wait_for_code_to("+447700900301").await;
        assert!(fake.refused().is_empty(), "{:?}", fake.refused());

        // Bad settings: every problem named, in Chinese too, and nothing stored.
        for (body, needle) in [
            (json!({"sms": {"provider": "twilio", "settings": {"account_sid": ACCOUNT, "auth_token": "x", "endpoint": fake.base}}}), "from"),
            (json!({"sms": {"provider": "aliyun", "settings": {"access_key_id": "LTAI", "sign_name": "S", "template_code": "SMS_1"}}}), "access_key_secret"),
            (json!({"sms": {"provider": "twilio", "settings": {"account_sid": ACCOUNT, "auth_token": "x", "from": "+1", "colour": "red"}}}), "colour"),
        ] {
            let bad = app.send(app.client.put(app.url(SIGN_IN)).bearer_auth(&root.access).header("accept-language", "zh-CN").json(&body)).await;
            assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
            assert!(bad.text.contains(needle), "{needle}: {}", bad.text);
            assert!(bad.text.contains("短信"), "{}", bad.text);
        }
        let still = app.get(SIGN_IN, Some(&root.access)).await;
        assert_eq!(still.json["sms"]["settings"]["from"], "+15005550007");

        // Off, then back to the file's (none): phone sign-in answers 503.
        let off = app.put(SIGN_IN, Some(&root.access), json!({"sms": {"provider": null}})).await;
        assert_eq!(off.status, StatusCode::OK, "{}", off.text);
        assert!(off.json["sms"]["provider"].is_null());
        assert_eq!(off.json["sms"]["source"], "admin");
        assert_eq!(ask_code(&app, "+447700900302").await.error_code(), "sms_unavailable");
        let reset = app.put(SIGN_IN, Some(&root.access), json!({"reset": ["sign_in.sms"]})).await;
        assert_eq!(reset.json["sms"]["source"], "config");
        assert_eq!(reset.json["overridden"], json!([]));
    }

    async fn password_sign_in_turns_off_for_users_but_never_for_admins(backend) {
        let app = TestApp::spawn(backend).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        let off = app.put(SIGN_IN, Some(&root.access), json!({"password": false, "passkeys": false})).await;
        assert_eq!(off.status, StatusCode::OK, "{}", off.text);
        assert_eq!(off.json["values"]["password"], false);
        assert_eq!(off.json["defaults"]["password"], true);
        let public = app.get("/api/v1/settings/public", None).await;
        assert_eq!(public.json["sign_in"]["password"], false);
        assert_eq!(public.json["sign_in"]["passkeys"], false);

        let refused = app.send(app.client.post(app.url("/api/v1/auth/login")).header("accept-language", "zh-CN").json(&json!({"login": "ada", "password": PASSWORD}))).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert_eq!(refused.error_code(), "password_sign_in_disabled");
        assert!(refused.text.contains("密码登录"), "{}", refused.text);
        // A wrong password still says only "wrong" (nothing about the setting).
        let wrong = app.post("/api/v1/auth/login", None, json!({"login": "ada", "password": "not-her-password-1"})).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        // Root keeps password sign-in, so nobody locks the server.
        app.login("root", PASSWORD).await;
        // Registration with a password is off too.
        let join = app.post("/api/v1/auth/register", None, json!({"username": "bob", "password": PASSWORD})).await;
        assert_eq!(join.status, StatusCode::FORBIDDEN, "{}", join.text);
        assert_eq!(join.error_code(), "password_sign_in_disabled");
        // Ada's existing session still works; a reset brings passwords back.
        assert_eq!(app.get("/api/v1/user/profile", Some(&ada.access)).await.status, StatusCode::OK);
        app.put(SIGN_IN, Some(&root.access), json!({"reset": ["sign_in.password", "sign_in.passkeys"]})).await;
        app.login("ada", PASSWORD).await;

        // Verification needs mail, which this server has not: refused by field.
        let bad = app.put(SIGN_IN, Some(&root.access), json!({"verified_email_for_login": true, "reset": ["sign_in.nope"]})).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
        assert!(bad.text.contains("verified_email_for_login") && bad.text.contains("sign_in.nope"), "{}", bad.text);
    }
}

/// Two instances on one PostgreSQL database: the vendor an admin picks on one sends codes on
/// the other, without a restart (the bus carries the change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_vendor_chosen_on_one_instance_sends_on_the_other() {
    let fake = MockSms::twilio(ACCOUNT, ACCOUNT, TOKEN).await;
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.sibling().await;
    let root = a.root().await;
    let set = a
        .put(
            SIGN_IN,
            Some(&root.access),
            twilio(&fake, Some(TOKEN), "+15005550006"),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let mut phone = Value::Null;
    for _ in 0..100 {
        phone = b.get("/api/v1/settings/public", None).await.json["sign_in"]["phone"].clone();
        if phone == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(phone, true, "the other instance never heard of the change");
    assert_eq!(
        ask_code(&b, "+447700900310").await.status,
        StatusCode::ACCEPTED
    );
    fake.wait_for_code_to("+447700900310").await;
}

/// The new routes are in the OpenAPI document, with the admin ones behind the bearer scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_sign_in_settings_passkeys_and_ldap() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = app.get("/api/openapi.json", None).await;
    let paths = doc.json["paths"].as_object().unwrap();
    for path in [
        "/api/v1/admin/sign-in",
        "/api/v1/user/passkeys",
        "/api/v1/user/passkeys/options",
        "/api/v1/user/passkeys/{id}",
        "/api/v1/auth/passkey/options",
        "/api/v1/auth/passkey/login",
        "/api/v1/auth/login/2fa/passkey/options",
        "/api/v1/auth/login/2fa/passkey",
        "/api/v1/auth/ldap",
        "/api/v1/auth/ldap/login",
    ] {
        assert!(paths.contains_key(path), "{path} missing from OpenAPI");
    }
    let put = &paths["/api/v1/admin/sign-in"]["put"];
    assert!(put["security"][0]["bearer"].is_array(), "{put}");
    let schemas = &doc.json["components"]["schemas"];
    assert!(schemas["SignInUpdate"]["properties"]["sms"].is_object());
    assert!(
        schemas["SmsProviderKind"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("twilio"))
    );
}
