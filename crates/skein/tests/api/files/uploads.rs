//! Upload sessions end to end (a large file in parts, resumed after a dropped connection,
//! checked at completion like any upload) on SQLite and PostgreSQL over the disk, and over the
//! real S3 server `scripts/test` starts (s3s-fs, SigV4 checked) with presigned part URLs and
//! presigned download redirects.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use skein::config::Config;
use skein_testkit::{Backend, Persona, Resp, TestApp, on_both_backends};

const MIB: usize = 1024 * 1024;

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { count_files(&path) } else { 1 }
        })
        .sum()
}

/// Files in a folder of the disk store (`objects`, `tmp`, `uploads`).
fn stored(app: &TestApp, folder: &str) -> usize {
    count_files(&app.config.data_dir.join("files").join(folder))
}

/// Text of `len` bytes that is not the same in every part.
fn text(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i / 7 + usize::from(seed)) % 26) as u8)
        .collect()
}

async fn put_part(app: &TestApp, who: &Persona, id: &str, n: u32, bytes: &[u8]) -> Resp {
    app.send(
        app.client
            .put(app.url(&format!("/api/v1/files/uploads/{id}/parts/{n}")))
            .bearer_auth(&who.access)
            .body(bytes.to_vec()),
    )
    .await
}

async fn files_app(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.file.sweep_interval_secs = 1;
        configure(c);
    })
    .await
}

/// Waits (up to 10 s) until `check` holds.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..50 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check()
}

on_both_backends! {
    async fn a_session_resumes_after_a_dropped_part_and_completes_into_one_file(backend) {
        let app = files_app(backend, |_| {}).await;
        let alice = app.register("alice").await;
        let eve = app.register("eve").await;
        let content = text(2 * MIB + 300_000, 0);
        let r = app
            .post("/api/v1/files/uploads", Some(&alice.access),
                json!({ "name": "../大 report.txt", "purpose": "knowledge", "size": content.len(), "part_size": MIB }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["part_count"], 3);
        assert_eq!(r.json["part_size"], MIB);
        assert_eq!(r.json["name"], "大 report.txt");
        assert_eq!(r.json["direct"], false, "the disk store takes parts through the server");
        let id = r.json["id"].as_str().unwrap().to_string();

        let urls = app.post(&format!("/api/v1/files/uploads/{id}/part-urls"), Some(&alice.access), json!({ "parts": [1, 2, 3] })).await;
        assert_eq!(urls.status, StatusCode::OK, "{}", urls.text);
        assert_eq!(urls.json[2]["url"], format!("/api/v1/files/uploads/{id}/parts/3"));
        assert_eq!(urls.json[2]["method"], "PUT");
        let bad = app.post(&format!("/api/v1/files/uploads/{id}/part-urls"), Some(&alice.access), json!({ "parts": [4] })).await;
        assert_eq!(bad.error_code(), "invalid_part_number");

        // Part 2 arrives; part 1 is cut short (the wrong size) and is not kept.
        let r = put_part(&app, &alice, &id, 2, &content[MIB..2 * MIB]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = put_part(&app, &alice, &id, 1, &content[..1000]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.error_code(), "part_size_mismatch");
        let r = put_part(&app, &alice, &id, 1, &[content.as_slice(), b"extra"].concat()[..MIB + 5]).await;
        assert_eq!(r.error_code(), "part_size_mismatch", "a part longer than its size is refused too");

        // Part 3's connection drops halfway: nothing of it stays.
        {
            use tokio::io::AsyncWriteExt;
            let address = app.base.trim_start_matches("http://").to_string();
            let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
            let part = &content[2 * MIB..];
            let head = format!(
                "PUT /api/v1/files/uploads/{id}/parts/3 HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
                alice.access,
                part.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(&part[..part.len() / 2]).await.unwrap();
            socket.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let session = app.get(&format!("/api/v1/files/uploads/{id}"), Some(&alice.access)).await;
        assert_eq!(session.status, StatusCode::OK, "{}", session.text);
        let parts = session.json["parts"].as_array().unwrap();
        let whole: Vec<u64> = parts.iter().filter(|p| p["complete"] == true).map(|p| p["number"].as_u64().unwrap()).collect();
        assert_eq!(whole, vec![2], "only part 2 is whole: {}", session.text);

        // Completing now names what is missing, and leaves the session open to resume.
        let r = app.post(&format!("/api/v1/files/uploads/{id}/complete"), Some(&alice.access), json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.error_code(), "upload_incomplete");
        assert_eq!(r.json["error"]["details"]["missing_parts"], json!([1, 3]));

        // Another user sees no session.
        assert_eq!(app.get(&format!("/api/v1/files/uploads/{id}"), Some(&eve.access)).await.error_code(), "upload_not_found");
        assert_eq!(put_part(&app, &eve, &id, 1, &content[..MIB]).await.status, StatusCode::NOT_FOUND);
        let r = app.post(&format!("/api/v1/files/uploads/{id}/complete"), Some(&eve.access), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let listed = app.get("/api/v1/files/uploads", Some(&eve.access)).await;
        assert_eq!(listed.json, json!([]));
        let listed = app.get("/api/v1/files/uploads", Some(&alice.access)).await;
        assert_eq!(listed.json[0]["id"], id.as_str());

        // Resume: send what is missing, complete.
        assert_eq!(put_part(&app, &alice, &id, 1, &content[..MIB]).await.status, StatusCode::OK);
        assert_eq!(put_part(&app, &alice, &id, 3, &content[2 * MIB..]).await.status, StatusCode::OK);
        let done = app.post(&format!("/api/v1/files/uploads/{id}/complete"), Some(&alice.access), json!({})).await;
        assert_eq!(done.status, StatusCode::CREATED, "{}", done.text);
        assert_eq!(done.json["size"], content.len());
        assert_eq!(done.json["content_type"], "text/plain", "sniffed from the content");
        assert_eq!(done.json["name"], "大 report.txt");
        assert_eq!(done.json["sha256"], format!("{:x}", Sha256::digest(&content)));
        let file_id = done.json["id"].as_str().unwrap().to_string();
        let body = app.client.get(app.url(&format!("/api/v1/files/{file_id}/content"))).bearer_auth(&alice.access).send().await.unwrap();
        assert_eq!(body.bytes().await.unwrap().as_ref(), content.as_slice());
        assert_eq!(app.get(&format!("/api/v1/files/uploads/{id}"), Some(&alice.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(stored(&app, "uploads"), 0, "the parts are gone");
        assert_eq!(stored(&app, "tmp"), 0);
        let usage = app.get("/api/v1/files/usage", Some(&alice.access)).await;
        assert_eq!(usage.json["used_bytes"], content.len());

        // The same content again through a session: a second file, one stored object.
        let r = app
            .post("/api/v1/files/uploads", Some(&alice.access),
                json!({ "name": "again.txt", "purpose": "chat", "size": content.len(), "part_size": 2 * MIB }))
            .await;
        let again = r.json["id"].as_str().unwrap().to_string();
        assert_eq!(put_part(&app, &alice, &again, 1, &content[..2 * MIB]).await.status, StatusCode::OK);
        assert_eq!(put_part(&app, &alice, &again, 2, &content[2 * MIB..]).await.status, StatusCode::OK);
        let r = app.post(&format!("/api/v1/files/uploads/{again}/complete"), Some(&alice.access), json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_ne!(r.json["id"], file_id.as_str());
        assert_eq!(stored(&app, "objects"), 1, "deduplicated");

        // Abort: the parts go at once.
        let r = app
            .post("/api/v1/files/uploads", Some(&alice.access),
                json!({ "name": "dropped.txt", "purpose": "chat", "size": 3 * MIB }))
            .await;
        let dropped = r.json["id"].as_str().unwrap().to_string();
        assert_eq!(r.json["part_count"], 1, "the default part size is 8 MiB");
        assert_eq!(put_part(&app, &alice, &dropped, 1, &text(3 * MIB, 1)).await.status, StatusCode::OK);
        assert_eq!(stored(&app, "uploads"), 1);
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/files/uploads/{dropped}"), Some(&alice.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(stored(&app, "uploads"), 0);
        assert_eq!(put_part(&app, &alice, &dropped, 1, b"x").await.error_code(), "upload_not_found");
    }

    async fn a_session_is_held_to_limits_type_and_quota_and_expires(backend) {
        let app = files_app(backend, |c| {
            c.file.quota_bytes = 5 * MIB as u64;
            c.file.avatar_max_bytes = 3 * MIB as u64;
            c.file.max_open_uploads = 2;
        })
        .await;
        let alice = app.register("alice").await;
        let create = |body: serde_json::Value| {
            let app = &app;
            let token = alice.access.clone();
            async move { app.post("/api/v1/files/uploads", Some(&token), body).await }
        };
        let r = create(json!({ "name": "a.png", "purpose": "avatar", "size": 4 * MIB })).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.error_code(), "file_too_large");
        let r = create(json!({ "name": "a.bin", "purpose": "knowledge", "size": 6 * MIB })).await;
        assert_eq!(r.error_code(), "quota_exceeded");
        let r = create(json!({ "name": "a.txt", "purpose": "chat", "size": 0 })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = create(json!({ "name": "a.txt", "purpose": "chat", "size": 10, "part_size": 1000 })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json["error"]["details"]["field"], "part_size", "{}", r.text);
        let r = create(json!({ "name": "a.txt", "purpose": "wallpaper", "size": 10 })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        // A ZIP sent as an avatar is refused at completion, and nothing is kept as a file.
        let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
        zip.resize(MIB + 10, 7);
        let r = create(json!({ "name": "cat.png", "purpose": "avatar", "size": zip.len(), "part_size": MIB })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        assert_eq!(put_part(&app, &alice, &id, 1, &zip[..MIB]).await.status, StatusCode::OK);
        assert_eq!(put_part(&app, &alice, &id, 2, &zip[MIB..]).await.status, StatusCode::OK);
        let r = app.post(&format!("/api/v1/files/uploads/{id}/complete"), Some(&alice.access), json!({})).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
        assert_eq!(r.error_code(), "unsupported_file_type");
        assert_eq!(stored(&app, "objects"), 0);
        assert_eq!(stored(&app, "tmp"), 0);
        assert_eq!(app.get("/api/v1/files", Some(&alice.access)).await.json["total"], 0);
        let session = app.get(&format!("/api/v1/files/uploads/{id}"), Some(&alice.access)).await;
        assert_eq!(session.json["state"], "open", "still open: abort or send other parts");

        // Two sessions open is the limit here.
        let r = create(json!({ "name": "b.txt", "purpose": "chat", "size": 100 })).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let second = r.json["id"].as_str().unwrap().to_string();
        assert_eq!(put_part(&app, &alice, &second, 1, &text(100, 2)).await.status, StatusCode::OK);
        let r = create(json!({ "name": "c.txt", "purpose": "chat", "size": 100 })).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.error_code(), "too_many_uploads");

        // Past its expiry a session is gone, and the sweeper takes its parts.
        let db = skein_db::Db::connect(&app.config.database_url(), 1).await.unwrap();
        skein_db::sqlx::query("UPDATE file_uploads SET expires_at = 1 WHERE id = $1")
            .bind(&second)
            .execute(db.pool())
            .await
            .unwrap();
        skein_db::sqlx::query("UPDATE file_sweep SET due_at = 1 WHERE storage_key = $1")
            .bind(format!("uploads/{second}/"))
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(app.get(&format!("/api/v1/files/uploads/{second}"), Some(&alice.access)).await.error_code(), "upload_not_found");
        let dir = app.config.data_dir.join("files").join("uploads").join(&second);
        assert!(eventually(|| count_files(&dir) == 0).await, "the expired session's parts were swept");
        assert_eq!(stored(&app, "uploads"), 2, "the open session's two parts stay");
    }
}

/// The S3 server `scripts/test` starts (s3s-fs, which checks SigV4 signatures).
fn s3_url() -> Option<String> {
    std::env::var("SKEIN_TEST_S3_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The URL with one hex digit of its `X-Amz-Signature` changed (still well-formed).
fn forge(url: &str) -> String {
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut bytes = url.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

fn s3_config(c: &mut Config, endpoint: &str) {
    c.file.storage = skein_file::StorageKind::S3;
    c.file.sweep_interval_secs = 1;
    c.file.s3 = skein_file::S3Config {
        endpoint: endpoint.to_string(),
        region: "us-east-1".into(),
        bucket: "skein-test".into(),
        access_key_id: "skeintest".into(),
        secret_access_key: Some(skein_core::secret::Secret::new("skeintest-secret-key")),
        root: format!("t-{}", uuid::Uuid::now_v7().simple()),
        ..skein_file::S3Config::default()
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_session_parts_go_straight_to_the_store_through_presigned_urls() {
    let Some(endpoint) = s3_url() else {
        eprintln!(
            "SKEIN_TEST_S3_URL is not set: the S3 store is not tested (scripts/test sets it)"
        );
        return;
    };
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        s3_config(c, &endpoint);
        c.file.s3.presign_uploads = true;
    })
    .await;
    let alice = app.register("alice").await;
    let content = text(MIB + MIB / 2, 3);
    let r = app
        .post(
            "/api/v1/files/uploads",
            Some(&alice.access),
            json!({ "name": "direct.txt", "purpose": "chat", "size": content.len(), "part_size": MIB }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["direct"], true);
    let id = r.json["id"].as_str().unwrap().to_string();
    let urls = app
        .post(
            &format!("/api/v1/files/uploads/{id}/part-urls"),
            Some(&alice.access),
            json!({ "parts": [1, 2] }),
        )
        .await;
    assert_eq!(urls.status, StatusCode::OK, "{}", urls.text);
    // A fresh connection per request: the store answers the forged PUT below before reading
    // its body and then drops the connection, which a pooled client would reuse for the next
    // PUT (seen once as `IncompleteMessage`).
    let plain = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let pieces = [&content[..MIB], &content[MIB..]];
    for (i, piece) in pieces.iter().enumerate() {
        let target = &urls.json[i];
        assert_eq!(target["direct"], true);
        let url = target["url"].as_str().unwrap();
        assert!(url.starts_with(&endpoint), "{url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        assert_eq!(target["method"], "PUT");
        if i == 0 {
            // A tampered signature is refused by the store itself.
            let forged = forge(url);
            let r = plain
                .put(&forged)
                .body(piece.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "the store checks the signature"
            );
        }
        // Straight to the store, with no Skein credentials at all.
        let r = plain.put(url).body(piece.to_vec()).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let session = app
        .get(&format!("/api/v1/files/uploads/{id}"), Some(&alice.access))
        .await;
    assert_eq!(
        session.json["parts"][0]["complete"], true,
        "{}",
        session.text
    );
    assert_eq!(session.json["parts"][1]["size"], MIB / 2);
    let done = app
        .post(
            &format!("/api/v1/files/uploads/{id}/complete"),
            Some(&alice.access),
            json!({}),
        )
        .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.text);
    assert_eq!(
        done.json["sha256"],
        format!("{:x}", Sha256::digest(&content))
    );
    let file_id = done.json["id"].as_str().unwrap();
    let body = app
        .client
        .get(app.url(&format!("/api/v1/files/{file_id}/content")))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(body.bytes().await.unwrap().as_ref(), content.as_slice());
    if let Ok(dir) = std::env::var("SKEIN_TEST_S3_DIR") {
        let root = Path::new(&dir)
            .join("skein-test")
            .join(&app.config.file.s3.root);
        assert!(
            eventually(|| count_files(&root.join("uploads")) == 0).await,
            "the parts left the store"
        );
        assert_eq!(count_files(&root.join("objects")), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_downloads_redirect_to_presigned_urls_when_asked() {
    let Some(endpoint) = s3_url() else {
        eprintln!(
            "SKEIN_TEST_S3_URL is not set: the S3 store is not tested (scripts/test sets it)"
        );
        return;
    };
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        s3_config(c, &endpoint);
        c.file.s3.presign_downloads = true;
    })
    .await;
    let alice = app.register("alice").await;
    let content = text(100_000, 4);
    let boundary = "skein-redirect-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nchat\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"笔记.txt\"\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&content);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/files"))
                .bearer_auth(&alice.access)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(form),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(app.url(&format!("/api/v1/files/{id}/content")))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&endpoint), "{location}");
    assert!(
        location.contains("response-content-disposition=") && location.contains("X-Amz-Signature="),
        "{location}"
    );
    // The store answers the presigned URL, ranges included, with no credentials of ours.
    let plain = reqwest::Client::new();
    let whole = plain.get(&location).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), content.as_slice());
    let part = plain
        .get(&location)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &content[10..20]);
    let forged = forge(&location);
    assert_eq!(
        plain.get(&forged).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Owners only: another user still gets a 404, not a redirect.
    let eve = app.register("eve").await;
    let r = no_follow
        .get(app.url(&format!("/api/v1/files/{id}/content")))
        .bearer_auth(&eve.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The default client follows the redirect: what a browser sees.
    let followed = app
        .client
        .get(app.url(&format!("/api/v1/files/{id}/content")))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.bytes().await.unwrap().as_ref(), content.as_slice());
}

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../skein-knowledge/tests/data/fixtures"
);

/// Uploads `content` through a one-part session (the form upload is tested in `files`).
async fn stored_file(
    app: &TestApp,
    who: &Persona,
    name: &str,
    purpose: &str,
    content: &[u8],
) -> String {
    let r = app
        .post(
            "/api/v1/files/uploads",
            Some(&who.access),
            json!({ "name": name, "purpose": purpose, "size": content.len() }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(
        put_part(app, who, &id, 1, content).await.status,
        StatusCode::OK
    );
    let r = app
        .post(
            &format!("/api/v1/files/uploads/{id}/complete"),
            Some(&who.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

on_both_backends! {
    async fn office_documents_and_epubs_preview_their_text(backend) {
        let app = files_app(backend, |c| c.file.preview_max_bytes = 40).await;
        let alice = app.register("alice").await;
        let read = |name: &str| std::fs::read(format!("{FIXTURES}/{name}")).unwrap();
        let docx = stored_file(&app, &alice, "travel.docx", "knowledge", &read("sample.docx")).await;
        let r = app.get(&format!("/api/v1/files/{docx}/preview"), Some(&alice.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["kind"], "document");
        assert_eq!(r.json["content_type"], "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
        let text = r.json["text"].as_str().unwrap();
        assert!(text.starts_with("Travel Policy"), "{text}");
        assert!(text.len() <= 40, "capped at file.preview_max_bytes: {}", text.len());
        assert_eq!(r.json["truncated"], true);

        for (name, words) in [("sample.pptx", "季度回顾"), ("sample.epub", "One")] {
            let id = stored_file(&app, &alice, name, "knowledge", &read(name)).await;
            let r = app.get(&format!("/api/v1/files/{id}/preview"), Some(&alice.access)).await;
            assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
            assert_eq!(r.json["kind"], "document");
            assert!(r.json["text"].as_str().unwrap().contains(words), "{name}: {}", r.text);
        }
        // A zip bomb dressed as a Word document stops at the extraction limits: a clear 422.
        let bomb = stored_file(&app, &alice, "bomb.docx", "knowledge", &read("bomb.docx")).await;
        let r = app.get(&format!("/api/v1/files/{bomb}/preview"), Some(&alice.access)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.error_code(), "no_preview");
    }
}

/// An animated GIF of `frames` frames, 60×40.
fn gif(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        let frames = (0..frames).map(|i| {
            let img =
                image::RgbaImage::from_pixel(60, 40, image::Rgba([(i * 40) as u8, 90, 200, 255]));
            image::Frame::new(img)
        });
        encoder.encode_frames(frames).unwrap();
    }
    out
}

async fn form_upload(app: &TestApp, who: &Persona, name: &str, content: &[u8]) -> String {
    let boundary = "skein-image-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nchat\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/files"))
                .bearer_auth(&who.access)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Polls the file until its variants are ready (up to 10 s); whether they became ready.
async fn variants_ready(app: &TestApp, who: &Persona, id: &str) -> bool {
    for _ in 0..50 {
        let meta = app
            .get(&format!("/api/v1/files/{id}"), Some(&who.access))
            .await;
        if meta.json["variants_ready"] == true {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

on_both_backends! {
    async fn webp_variants_keep_transparency_and_animations_over_the_frame_limit_get_none(backend) {
        let app = files_app(backend, |c| {
            c.file.image_format = skein_file::ImageFormat::Webp;
            c.file.image_max_frames = 3;
        })
        .await;
        let alice = app.register("alice").await;
        let png = {
            let img = image::RgbaImage::from_fn(800, 400, |x, _| image::Rgba([200, 30, 30, if x < 400 { 0 } else { 255 }]));
            let mut out = Vec::new();
            image::DynamicImage::ImageRgba8(img)
                .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
                .unwrap();
            out
        };
        let id = form_upload(&app, &alice, "half clear.png", &png).await;
        assert!(variants_ready(&app, &alice, &id).await);
        let thumb = app.client.get(app.url(&format!("/api/v1/files/{id}/content?variant=thumb"))).bearer_auth(&alice.access).send().await.unwrap();
        assert_eq!(thumb.headers()["content-type"], "image/webp");
        let disposition = thumb.headers()["content-disposition"].to_str().unwrap().to_string();
        assert!(disposition.contains(".thumb.webp"), "{disposition}");
        let decoded = image::load_from_memory_with_format(&thumb.bytes().await.unwrap(), image::ImageFormat::WebP).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (320, 160));
        let rgba = decoded.to_rgba8();
        assert_eq!(rgba.get_pixel(10, 80)[3], 0, "the clear half stays clear");
        assert_eq!(rgba.get_pixel(310, 80)[3], 255);

        // Three frames is within the limit; five is not, and the original is still kept.
        let three = form_upload(&app, &alice, "three.gif", &gif(3)).await;
        assert!(variants_ready(&app, &alice, &three).await, "a 3-frame GIF gets variants");
        let five = form_upload(&app, &alice, "five.gif", &gif(5)).await;
        assert!(!variants_ready(&app, &alice, &five).await, "a 5-frame GIF gets none");
        let original = app.client.get(app.url(&format!("/api/v1/files/{five}/content?variant=thumb"))).bearer_auth(&alice.access).send().await.unwrap();
        assert_eq!(original.headers()["content-type"], "image/gif", "the thumbnail falls back to the original");
        assert_eq!(original.bytes().await.unwrap().as_ref(), gif(5).as_slice());
    }
}

on_both_backends! {
    async fn a_skein_export_with_images_imports_them_as_files(backend) {
        use base64::Engine;
        let app = files_app(backend, |_| {}).await;
        let alice = app.register("alice").await;
        let png = {
            let img = image::RgbImage::from_pixel(30, 20, image::Rgb([10, 200, 10]));
            let mut out = Vec::new();
            image::DynamicImage::ImageRgb8(img)
                .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
                .unwrap();
            out
        };
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let export = json!({
            "format": "skein.conversation.v1",
            "title": "Holiday photos",
            "messages": [
                { "id": "m1", "parent_id": null, "role": "user", "content": "look",
                  "images": [
                      format!("data:image/png;base64,{}", b64(&png)),
                      // Says PNG, is a ZIP: left out, the import goes on.
                      format!("data:image/png;base64,{}", b64(b"PK\x03\x04\x14\x00\x00\x00\x08\x00zipzipzip")),
                      "https://example.com/cat.jpg"
                  ] },
                { "id": "m2", "parent_id": "m1", "role": "assistant", "content": "nice" }
            ],
            "active_leaf_id": "m2"
        });
        let r = app.post("/api/v1/chat/import", Some(&alice.access), export).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["imported"], 1);
        assert_eq!(r.json["images"], 2, "{}", r.text);
        assert_eq!(r.json["images_skipped"], 1);
        let id = r.json["ids"][0].as_str().unwrap();

        // The image is alice's file now, and the message names it.
        let files = app.get("/api/v1/files?type=image/", Some(&alice.access)).await;
        assert_eq!(files.json["total"], 1, "{}", files.text);
        assert_eq!(files.json["items"][0]["purpose"], "chat");
        let file_id = files.json["items"][0]["id"].as_str().unwrap();
        let body = app.client.get(app.url(&format!("/api/v1/files/{file_id}/content"))).bearer_auth(&alice.access).send().await.unwrap();
        assert_eq!(body.bytes().await.unwrap().as_ref(), png.as_slice());
        let history = app.get(&format!("/api/v1/chat/conversations/{id}/messages"), Some(&alice.access)).await;
        let first = &history.json["messages"][0];
        assert_eq!(first["images"], json!([format!("file:{file_id}"), "https://example.com/cat.jpg"]), "{}", history.text);

        // Exported again, the image travels as its bytes and comes back as a file once more
        // (the same content: one stored object).
        let again = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=json"), Some(&alice.access)).await;
        let url = again.json["messages"][0]["images"][0].as_str().unwrap().to_string();
        assert!(url.starts_with("data:image/png;base64,"), "{url}");
        let r = app.post("/api/v1/chat/import", Some(&alice.access), again.json.clone()).await;
        assert_eq!(r.json["images"], 2, "{}", r.text);
        assert_eq!(app.get("/api/v1/files?type=image/", Some(&alice.access)).await.json["total"], 2);
        assert_eq!(stored(&app, "objects"), 1);
    }
}
