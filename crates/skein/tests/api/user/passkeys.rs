//! Passkeys (WebAuthn) through the HTTP API: a software authenticator with a real key made in
//! the test (P-256; RS256 from a fixture RSA key) answers the server's options as a browser
//! would, then adds the passkey, signs in without a password, and answers the second sign-in
//! step. Forged signatures, another origin or site, replayed challenges and answers, a counter
//! that goes back, and another account's passkey are refused.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_passkey::{SoftAuthenticator, cose_rsa};
use skein_testkit::{PASSWORD, Persona, TestApp, on_both_backends};

const ORIGIN: &str = "http://skein.test";

async fn with_public_url(backend: skein_testkit::Backend) -> TestApp {
    TestApp::spawn_with(backend, |c| c.oauth.public_url = Some(ORIGIN.into())).await
}

/// Adds a passkey for `who` through the API; answers the server's view of it.
async fn add(app: &TestApp, who: &Persona, key: &mut SoftAuthenticator) -> skein_testkit::Resp {
    let options = app
        .post(
            "/api/v1/user/passkeys/options",
            Some(&who.access),
            json!({}),
        )
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.text);
    let credential = key.create(&options.json);
    app.post(
        "/api/v1/user/passkeys",
        Some(&who.access),
        json!({"name": "Laptop", "credential": credential}),
    )
    .await
}

async fn sign_in_options(app: &TestApp) -> Value {
    let r = app
        .post("/api/v1/auth/passkey/options", None, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

async fn login(app: &TestApp, credential: &Value) -> skein_testkit::Resp {
    app.post(
        "/api/v1/auth/passkey/login",
        None,
        json!({ "credential": credential }),
    )
    .await
}

fn reason(r: &skein_testkit::Resp) -> String {
    r.json["error"]["details"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

on_both_backends! {
    async fn a_passkey_is_added_and_signs_in_without_a_password(backend) {
        let app = with_public_url(backend).await;
        app.root().await;
        let ada = app.register("ada").await;
        let mut key = SoftAuthenticator::new(ORIGIN);

        let options = app.post("/api/v1/user/passkeys/options", Some(&ada.access), json!({})).await;
        let pk = &options.json["publicKey"];
        assert_eq!(pk["rp"]["id"], "skein.test");
        assert_eq!(pk["attestation"], "none");
        assert_eq!(pk["pubKeyCredParams"][0]["alg"], -7);
        assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
        let credential = key.create(&options.json);
        let added = app.post("/api/v1/user/passkeys", Some(&ada.access), json!({"name": "Laptop", "credential": credential})).await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        assert_eq!(added.json["name"], "Laptop");
        assert_eq!(added.json["algorithm"], "ES256");
        // The same answer again: its challenge was used.
        let again = app.post("/api/v1/user/passkeys", Some(&ada.access), json!({"credential": credential})).await;
        assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", again.text);
        assert_eq!(again.error_code(), "passkey_invalid");
        // The same authenticator under a new challenge: already registered.
        let twice = add(&app, &ada, &mut key).await;
        assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.text);
        let listed = app.get("/api/v1/user/passkeys", Some(&ada.access)).await;
        assert_eq!(listed.json["items"].as_array().unwrap().len(), 1);
        assert_eq!(listed.json["enabled"], true);

        // Passwordless sign-in: discoverable, no username.
        let options = sign_in_options(&app).await;
        assert_eq!(options["publicKey"]["rpId"], "skein.test");
        assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
        let assertion = key.get(&options);
        let signed = login(&app, &assertion).await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
        assert_eq!(signed.json["user"]["id"], ada.id.as_str());
        let access = signed.json["access_token"].as_str().unwrap();
        assert_eq!(app.get("/api/v1/user/profile", Some(access)).await.status, StatusCode::OK);
        // Replayed: the challenge works once.
        let replay = login(&app, &assertion).await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.text);
        assert!(reason(&replay).contains("challenge"), "{}", replay.text);
        let used = app.get("/api/v1/user/passkeys", Some(&ada.access)).await;
        assert!(used.json["items"][0]["last_used_at"].is_string());

        // A password sign-in now asks for the passkey (or TOTP) next.
        let password = app.post("/api/v1/auth/login", None, json!({"login": "ada", "password": PASSWORD})).await;
        assert_eq!(password.json["two_factor_required"], true, "{}", password.text);
        assert_eq!(password.json["methods"], json!(["passkey"]));
        let challenge = password.json["challenge"].as_str().unwrap().to_string();
        let step = app.post("/api/v1/auth/login/2fa/passkey/options", None, json!({"challenge": challenge})).await;
        assert_eq!(step.status, StatusCode::OK, "{}", step.text);
        assert_eq!(step.json["publicKey"]["allowCredentials"][0]["id"], credential_id(&key));
        // A passwordless sign-in's options do not answer the second step (another purpose).
        let wrong_purpose = key.get(&sign_in_options(&app).await);
        let mixed = app.post("/api/v1/auth/login/2fa/passkey", None, json!({"challenge": challenge, "credential": wrong_purpose})).await;
        assert_eq!(mixed.status, StatusCode::UNAUTHORIZED, "{}", mixed.text);
        let answer = key.get(&step.json);
        let done = app.post("/api/v1/auth/login/2fa/passkey", None, json!({"challenge": challenge, "credential": answer})).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert_eq!(done.json["user"]["id"], ada.id.as_str());
        // The login step was used with it.
        let after = app.post("/api/v1/auth/login/2fa/passkey/options", None, json!({"challenge": challenge})).await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.text);

        // Another account cannot remove it (404), its owner can; then it signs nobody in.
        let bob = app.register("bob").await;
        let id = listed.json["items"][0]["id"].as_str().unwrap();
        let theirs = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/passkeys/{id}"), Some(&bob.access), None).await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND);
        let gone = app.call(reqwest::Method::DELETE, &format!("/api/v1/user/passkeys/{id}"), Some(&ada.access), None).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
        let orphan = login(&app, &key.get(&sign_in_options(&app).await)).await;
        assert_eq!(orphan.status, StatusCode::UNAUTHORIZED);
        assert!(reason(&orphan).contains("not registered"), "{}", orphan.text);
        app.login("ada", PASSWORD).await;
    }

    async fn forged_foreign_and_cloned_passkey_answers_are_refused(backend) {
        let app = with_public_url(backend).await;
        app.root().await;
        let ada = app.register("ada").await;
        let mut key = SoftAuthenticator::new(ORIGIN);
        assert_eq!(add(&app, &ada, &mut key).await.status, StatusCode::CREATED);

        // Registration from another origin, or for another site: refused.
        let mut phishing = SoftAuthenticator::new("http://skein.test.evil.example");
        let r = add(&app, &ada, &mut phishing).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(reason(&r).contains("origin"), "{}", r.text);
        let mut other_site = SoftAuthenticator::new(ORIGIN);
        other_site.rp_id_override = Some("evil.example".into());
        let r = add(&app, &ada, &mut other_site).await;
        assert!(reason(&r).contains("another site"), "{}", r.text);

        // A forged signature.
        key.forge = true;
        let r = login(&app, &key.get(&sign_in_options(&app).await)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.error_code(), "passkey_invalid");
        assert!(reason(&r).contains("signature"), "{}", r.text);
        key.forge = false;
        // Another origin at sign-in (a phishing page relaying the challenge).
        key.origin = "http://evil.example".into();
        let r = login(&app, &key.get(&sign_in_options(&app).await)).await;
        assert!(reason(&r).contains("origin"), "{}", r.text);
        key.origin = ORIGIN.into();
        // A good one.
        let ok = login(&app, &key.get(&sign_in_options(&app).await)).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        // The counter goes back: a cloned authenticator.
        key.sign_count = 1;
        let options = sign_in_options(&app).await;
        let cloned = app.send(app.client.post(app.url("/api/v1/auth/passkey/login")).header("accept-language", "zh-CN").json(&json!({"credential": key.get(&options)}))).await;
        assert_eq!(cloned.status, StatusCode::UNAUTHORIZED, "{}", cloned.text);
        assert!(reason(&cloned).contains("counter"), "{}", cloned.text);
        assert!(cloned.json["error"]["message"].as_str().unwrap().contains("通行密钥"), "{}", cloned.text);

        // Bob's passkey cannot answer Ada's second step.
        let bob = app.register("bob").await;
        let mut bobs = SoftAuthenticator::new(ORIGIN);
        assert_eq!(add(&app, &bob, &mut bobs).await.status, StatusCode::CREATED);
        let step1 = app.post("/api/v1/auth/login", None, json!({"login": "ada", "password": PASSWORD})).await;
        let challenge = step1.json["challenge"].as_str().unwrap().to_string();
        let options = app.post("/api/v1/auth/login/2fa/passkey/options", None, json!({"challenge": challenge})).await;
        let r = app.post("/api/v1/auth/login/2fa/passkey", None, json!({"challenge": challenge, "credential": bobs.get(&options.json)})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert!(reason(&r).contains("another account"), "{}", r.text);

        // Passkeys turned off by an admin: no passwordless sign-in, no new ones.
        let root = app.login("root", PASSWORD).await;
        let off = app.put("/api/v1/admin/sign-in", Some(&root.access), json!({"passkeys": false})).await;
        assert_eq!(off.status, StatusCode::OK, "{}", off.text);
        let r = app.post("/api/v1/auth/passkey/options", None, json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.error_code(), "passkeys_disabled");
        let r = app.post("/api/v1/user/passkeys/options", Some(&ada.access), json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    async fn an_rs256_passkey_signs_in(backend) {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs1v15::SigningKey;
        use rsa::signature::{SignatureEncoding, Signer};
        use rsa::traits::PublicKeyParts;
        // A 2048-bit fixture key: generating one in a debug build takes too long.
        let pem = include_str!("../billing/fixtures/alipay-platform-private.pem");
        let private = rsa::RsaPrivateKey::from_pkcs1_pem(pem).expect("the fixture RSA key");
        let cose = cose_rsa(&private.n().to_bytes_be(), &private.e().to_bytes_be());
        let signing = SigningKey::<sha2::Sha256>::new(private);
        let mut key = SoftAuthenticator::with_signer(ORIGIN, cose, Box::new(move |m| signing.sign(m).to_vec()));

        let app = with_public_url(backend).await;
        app.root().await;
        let ada = app.register("ada").await;
        let added = add(&app, &ada, &mut key).await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        assert_eq!(added.json["algorithm"], "RS256");
        let signed = login(&app, &key.get(&sign_in_options(&app).await)).await;
        assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
        assert_eq!(signed.json["user"]["id"], ada.id.as_str());
        key.forge = true;
        let forged = login(&app, &key.get(&sign_in_options(&app).await)).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.text);
    }
}

/// `key`'s credential id as the server's options name it (base64url).
fn credential_id(key: &SoftAuthenticator) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key.credential_id)
}
