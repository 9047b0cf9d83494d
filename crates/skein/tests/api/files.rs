//! Files end to end through the real server: uploads streamed to the store (sniffed types,
//! limits, quota, dedup), downloads with ranges and ETags, signed URLs, share links, the
//! sweeper, on SQLite and PostgreSQL over the local disk, and over a real S3 server with
//! signatures checked (`SKEIN_TEST_S3_URL`, started by `scripts/test`).

pub(crate) mod previews;
pub(crate) mod uploads;

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use skein::config::Config;
use skein_testkit::{Backend, Persona, Resp, TestApp, on_both_backends};

const BOUNDARY: &str = "skein-file-test-boundary";

/// A multipart form with a `purpose` field and a `file` field.
fn form(purpose: &str, name: &str, content: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(app: &TestApp, who: &Persona, purpose: &str, name: &str, content: &[u8]) -> Resp {
    app.send(
        app.client
            .post(app.url("/api/v1/files"))
            .bearer_auth(&who.access)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(form(purpose, name, content)),
    )
    .await
}

async fn uploaded(
    app: &TestApp,
    who: &Persona,
    purpose: &str,
    name: &str,
    content: &[u8],
) -> String {
    let r = upload(app, who, purpose, name, content).await;
    assert_eq!(r.status, StatusCode::CREATED, "upload {name}: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

async fn get_with(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = app.client.get(app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.send(req).await
}

/// Files in a folder of the disk store (`objects`, `tmp`, `variants`).
fn stored(app: &TestApp, folder: &str) -> usize {
    count_files(&app.config.data_dir.join("files").join(folder))
}

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

/// A tiny valid PNG (1×1, red).
fn png() -> Vec<u8> {
    let mut out = Vec::new();
    let img = image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]));
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn files_app(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.file.sweep_interval_secs = 1;
        configure(c);
    })
    .await
}

on_both_backends! {
    async fn upload_download_ranges_and_etags(backend) {
        let app = files_app(backend, |_| {}).await;
        let alice = app.register("alice").await;
        let text = "第一行 first line\nsecond line\n".repeat(10);
        let r = upload(&app, &alice, "knowledge", "../../报告 notes.md", text.as_bytes()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["name"], "报告 notes.md", "the path is stripped");
        assert_eq!(r.json["content_type"], "text/markdown");
        assert_eq!(r.json["size"], text.len());
        assert_eq!(r.json["purpose"], "knowledge");
        let id = r.json["id"].as_str().unwrap();
        let sha = r.json["sha256"].as_str().unwrap().to_string();
        assert_eq!(sha.len(), 64);

        let path = format!("/api/v1/files/{id}/content");
        let whole = get_with(&app, &path, Some(&alice.access), &[]).await;
        assert_eq!(whole.status, StatusCode::OK);
        assert_eq!(whole.text, text);
        let etag = whole.header("etag").unwrap().to_string();
        assert_eq!(etag, format!("\"{sha}\""));
        assert_eq!(whole.header("cache-control"), Some("private, no-cache"));
        assert_eq!(whole.header("accept-ranges"), Some("bytes"));
        let disposition = whole.header("content-disposition").unwrap();
        assert!(
            disposition.starts_with("attachment;")
                && disposition.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%20notes.md"),
            "{disposition}"
        );

        let same = get_with(&app, &path, Some(&alice.access), &[("if-none-match", &etag)]).await;
        assert_eq!(same.status, StatusCode::NOT_MODIFIED);
        assert!(same.text.is_empty());

        let part = get_with(&app, &path, Some(&alice.access), &[("range", "bytes=10-19")]).await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.text.as_bytes(), &text.as_bytes()[10..20]);
        assert_eq!(part.header("content-range"), Some(format!("bytes 10-19/{}", text.len()).as_str()));
        let tail = get_with(&app, &path, Some(&alice.access), &[("range", "bytes=-5")]).await;
        assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(tail.text.as_bytes(), &text.as_bytes()[text.len() - 5..]);
        let beyond = get_with(&app, &path, Some(&alice.access), &[("range", "bytes=99999-")]).await;
        assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(beyond.error_code(), "range_not_satisfiable");
        assert_eq!(beyond.header("content-range"), Some(format!("bytes */{}", text.len()).as_str()));

        // Metadata, rename, the list with filters, previews.
        let meta = app.get(&format!("/api/v1/files/{id}"), Some(&alice.access)).await;
        assert_eq!(meta.json["sha256"], sha.as_str());
        let renamed = app.patch(&format!("/api/v1/files/{id}"), Some(&alice.access), json!({ "name": "a/b/新名字.md" })).await;
        assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
        assert_eq!(renamed.json["name"], "新名字.md");
        let blank = app.patch(&format!("/api/v1/files/{id}"), Some(&alice.access), json!({ "name": "  " })).await;
        assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
        uploaded(&app, &alice, "avatar", "me.png", &png()).await;
        let list = app.get("/api/v1/files?per_page=1", Some(&alice.access)).await;
        assert_eq!(list.json["total"], 2);
        assert_eq!(list.json["items"].as_array().unwrap().len(), 1);
        let images = app.get("/api/v1/files?type=image/", Some(&alice.access)).await;
        assert_eq!(images.json["total"], 1);
        assert_eq!(images.json["items"][0]["content_type"], "image/png");
        let knowledge = app.get("/api/v1/files?purpose=knowledge", Some(&alice.access)).await;
        assert_eq!(knowledge.json["total"], 1);
        assert_eq!(knowledge.json["items"][0]["id"], id);
        let preview = app.get(&format!("/api/v1/files/{id}/preview"), Some(&alice.access)).await;
        assert_eq!(preview.json["kind"], "text");
        assert_eq!(preview.json["text"], text.as_str());
        let usage = app.get("/api/v1/files/usage", Some(&alice.access)).await;
        assert_eq!(usage.json["files"], 2);
        assert_eq!(usage.json["used_bytes"], text.len() + png().len());
    }

    async fn the_same_content_is_stored_once_and_swept_after_the_last_delete(backend) {
        let app = files_app(backend, |_| {}).await;
        let alice = app.register("alice").await;
        let bob = app.register("bob").await;
        let content = b"the same bytes, uploaded three times".repeat(100);
        let a = uploaded(&app, &alice, "chat", "one.txt", &content).await;
        let b = uploaded(&app, &alice, "knowledge", "two.txt", &content).await;
        assert_ne!(a, b, "two files");
        assert_eq!(stored(&app, "objects"), 1, "one object for one owner's content");
        let usage = app.get("/api/v1/files/usage", Some(&alice.access)).await;
        assert_eq!(usage.json["used_bytes"], content.len(), "counted once");
        // Another user's identical upload is theirs alone: dedup never crosses owners.
        uploaded(&app, &bob, "chat", "mine.txt", &content).await;
        assert_eq!(stored(&app, "objects"), 2);

        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/files/{a}"), Some(&alice.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(stored(&app, "objects"), 2, "b still names alice's object");
        let still = get_with(&app, &format!("/api/v1/files/{b}/content"), Some(&alice.access), &[]).await;
        assert_eq!(still.text.as_bytes(), &content[..]);

        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/files/{b}"), Some(&alice.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let mut left = 2;
        for _ in 0..50 {
            left = stored(&app, "objects");
            if left == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(left, 1, "the sweeper removed alice's object, bob's stays");
        let gone = app.get(&format!("/api/v1/files/{b}"), Some(&alice.access)).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        assert_eq!(stored(&app, "tmp"), 0, "no upload left behind");
    }

    async fn limits_quota_and_lying_files_are_refused_and_leave_nothing(backend) {
        let app = files_app(backend, |c| {
            c.file.quota_bytes = 3000;
            c.file.avatar_max_bytes = 1000;
        })
        .await;
        let alice = app.register("alice").await;
        // A ZIP named .png is a ZIP: no avatar.
        let mut zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
        zip.extend_from_slice(&[7u8; 200]);
        let r = upload(&app, &alice, "avatar", "cat.png", &zip).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
        assert_eq!(r.error_code(), "unsupported_file_type");
        assert_eq!(r.json["error"]["details"]["content_type"], "application/zip");
        // A real PNG named .txt is a PNG.
        let r = upload(&app, &alice, "avatar", "not-text.txt", &png()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["content_type"], "image/png");
        // Binary junk is no knowledge document.
        let r = upload(&app, &alice, "knowledge", "notes.md", &[0u8, 1, 2, 3, 255, 254]).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // Empty.
        let r = upload(&app, &alice, "chat", "empty.txt", b"").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.error_code(), "empty_file");
        // Over the purpose's limit.
        let mut big_png = png();
        big_png.extend_from_slice(&[0u8; 1200]);
        let r = upload(&app, &alice, "avatar", "big.png", &big_png).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.error_code(), "file_too_large");
        // Over the quota.
        let r = upload(&app, &alice, "chat", "a.txt", &b"a".repeat(2000)).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = upload(&app, &alice, "chat", "b.txt", &b"b".repeat(2000)).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
        assert_eq!(r.error_code(), "quota_exceeded");
        // Unknown purpose, no purpose.
        let r = upload(&app, &alice, "wallpaper", "a.txt", b"x").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        // Nothing half-written anywhere, and only the two accepted files listed.
        assert_eq!(stored(&app, "tmp"), 0);
        assert_eq!(stored(&app, "objects"), 2);
        let list = app.get("/api/v1/files", Some(&alice.access)).await;
        assert_eq!(list.json["total"], 2);
    }

    async fn another_users_file_is_not_found(backend) {
        let app = files_app(backend, |_| {}).await;
        let alice = app.register("alice").await;
        let eve = app.register("eve").await;
        let id = uploaded(&app, &alice, "chat", "secret.txt", b"alice's secret").await;
        for path in [
            format!("/api/v1/files/{id}"),
            format!("/api/v1/files/{id}/content"),
            format!("/api/v1/files/{id}/preview"),
            format!("/api/v1/files/{id}/shares"),
        ] {
            let r = app.get(&path, Some(&eve.access)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
            let anonymous = app.get(&path, None).await;
            assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        }
        let r = app.patch(&format!("/api/v1/files/{id}"), Some(&eve.access), json!({ "name": "mine" })).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/files/{id}"), Some(&eve.access), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.post(&format!("/api/v1/files/{id}/url"), Some(&eve.access), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.post(&format!("/api/v1/files/{id}/shares"), Some(&eve.access), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.get("/api/v1/files/not-an-id", Some(&eve.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let mine = app.get(&format!("/api/v1/files/{id}/content"), Some(&alice.access)).await;
        assert_eq!(mine.text, "alice's secret");
    }

    async fn signed_urls_work_without_a_session_until_they_expire(backend) {
        const KEY: &str = "file-signing-key-for-tests-0123456789";
        let app = files_app(backend, |c| {
            c.file.signing_key = Some(skein_core::secret::Secret::new(KEY));
            c.file.public_base_url = Some("https://cdn.example.com/".into());
        })
        .await;
        let alice = app.register("alice").await;
        let id = uploaded(&app, &alice, "avatar", "me.png", &png()).await;
        let r = app.post(&format!("/api/v1/files/{id}/url"), Some(&alice.access), json!({ "ttl_secs": 600 })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let url = r.json["url"].as_str().unwrap();
        let path = url.strip_prefix("https://cdn.example.com").expect("behind the CDN");
        let public = get_with(&app, path, None, &[]).await;
        assert_eq!(public.status, StatusCode::OK, "{}", public.text);
        assert_eq!(public.header("content-type"), Some("image/png"));
        let cache = public.header("cache-control").unwrap();
        assert!(cache.starts_with("public, max-age="), "{cache}");
        assert!(public.header("content-disposition").unwrap().starts_with("inline;"));

        // A signature for one file does not open another, nor a changed expiry.
        let forged = path.replace("&sig=", "&sig=x");
        let r = get_with(&app, &forged, None, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.error_code(), "invalid_signature");
        let exp: i64 = path.split("exp=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
        let stretched = path.replace(&format!("exp={exp}"), &format!("exp={}", exp + 1000));
        assert_eq!(get_with(&app, &stretched, None, &[]).await.error_code(), "invalid_signature");
        // Signed with the right key but expired.
        let signer = skein_file::sign::Signer::new(KEY.as_bytes()).unwrap();
        let past = skein_core::ids::now_ms() / 1000 - 5;
        let sig = signer.sign(skein_file::sign::Scope::File, &id, "", past);
        let r = get_with(&app, &format!("/api/v1/files/{id}/content?exp={past}&sig={sig}"), None, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.error_code(), "url_expired");
        // Deleted files are gone even for a valid signature.
        app.call(reqwest::Method::DELETE, &format!("/api/v1/files/{id}"), Some(&alice.access), None).await;
        assert_eq!(get_with(&app, path, None, &[]).await.status, StatusCode::NOT_FOUND);
    }

    async fn share_links_ask_passwords_expire_and_count_downloads(backend) {
        let app = files_app(backend, |c| c.file.share_password_attempts_per_minute = 2).await;
        let alice = app.register("alice").await;
        let id = uploaded(&app, &alice, "chat", "季度报告.txt", b"shared words").await;
        let r = app
            .post(&format!("/api/v1/files/{id}/shares"), Some(&alice.access),
                json!({ "password": "open sesame", "max_downloads": 2, "expires_in_secs": 3600 }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert!(!r.text.contains("open sesame") && !r.text.contains("argon2"), "{}", r.text);
        let token = r.json["token"].as_str().unwrap().to_string();
        let share_id = r.json["id"].as_str().unwrap().to_string();
        assert_eq!(r.json["url"], format!("/s/{token}"));

        let info = app.get(&format!("/api/v1/shares/{token}"), None).await;
        assert_eq!(info.status, StatusCode::OK, "{}", info.text);
        assert_eq!(info.json["name"], "季度报告.txt");
        assert_eq!(info.json["password_required"], true);
        assert_eq!(info.json["downloads_left"], 2);
        let r = app.get(&format!("/api/v1/shares/{token}/content"), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.error_code(), "share_password_required");

        let access = format!("/api/v1/shares/{token}/access");
        let wrong = app.post(&access, None, json!({ "password": "guess" })).await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        assert_eq!(wrong.error_code(), "wrong_share_password");
        let right = app.post(&access, None, json!({ "password": "open sesame" })).await;
        assert_eq!(right.status, StatusCode::OK, "{}", right.text);
        let url = right.json["url"].as_str().unwrap().to_string();
        for _ in 0..2 {
            let r = app.get(&url, None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.text, "shared words");
            assert_eq!(r.header("cache-control"), Some("private, no-store"));
        }
        let r = app.get(&url, None).await;
        assert_eq!(r.status, StatusCode::GONE);
        assert_eq!(r.error_code(), "share_exhausted");
        let list = app.get(&format!("/api/v1/files/{id}/shares"), Some(&alice.access)).await;
        assert_eq!(list.json[0]["downloads"], 2);

        // Wrong passwords are limited per share: past the limit even the right one waits.
        let second = app
            .post(&format!("/api/v1/files/{id}/shares"), Some(&alice.access), json!({ "password": "another one" }))
            .await;
        let token2 = second.json["token"].as_str().unwrap().to_string();
        let access2 = format!("/api/v1/shares/{token2}/access");
        for _ in 0..2 {
            assert_eq!(app.post(&access2, None, json!({ "password": "nope" })).await.status, StatusCode::FORBIDDEN);
        }
        let limited = app.post(&access2, None, json!({ "password": "another one" })).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.text);

        // Revoked: gone at once.
        let r = app.call(reqwest::Method::DELETE, &format!("/api/v1/files/{id}/shares/{share_id}"), Some(&alice.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get(&format!("/api/v1/shares/{token}"), None).await.status, StatusCode::NOT_FOUND);

        // No password, a one-second expiry.
        let open = app
            .post(&format!("/api/v1/files/{id}/shares"), Some(&alice.access), json!({ "expires_in_secs": 1 }))
            .await;
        let token3 = open.json["token"].as_str().unwrap().to_string();
        let r = app.get(&format!("/api/v1/shares/{token3}/content"), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("content-disposition").unwrap().contains("filename*=UTF-8''%E5%AD%A3"));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = app.get(&format!("/api/v1/shares/{token3}"), None).await;
        assert_eq!(r.status, StatusCode::GONE);
        assert_eq!(r.error_code(), "share_expired");
        assert_eq!(app.get(&format!("/api/v1/shares/{token3}/content"), None).await.status, StatusCode::GONE);
    }

    async fn images_get_a_thumbnail_and_a_web_copy_turned_upright_without_exif(backend) {
        let app = files_app(backend, |_| {}).await;
        let alice = app.register("alice").await;
        // 2000×1000, red on the left and blue on the right, stored sideways: its EXIF says
        // "turn 90° clockwise to show" and carries a GPS entry.
        let big = {
            let img = image::RgbImage::from_fn(2000, 1000, |x, _| if x < 1000 { image::Rgb([220, 20, 20]) } else { image::Rgb([20, 20, 220]) });
            let mut out = Vec::new();
            image::DynamicImage::ImageRgb8(img)
                .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
                .unwrap();
            with_exif(&out, 6)
        };
        let id = uploaded(&app, &alice, "chat", "photo.jpg", &big).await;
        let mut meta = serde_json::Value::Null;
        for _ in 0..100 {
            meta = app.get(&format!("/api/v1/files/{id}"), Some(&alice.access)).await.json;
            if meta["variants_ready"] == true {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(meta["variants_ready"], true, "{meta}");
        // The size as shown: upright.
        assert_eq!((meta["width"].as_u64(), meta["height"].as_u64()), (Some(1000), Some(2000)));
        let thumb = app.client.get(app.url(&format!("/api/v1/files/{id}/content?variant=thumb"))).bearer_auth(&alice.access).send().await.unwrap();
        assert_eq!(thumb.headers()["content-type"], "image/jpeg");
        let bytes = thumb.bytes().await.unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!((decoded.width(), decoded.height()), (160, 320));
        // Turned clockwise: the left (red) half is now on top, the blue half below.
        let (top, bottom) = (decoded.get_pixel(80, 60).0, decoded.get_pixel(80, 260).0);
        assert!(top[0] > 180 && top[2] < 70, "red on top: {top:?}");
        assert!(bottom[2] > 180 && bottom[0] < 70, "blue below: {bottom:?}");
        let web = app.client.get(app.url(&format!("/api/v1/files/{id}/content?variant=web"))).bearer_auth(&alice.access).send().await.unwrap();
        let web = web.bytes().await.unwrap();
        let decoded = image::load_from_memory(&web).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (800, 1600));
        // The variants carry no EXIF, so no location; the original is kept as it was.
        for variant in [&bytes[..], &web[..]] {
            assert!(!contains(variant, b"Exif\0\0") && !contains(variant, GPS_SECRET), "a variant leaks EXIF");
        }
        let original = app.client.get(app.url(&format!("/api/v1/files/{id}/content"))).bearer_auth(&alice.access).send().await.unwrap();
        assert_eq!(original.bytes().await.unwrap(), big);
        assert_eq!(stored(&app, "variants"), 2);
    }
}

/// What the GPS entry of [`with_exif`] says (a map datum: any ASCII GPS tag will do).
const GPS_SECRET: &[u8] = b"SKEIN-SECRET-PLACE";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `jpeg` with an EXIF segment (APP1, right after SOI) holding an orientation and a GPS IFD.
fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II\x2a\0\x08\0\0\0".to_vec();
    // IFD0: two entries (orientation, the GPS IFD's offset), then no next IFD.
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]);
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    let gps_ifd = 8 + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0]);
    tiff.extend_from_slice(&(gps_ifd as u32).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    // The GPS IFD: GPSMapDatum (ASCII), its text after the IFD.
    let text = [GPS_SECRET, b"\0"].concat();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x00, 2, 0]);
    tiff.extend_from_slice(&(text.len() as u32).to_le_bytes());
    tiff.extend_from_slice(&((gps_ifd + 2 + 12 + 4) as u32).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(&text);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_is_not_cut_but_a_stalled_one_is_ended_and_leaves_nothing() {
    let app = files_app(Backend::Sqlite, |c| {
        c.server.request_timeout_secs = 1;
        c.file.upload_idle_secs = 2;
    })
    .await;
    let alice = app.register("alice").await;
    // Slower than the request timeout in all, never idle for long: it goes through.
    let body = form("chat", "slow.txt", &b"slowly sent words ".repeat(400));
    let pieces: Vec<Vec<u8>> = body
        .chunks(body.len() / 5 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    let stream = futures::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok::<_, std::io::Error>(piece)
    });
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/files"))
                .bearer_auth(&alice.access)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // Half a form, then silence: ended after the idle time, with a clear error.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = form("chat", "stalled.txt", &[b'x'; 50_000]);
    let address = app.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        alice.access,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body[..20_000]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("the server answers a stalled upload")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("upload_stalled"), "{answer}");
    drop(socket);
    assert_eq!(stored(&app, "tmp"), 0, "the partial upload was removed");
    let list = app.get("/api/v1/files", Some(&alice.access)).await;
    assert_eq!(list.json["total"], 1, "only the slow upload is kept");
}

/// A one-page PDF (poppler rebuilds the cross-reference table it lacks).
fn pdf() -> Vec<u8> {
    let stream = "BT /F1 24 Tf 72 700 Td (Skein) Tj ET";
    format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
         2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
         3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >> endobj\n\
         4 0 obj << /Length {} >> stream\n{stream}\nendstream endobj\n\
         5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n\
         trailer << /Root 1 0 R >>\n%%EOF\n",
        stream.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_gets_its_page_count_and_a_first_page_preview_with_poppler() {
    if std::process::Command::new("pdftoppm")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!(
            "pdftoppm is not installed: PDF previews are skipped by the server, and here (scripts/test installs poppler-utils)"
        );
        return;
    }
    let app = files_app(Backend::Sqlite, |_| {}).await;
    let alice = app.register("alice").await;
    let id = uploaded(&app, &alice, "knowledge", "paper.pdf", &pdf()).await;
    let mut preview = serde_json::Value::Null;
    for _ in 0..100 {
        preview = app
            .get(&format!("/api/v1/files/{id}/preview"), Some(&alice.access))
            .await
            .json;
        if preview["image_url"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(preview["kind"], "pdf", "{preview}");
    assert_eq!(preview["page_count"], 1, "{preview}");
    let page = app
        .client
        .get(app.url(preview["image_url"].as_str().unwrap()))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["content-type"], "image/jpeg");
    let decoded = image::load_from_memory(&page.bytes().await.unwrap()).unwrap();
    assert!(
        decoded.height() > decoded.width(),
        "a portrait page: {}×{}",
        decoded.width(),
        decoded.height()
    );
    let listed = app.get("/api/v1/files", Some(&alice.access)).await;
    assert!(
        listed.json["items"][0]["thumbnail_url"].is_string(),
        "the grid shows the first page"
    );
}

/// The S3 server `scripts/test` starts (s3s-fs, which checks SigV4 signatures).
fn s3_url() -> Option<String> {
    std::env::var("SKEIN_TEST_S3_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The credentials and bucket `scripts/test` gives s3s-fs.
const S3_ACCESS_KEY: &str = "skeintest";
const S3_SECRET_KEY: &str = "skeintest-secret-key";
const S3_BUCKET: &str = "skein-test";

fn s3_config(c: &mut Config, endpoint: &str, secret: &str) {
    c.file.storage = skein_file::StorageKind::S3;
    c.file.sweep_interval_secs = 1;
    c.file.s3 = skein_file::S3Config {
        endpoint: endpoint.to_string(),
        region: "us-east-1".into(),
        bucket: S3_BUCKET.into(),
        access_key_id: S3_ACCESS_KEY.into(),
        secret_access_key: Some(skein_core::secret::Secret::new(secret)),
        virtual_host_style: false,
        // Each test its own prefix: tests share the bucket.
        root: format!("t-{}", uuid::Uuid::now_v7().simple()),
        ..skein_file::S3Config::default()
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_round_trip_on_postgres() {
    let Some(endpoint) = s3_url() else {
        eprintln!(
            "SKEIN_TEST_S3_URL is not set: the S3 store is not tested (scripts/test sets it)"
        );
        return;
    };
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        s3_config(c, &endpoint, S3_SECRET_KEY)
    })
    .await;
    let alice = app.register("alice").await;
    // Over one 8 MiB part: the upload goes up as an S3 multipart upload.
    let text_like: Vec<u8> = (0..9 * 1024 * 1024u32)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let id = uploaded(&app, &alice, "plugin", "big.bin", &text_like).await;
    let again = uploaded(&app, &alice, "plugin", "again.bin", &text_like).await;
    let r = get_with(
        &app,
        &format!("/api/v1/files/{id}/content"),
        Some(&alice.access),
        &[("range", "bytes=8388600-8388615")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.text.as_bytes(), &text_like[8_388_600..8_388_616]);
    let whole = app
        .client
        .get(app.url(&format!("/api/v1/files/{again}/content")))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &text_like[..]);
    for file in [&id, &again] {
        let r = app
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/files/{file}"),
                Some(&alice.access),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let gone = get_with(
        &app,
        &format!("/api/v1/files/{id}/content"),
        Some(&alice.access),
        &[],
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // s3s-fs keeps each object as a file under its folder: the sweeper emptied ours.
    if let Ok(dir) = std::env::var("SKEIN_TEST_S3_DIR") {
        let objects = Path::new(&dir)
            .join(S3_BUCKET)
            .join(&app.config.file.s3.root)
            .join("objects");
        let mut left = usize::MAX;
        for _ in 0..50 {
            left = count_files(&objects);
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(left, 0, "objects left in {}", objects.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_with_a_wrong_secret_key_fails_to_start_clearly() {
    let Some(endpoint) = s3_url() else {
        eprintln!(
            "SKEIN_TEST_S3_URL is not set: the S3 store is not tested (scripts/test sets it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.server.listen = "127.0.0.1:0".into();
    s3_config(&mut config, &endpoint, "not-the-secret-key");
    let error = match skein::build(config, &skein::ServiceSet::all()).await {
        Ok(_) => panic!("a wrong S3 secret key must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("file store does not answer"), "{error}");
    assert!(
        !error.contains("not-the-secret-key"),
        "the secret leaked: {error}"
    );
}
