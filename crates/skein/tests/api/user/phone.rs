//! Sign-up, sign-in and binding by SMS code, end to end: the real server sends through the
//! test kit's fakes of Aliyun SMS and Tencent Cloud SMS, which check each request's signature
//! as the vendors document it, and the tests type back the codes the fakes received.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use skein::config::Config;
use skein_core::secret::Secret;
use skein_testkit::mock_sms::MockSms;
use skein_testkit::{TestApp, on_both_backends};
use skein_user::sms::{AliyunSmsConfig, SmsProviderKind, TencentSmsConfig, TwilioSmsConfig};

const AK: &str = "LTAI-test-key";
const AK_SECRET: &str = "aliyun-secret-9c2";
const TC_ID: &str = "AKID-test-id";
const TC_KEY: &str = "tencent-key-5e8";
const TW_ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TW_TOKEN: &str = "twilio-token-41d";
const TW_KEY: &str = "SK0123456789abcdef0123456789abcdef";
const TW_KEY_SECRET: &str = "twilio-key-secret-7a0";
const TW_SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

fn with_aliyun(c: &mut Config, fake: &MockSms) {
    c.sms.provider = Some(SmsProviderKind::Aliyun);
    c.sms.resend_after_secs = 1;
    c.sms.aliyun = Some(AliyunSmsConfig {
        access_key_id: AK.into(),
        access_key_secret: Secret::new(AK_SECRET),
        sign_name: "Skein".into(),
        template_code: "SMS_100".into(),
        endpoint: fake.base.clone(),
    });
}

fn with_tencent(c: &mut Config, fake: &MockSms) {
    c.sms.provider = Some(SmsProviderKind::Tencent);
    c.sms.resend_after_secs = 1;
    c.sms.tencent = Some(TencentSmsConfig {
        secret_id: TC_ID.into(),
        secret_key: Secret::new(TC_KEY),
        sdk_app_id: "1400000001".into(),
        sign_name: "Skein".into(),
        template_id: "200".into(),
        region: "ap-guangzhou".into(),
        endpoint: fake.base.clone(),
    });
}

/// Twilio with the Account SID and Auth Token, sending from a number.
fn with_twilio(c: &mut Config, fake: &MockSms) {
    c.sms.provider = Some(SmsProviderKind::Twilio);
    c.sms.resend_after_secs = 1;
    c.sms.first_retry_ms = 20;
    c.sms.twilio = Some(TwilioSmsConfig {
        account_sid: TW_ACCOUNT.into(),
        api_key_sid: None,
        auth_token: Secret::new(TW_TOKEN),
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        brand: "Skein".into(),
        endpoint: fake.base.clone(),
    });
}

async fn ask_code(app: &TestApp, phone: &str) -> skein_testkit::Resp {
    app.post("/api/v1/auth/phone/code", None, json!({"phone": phone}))
        .await
}

async fn code_login(app: &TestApp, phone: &str, code: &str) -> skein_testkit::Resp {
    app.post(
        "/api/v1/auth/phone/login",
        None,
        json!({"phone": phone, "code": code}),
    )
    .await
}

/// A 6-digit code that is not `code`.
fn other_than(code: &str) -> String {
    if code == "000000" {
        "111111".into()
    } else {
        "000000".into()
    }
}

async fn past_resend_gap() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

on_both_backends! {
    async fn aliyun_sign_up_then_sign_in_by_code(backend) {
        let fake = MockSms::aliyun(AK, AK_SECRET).await;
        let app = TestApp::spawn_with(backend, |c| with_aliyun(c, &fake)).await;
        app.root().await;

        let sent = ask_code(&app, "+86 138-0013-8000").await;
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
        assert_eq!(sent.json["phone"], "+86*******8000");
        assert!(fake.refused().is_empty(), "signature refused: {:?}", fake.refused());
        // Aliyun takes mainland numbers without the country code.
        let code = fake.wait_for_code_to("13800138000").await;
        assert_eq!(code.len(), 6);
        assert!(!sent.text.contains(&code), "the code is never in the answer");

        let wrong = code_login(&app, "+8613800138000", &other_than(&code)).await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(wrong.error_code(), "invalid_code");
        let created = code_login(&app, "+8613800138000", &code).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        assert_eq!(created.json["user"]["phone"], "+8613800138000");
        assert_eq!(created.json["user"]["display_name"], "User 8000");
        let access = created.json["access_token"].as_str().unwrap().to_string();
        let me = app.get("/api/v1/user/profile", Some(&access)).await;
        assert_eq!(me.json["phone"], "+8613800138000");
        let replay = code_login(&app, "+8613800138000", &code).await;
        assert_eq!(replay.status, StatusCode::UNPROCESSABLE_ENTITY, "a code works once");

        // The same number signs in to the same account next time.
        past_resend_gap().await;
        assert_eq!(ask_code(&app, "+8613800138000").await.status, StatusCode::ACCEPTED);
        fake.wait_for_messages(2).await;
        let second = fake.last_code_to("13800138000").unwrap();
        let again = code_login(&app, "+8613800138000", &second).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        assert_eq!(again.json["user"]["id"], created.json["user"]["id"]);

        // The phone-only account cannot remove its only way in.
        let off = app.call(reqwest::Method::DELETE, "/api/v1/user/phone", Some(&access), None).await;
        assert_eq!(off.status, StatusCode::CONFLICT, "{}", off.text);
        assert_eq!(off.error_code(), "last_sign_in_method");
        assert!(fake.refused().is_empty(), "{:?}", fake.refused());
    }

    async fn tencent_binds_a_number_and_refuses_another_accounts(backend) {
        let fake = MockSms::tencent(TC_ID, TC_KEY).await;
        let app = TestApp::spawn_with(backend, |c| with_tencent(c, &fake)).await;
        app.root().await;
        let alice = app.register("alice").await;
        let bob = app.register("bob").await;

        let r = app.post("/api/v1/user/phone/code", Some(&alice.access), json!({"phone": "+8613900139000"})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        assert!(fake.refused().is_empty(), "signature refused: {:?}", fake.refused());
        // Tencent takes E.164.
        let code = fake.wait_for_code_to("+8613900139000").await;
        // A sign-in code is not a binding code, and the other way round.
        let as_login = code_login(&app, "+8613900139000", &code).await;
        assert_eq!(as_login.status, StatusCode::UNPROCESSABLE_ENTITY);
        let bound = app.put("/api/v1/user/phone", Some(&alice.access), json!({"phone": "+86 139 0013 9000", "code": code})).await;
        assert_eq!(bound.status, StatusCode::OK, "{}", bound.text);
        assert_eq!(bound.json["phone"], "+8613900139000");

        // Alice now signs in by code, to her account (with her password still working).
        past_resend_gap().await;
        assert_eq!(ask_code(&app, "+8613900139000").await.status, StatusCode::ACCEPTED);
        fake.wait_for_messages(2).await;
        let signed = code_login(&app, "+8613900139000", &fake.last_code_to("+8613900139000").unwrap()).await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
        assert_eq!(signed.json["user"]["id"], alice.id.as_str());

        // Bob proves he holds the number too, but it is Alice's: 409, nothing changes.
        past_resend_gap().await;
        let r = app.post("/api/v1/user/phone/code", Some(&bob.access), json!({"phone": "+8613900139000"})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        fake.wait_for_messages(3).await;
        let bobs = fake.last_code_to("+8613900139000").unwrap();
        // Alice cannot use the code Bob asked for.
        let stolen = app.put("/api/v1/user/phone", Some(&alice.access), json!({"phone": "+8613900139000", "code": bobs})).await;
        assert_eq!(stolen.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", stolen.text);
        let taken = app.put("/api/v1/user/phone", Some(&bob.access), json!({"phone": "+8613900139000", "code": bobs})).await;
        assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
        assert_eq!(taken.error_code(), "phone_taken");
        let bob_me = app.get("/api/v1/user/profile", Some(&bob.access)).await;
        assert!(bob_me.json["phone"].is_null());

        // The vendor refuses: the request was answered before the vendor (202), the refusal is
        // not retried, and nothing reaches the number.
        past_resend_gap().await;
        fake.fail_next("LimitExceeded.PhoneNumberDailyLimit");
        let before = fake.requests();
        let refused = app.send(app.client.post(app.url("/api/v1/auth/phone/code")).header("accept-language", "zh-CN").json(&json!({"phone": "+8613700137000"}))).await;
        assert_eq!(refused.status, StatusCode::ACCEPTED, "{}", refused.text);
        fake.wait_for_requests(before + 1).await;
        assert!(fake.last_code_to("+8613700137000").is_none());

        // Alice has a password, so she may remove the number; then it signs nobody in.
        let off = app.call(reqwest::Method::DELETE, "/api/v1/user/phone", Some(&alice.access), None).await;
        assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.text);
        let me = app.get("/api/v1/user/profile", Some(&alice.access)).await;
        assert!(me.json["phone"].is_null(), "{}", me.text);
    }

    async fn codes_are_attempt_limited_expire_and_sending_is_limited(backend) {
        let fake = MockSms::aliyun(AK, AK_SECRET).await;
        let app = TestApp::spawn_with(backend, |c| {
            with_aliyun(c, &fake);
            // Longer than the wrong tries below take on a loaded machine.
            c.sms.resend_after_secs = 3;
            c.sms.code_attempts = 3;
            c.sms.code_ttl_secs = 4;
            c.limits.sms_codes_per_phone_per_hour = 3;
        }).await;
        app.root().await;
        let phone = "+8613600136000";

        // Three wrong tries void the code: the right one is refused after them.
        assert_eq!(ask_code(&app, phone).await.status, StatusCode::ACCEPTED);
        let code = fake.wait_for_code_to("13600136000").await;
        for _ in 0..3 {
            assert_eq!(code_login(&app, phone, &other_than(&code)).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        }
        let late = code_login(&app, phone, &code).await;
        assert_eq!(late.status, StatusCode::UNPROCESSABLE_ENTITY, "void after 3 wrong tries: {}", late.text);

        // One code per number per resend_after_secs.
        let soon = ask_code(&app, phone).await;
        assert_eq!(soon.status, StatusCode::TOO_MANY_REQUESTS, "{}", soon.text);
        assert_eq!(soon.error_code(), "code_sent_recently");
        assert!(soon.header("retry-after").is_some());

        // A newer code voids the older one, even before it expires.
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert_eq!(ask_code(&app, phone).await.status, StatusCode::ACCEPTED);
        fake.wait_for_messages(2).await;
        let older = fake.last_code_to("13600136000").unwrap();
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert_eq!(ask_code(&app, phone).await.status, StatusCode::ACCEPTED);
        fake.wait_for_messages(3).await;
        let newer = fake.last_code_to("13600136000").unwrap();
        if older != newer {
            let voided = code_login(&app, phone, &older).await;
            assert_eq!(voided.status, StatusCode::UNPROCESSABLE_ENTITY, "the older code is void: {}", voided.text);
        }
        let ok = code_login(&app, phone, &newer).await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);

        // The number's hour is used up (3 codes): the fourth is refused, in Chinese too.
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let fourth = app.send(app.client.post(app.url("/api/v1/auth/phone/code")).header("accept-language", "zh-CN").json(&json!({"phone": phone}))).await;
        assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS, "{}", fourth.text);
        assert_eq!(fourth.error_code(), "too_many_codes");
        assert!(fourth.json["error"]["message"].as_str().unwrap().contains("验证码"), "{}", fourth.text);
        assert_eq!(fake.sent().len(), 3, "nothing sent past the limit");

        // A code expires (code_ttl_secs = 4).
        assert_eq!(ask_code(&app, "+8613600136001").await.status, StatusCode::ACCEPTED);
        let code = fake.wait_for_code_to("13600136001").await;
        tokio::time::sleep(Duration::from_millis(4100)).await;
        assert_eq!(code_login(&app, "+8613600136001", &code).await.status, StatusCode::UNPROCESSABLE_ENTITY, "expired");

        // Not E.164: 422 naming the field, in both languages, and nothing sent.
        for lang in ["en", "zh-CN"] {
            let bad = app.send(app.client.post(app.url("/api/v1/auth/phone/code")).header("accept-language", lang).json(&json!({"phone": "13800138000"}))).await;
            assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
            assert_eq!(bad.json["error"]["details"]["field"], "phone", "{}", bad.text);
        }
        assert_eq!(fake.sent().len(), 4);

        // Per address: a small budget across numbers.
        let fake2 = MockSms::aliyun(AK, AK_SECRET).await;
        let small = TestApp::spawn_with(backend, |c| {
            with_aliyun(c, &fake2);
            c.limits.sms_codes_per_ip_per_hour = 2;
        }).await;
        assert_eq!(ask_code(&small, "+8613500135001").await.status, StatusCode::ACCEPTED);
        assert_eq!(ask_code(&small, "+8613500135002").await.status, StatusCode::ACCEPTED);
        let third = ask_code(&small, "+8613500135003").await;
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{}", third.text);
        assert!(third.header("retry-after").is_some());
        fake2.wait_for_messages(2).await;
        assert_eq!(fake2.sent().len(), 2);
    }

    async fn phone_sign_up_follows_the_registration_policy(backend) {
        let fake = MockSms::tencent(TC_ID, TC_KEY).await;
        let app = TestApp::spawn_with(backend, |c| {
            with_tencent(c, &fake);
            c.registration.invite_required = true;
        }).await;
        // No account yet: a code does not make the first (root) account.
        assert_eq!(ask_code(&app, "+447700900123").await.status, StatusCode::ACCEPTED);
        let code = fake.wait_for_code_to("+447700900123").await;
        let early = code_login(&app, "+447700900123", &code).await;
        assert_eq!(early.status, StatusCode::FORBIDDEN, "{}", early.text);
        assert_eq!(early.error_code(), "setup_required");

        let root = app.root().await;
        let no_invite = code_login(&app, "+447700900123", &code).await;
        assert_eq!(no_invite.error_code(), "invite_code_required", "{}", no_invite.text);
        let bad_invite = app.post("/api/v1/auth/phone/login", None, json!({"phone": "+447700900123", "code": code, "invite_code": "NOPE-NOPE"})).await;
        assert_eq!(bad_invite.error_code(), "invalid_invite_code", "{}", bad_invite.text);
        let made = app.post("/api/v1/admin/invite-codes", Some(&root.access), json!({"count": 1})).await;
        assert!(made.status.is_success(), "{}", made.text);
        let invite = made.json["items"][0]["code"].as_str().or(made.json[0]["code"].as_str()).unwrap().to_string();
        // Refusals kept the code (each took a try); the right invite signs up.
        let joined = app.post("/api/v1/auth/phone/login", None, json!({"phone": "+447700900123", "code": code, "invite_code": invite, "display_name": "Pat"})).await;
        assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.text);
        assert_eq!(joined.json["user"]["display_name"], "Pat");
        assert_eq!(joined.json["user"]["invited_by"], root.id.as_str());

        // The mode an admin sets at run time (Admin → System) rules phone sign-up too.
        let closed = app.put("/api/v1/admin/settings", Some(&root.access), json!({"registration_mode": "closed"})).await;
        assert!(closed.status.is_success(), "{}", closed.text);
        assert_eq!(ask_code(&app, "+447700900124").await.status, StatusCode::ACCEPTED);
        let late = fake.wait_for_code_to("+447700900124").await;
        let refused = app.post("/api/v1/auth/phone/login", None, json!({"phone": "+447700900124", "code": late, "invite_code": invite})).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert_eq!(refused.error_code(), "registration_closed");

        // Without [sms], the routes say so.
        assert_eq!(app.get("/api/v1/auth/phone", None).await.json["enabled"], true);
        let off = TestApp::spawn(backend).await;
        assert_eq!(off.get("/api/v1/auth/phone", None).await.json["enabled"], false);
        let r = ask_code(&off, "+447700900123").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.error_code(), "sms_unavailable");
    }

    async fn twilio_sends_codes_with_basic_auth_or_an_api_key(backend) {
        let fake = MockSms::twilio(TW_ACCOUNT, TW_ACCOUNT, TW_TOKEN).await;
        let app = TestApp::spawn_with(backend, |c| with_twilio(c, &fake)).await;
        app.root().await;
        let sent = app.send(app.client.post(app.url("/api/v1/auth/phone/code")).header("accept-language", "zh-CN").json(&json!({"phone": "+44 7700 900123"}))).await;
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
        // Twilio takes E.164; the fake checked Basic auth, the URL's Account SID and the form.
        let code = fake.wait_for_code_to("+447700900123").await;
        assert!(fake.refused().is_empty(), "{:?}", fake.refused());
        let created = code_login(&app, "+447700900123", &code).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);

        // An API key (SK... and its secret) and a Messaging Service instead of a number.
        let keyed = MockSms::twilio(TW_ACCOUNT, TW_KEY, TW_KEY_SECRET).await;
        let app2 = TestApp::spawn_with(backend, |c| {
            with_twilio(c, &keyed);
            if let Some(t) = c.sms.twilio.as_mut() {
                t.api_key_sid = Some(TW_KEY.into());
                t.auth_token = Secret::new(TW_KEY_SECRET);
                t.from = None;
                t.messaging_service_sid = Some(TW_SERVICE.into());
            }
        }).await;
        app2.root().await;
        assert_eq!(ask_code(&app2, "+14155550100").await.status, StatusCode::ACCEPTED);
        let code = keyed.wait_for_code_to("+14155550100").await;
        assert_eq!(code_login(&app2, "+14155550100", &code).await.status, StatusCode::CREATED);

        // A wrong Auth Token: Twilio's 401 (20003) is a refusal, not retried; nothing arrives.
        let strict = MockSms::twilio(TW_ACCOUNT, TW_ACCOUNT, "another-token").await;
        let app3 = TestApp::spawn_with(backend, |c| {
            with_twilio(c, &strict);
            c.sms.max_attempts = 5;
        }).await;
        app3.root().await;
        assert_eq!(ask_code(&app3, "+14155550101").await.status, StatusCode::ACCEPTED);
        strict.wait_for_requests(1).await;
        assert!(strict.sent().is_empty());
        assert!(strict.refused()[0].starts_with("20003"), "{:?}", strict.refused());
        // The secret never shows in the answer to the admin's settings or anywhere public.
        let state = app3.get("/api/v1/auth/phone", None).await;
        assert_eq!(state.json["enabled"], true);
        assert!(!state.text.contains("another-token") && !state.text.contains(TW_TOKEN));
    }

    async fn a_slow_or_failing_sms_vendor_never_slows_the_request(backend) {
        let fake = MockSms::twilio(TW_ACCOUNT, TW_ACCOUNT, TW_TOKEN).await;
        let app = TestApp::spawn_with(backend, |c| {
            with_twilio(c, &fake);
            c.sms.queue_capacity = 1;
        }).await;
        app.root().await;

        // The vendor holds every request: the answer still comes, before the vendor's.
        fake.hold();
        let sent = ask_code(&app, "+447700900200").await;
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
        fake.wait_for_requests(1).await;
        assert!(fake.sent().is_empty(), "the vendor has not answered yet");
        // The queue is bounded (1 here): a second message while the first waits is refused at
        // once, in both languages, and its code is void.
        let busy = app.send(app.client.post(app.url("/api/v1/auth/phone/code")).header("accept-language", "zh-CN").json(&json!({"phone": "+447700900201"}))).await;
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE, "{}", busy.text);
        assert_eq!(busy.error_code(), "sms_busy");
        assert!(busy.json["error"]["message"].as_str().unwrap().contains("短信"), "{}", busy.text);
        assert!(busy.header("retry-after").is_some());
        fake.release();
        let code = fake.wait_for_code_to("+447700900200").await;
        assert_eq!(code_login(&app, "+447700900200", &code).await.status, StatusCode::CREATED);

        // The vendor fails twice ("try later"), then accepts: the code arrives on the third
        // try and signs in.
        let flaky = MockSms::twilio(TW_ACCOUNT, TW_ACCOUNT, TW_TOKEN).await;
        let app = TestApp::spawn_with(backend, |c| with_twilio(c, &flaky)).await;
        app.root().await;
        flaky.fail_transiently(2);
        assert_eq!(ask_code(&app, "+447700900202").await.status, StatusCode::ACCEPTED);
        let code = flaky.wait_for_code_to("+447700900202").await;
        assert_eq!(flaky.requests(), 3, "two failures, then the message");
        let signed = code_login(&app, "+447700900202", &code).await;
        assert_eq!(signed.status, StatusCode::CREATED, "{}", signed.text);
    }
}
