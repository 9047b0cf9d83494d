//! The Agent service through the real server: conversations pinned to the version they
//! started with (what reaches the mock upstream proves it), rollbacks and comparisons, a
//! deleted assistant's conversations going on, the market's search in Chinese with LIKE's
//! metacharacters taken literally, privacy, moderation, and likes exact under 500 concurrent
//! clicks.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use skein_testkit::{Backend, Persona, TestApp, Upstream, on_both_backends, relay_world};

async fn app(backend: Backend) -> TestApp {
    // No title model: the only upstream calls are the answers the test makes.
    TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await
}

async fn create(app: &TestApp, who: &Persona, body: Value) -> String {
    let r = app.post("/api/v1/agents", Some(&who.access), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

async fn publish(app: &TestApp, who: &Persona, id: &str, changelog: &str) -> i64 {
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/publish"),
            Some(&who.access),
            json!({"changelog": changelog}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["version"].as_i64().unwrap()
}

async fn start(app: &TestApp, who: &Persona, id: &str) -> Value {
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/conversations"),
            Some(&who.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json
}

/// Sends `content` in conversation `c` and answers the request the upstream received.
async fn ask(
    app: &TestApp,
    who: &Persona,
    upstream: &skein_testkit::MockVendor,
    c: &str,
    content: &str,
) -> Value {
    let r = app
        .post(
            &format!("/api/v1/chat/conversations/{c}/messages"),
            Some(&who.access),
            json!({"content": content}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    upstream.requests().last().unwrap().clone()
}

fn system(sent: &Value) -> &str {
    sent["messages"][0]["content"].as_str().unwrap_or("")
}

/// Sends a multipart upload of `text` as `name` into knowledge base `base`; the document's id.
async fn upload_text(app: &TestApp, who: &Persona, base: &str, name: &str, text: &str) -> String {
    const BOUNDARY: &str = "skein-agent-test-boundary";
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: text/plain\r\n\r\n{text}\r\n--{BOUNDARY}--\r\n"
    );
    let r = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/knowledge/bases/{base}/documents/upload")))
                .bearer_auth(&who.access)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let doc = r.json["id"].as_str().unwrap().to_string();
    for _ in 0..1200 {
        let r = app
            .get(
                &format!("/api/v1/knowledge/bases/{base}/documents/{doc}"),
                Some(&who.access),
            )
            .await;
        if r.json["status"] == "ready" {
            return doc;
        }
        assert_ne!(r.json["status"], "failed", "{}", r.text);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the document was never indexed");
}

/// The names of the tools offered to the model in `sent`.
fn offered_tools(sent: &Value) -> Vec<String> {
    sent["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

on_both_backends! {
    async fn conversations_keep_the_version_they_started_with(backend) {
        let app = app(backend).await;
        let world = relay_world(&app, Upstream::OpenAi).await;
        let (user, upstream) = (&world.user, &world.upstream);
        let id = create(&app, user, json!({
            "name": "Translator", "avatar": "🌐", "system_prompt": "You translate.\nVersion one.",
            "model": "gpt-test", "temperature": 0.3, "opening_message": "Hello from v1",
            "suggested_questions": ["Translate 你好"], "knowledge_base_ids": ["kb-1"],
        })).await;

        // Unpublished: nothing to pin to.
        let r = app.post(&format!("/api/v1/agents/{id}/conversations"), Some(&user.access), json!({})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "agent_unpublished"), "{}", r.text);

        // A base that does not exist (or that the owner may not read) is refused at publish.
        let r = app.post(&format!("/api/v1/agents/{id}/publish"), Some(&user.access), json!({})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.json["error"]["details"]["field"], "knowledge_base_ids", "{}", r.text);
        let r = app.patch(&format!("/api/v1/agents/{id}"), Some(&user.access), json!({"knowledge_base_ids": []})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(publish(&app, user, &id, "first").await, 1);
        let c1 = start(&app, user, &id).await;
        assert_eq!((c1["version"].as_i64(), c1["opening_message"].as_str()), (Some(1), Some("Hello from v1")));
        let c1 = c1["conversation_id"].as_str().unwrap().to_string();
        let sent = ask(&app, user, upstream, &c1, "hi").await;
        assert_eq!(system(&sent), "You translate.\nVersion one.", "{sent}");
        assert_eq!(sent["temperature"], 0.3, "{sent}");
        assert_eq!(sent["messages"][1], json!({"role": "assistant", "content": "Hello from v1"}));

        // A new draft changes nothing until published; then new conversations get v2 and the
        // old one stays on v1.
        let r = app.patch(&format!("/api/v1/agents/{id}"), Some(&user.access),
            json!({"system_prompt": "You translate.\nVersion two.", "temperature": 0.9})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(system(&ask(&app, user, upstream, &c1, "again").await), "You translate.\nVersion one.");
        assert_eq!(publish(&app, user, &id, "second").await, 2);
        let sent = ask(&app, user, upstream, &c1, "and now?").await;
        assert_eq!((system(&sent), &sent["temperature"]), ("You translate.\nVersion one.", &json!(0.3)));
        let c2 = start(&app, user, &id).await["conversation_id"].as_str().unwrap().to_string();
        let sent = ask(&app, user, upstream, &c2, "hi").await;
        assert_eq!((system(&sent), &sent["temperature"]), ("You translate.\nVersion two.", &json!(0.9)));
        let pin = app.get(&format!("/api/v1/agents/conversations/{c1}"), Some(&user.access)).await;
        assert_eq!((pin.json["version"].as_i64(), pin.json["name"].as_str()), (Some(1), Some("Translator")), "{}", pin.text);

        // Compare: the changed fields, and the prompt line by line.
        let d = app.get(&format!("/api/v1/agents/{id}/compare?from=1&to=2"), Some(&user.access)).await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.text);
        let fields: Vec<&str> = d.json["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["system_prompt", "temperature"], "{}", d.text);
        assert_eq!(d.json["prompt"], json!([
            {"op": "same", "text": "You translate."},
            {"op": "removed", "text": "Version one."},
            {"op": "added", "text": "Version two."},
        ]));

        // Rollback publishes v1's content as v3, and new conversations use it.
        let r = app.post(&format!("/api/v1/agents/{id}/versions/1/rollback"), Some(&user.access), json!({})).await;
        assert_eq!((r.status, r.json["version"].as_i64(), r.json["source_version"].as_i64()), (StatusCode::CREATED, Some(3), Some(1)), "{}", r.text);
        let c3 = start(&app, user, &id).await["conversation_id"].as_str().unwrap().to_string();
        assert_eq!(system(&ask(&app, user, upstream, &c3, "hi").await), "You translate.\nVersion one.");
        let versions = app.get(&format!("/api/v1/agents/{id}/versions"), Some(&user.access)).await;
        let numbers: Vec<i64> = versions.json.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
        assert_eq!(numbers, [3, 2, 1]);

        // Deleted: gone from its page, but its conversations go on with their version.
        let r = app.call(Method::DELETE, &format!("/api/v1/agents/{id}"), Some(&user.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get(&format!("/api/v1/agents/{id}"), Some(&user.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(system(&ask(&app, user, upstream, &c2, "still there?").await), "You translate.\nVersion two.");
        let pin = app.get(&format!("/api/v1/agents/conversations/{c2}"), Some(&user.access)).await;
        assert_eq!((pin.json["version"].as_i64(), pin.json["agent_deleted"].as_bool()), (Some(2), Some(true)), "{}", pin.text);

        // A conversation not started from an assistant has no persona.
        let plain = app.post("/api/v1/chat/conversations", Some(&user.access), json!({"model": "gpt-test"})).await;
        let plain = plain.json["id"].as_str().unwrap().to_string();
        let sent = ask(&app, user, upstream, &plain, "hi").await;
        assert_eq!(sent["messages"], json!([{"role": "user", "content": "hi"}]));
    }

    async fn usage_is_counted_per_conversation_message_and_user(backend) {
        let app = app(backend).await;
        let world = relay_world(&app, Upstream::OpenAi).await;
        let (user, upstream) = (&world.user, &world.upstream);
        let id = create(&app, user, json!({"name": "Counter", "system_prompt": "count", "model": "gpt-test", "visibility": "public"})).await;
        publish(&app, user, &id, "").await;
        let a = start(&app, user, &id).await["conversation_id"].as_str().unwrap().to_string();
        let b = start(&app, user, &id).await["conversation_id"].as_str().unwrap().to_string();
        ask(&app, user, upstream, &a, "one").await;
        ask(&app, user, upstream, &a, "two").await;
        ask(&app, user, upstream, &b, "three").await;
        let s = app.get(&format!("/api/v1/agents/{id}/stats"), Some(&user.access)).await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.text);
        assert_eq!((s.json["conversations"].as_i64(), s.json["messages"].as_i64(), s.json["unique_users"].as_i64()), (Some(2), Some(3), Some(1)), "{}", s.text);
        let day = &s.json["days"][0];
        assert_eq!((day["conversations"].as_i64(), day["messages"].as_i64(), day["users"].as_i64()), (Some(2), Some(3), Some(1)), "{}", s.text);

        // The owner tries the draft: each answer uses the draft as saved then, nothing is
        // published, and nothing is counted. Nobody else may preview it.
        let r = app.patch(&format!("/api/v1/agents/{id}"), Some(&user.access), json!({"system_prompt": "draft one"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let p = app.post(&format!("/api/v1/agents/{id}/preview"), Some(&user.access), json!({})).await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
        assert_eq!((p.json["version"].as_i64(), p.json["preview"].as_bool()), (Some(0), Some(true)), "{}", p.text);
        let preview = p.json["conversation_id"].as_str().unwrap().to_string();
        assert_eq!(system(&ask(&app, user, upstream, &preview, "try").await), "draft one");
        let r = app.patch(&format!("/api/v1/agents/{id}"), Some(&user.access), json!({"system_prompt": "draft two"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(system(&ask(&app, user, upstream, &preview, "again").await), "draft two");
        // Published conversations still answer with v1.
        assert_eq!(system(&ask(&app, user, upstream, &b, "four").await), "count");
        let s = app.get(&format!("/api/v1/agents/{id}/stats"), Some(&user.access)).await;
        assert_eq!((s.json["conversations"].as_i64(), s.json["messages"].as_i64()), (Some(2), Some(4)), "{}", s.text);
        let versions = app.get(&format!("/api/v1/agents/{id}/versions"), Some(&user.access)).await;
        assert_eq!(versions.json.as_array().map(Vec::len), Some(1), "{}", versions.text);

        // Another user sees neither the statistics nor the versions.
        let bob = app.register("bob").await;
        assert_eq!(app.post(&format!("/api/v1/agents/{id}/preview"), Some(&bob.access), json!({})).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/v1/agents/{id}/stats"), Some(&bob.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/v1/agents/{id}/versions"), Some(&bob.access)).await.status, StatusCode::NOT_FOUND);
    }

    async fn the_market_searches_chinese_and_takes_like_metacharacters_literally(backend) {
        let app = app(backend).await;
        let (root, admin) = app.root_and_admin().await;
        let alice = app.register("alice").await;
        let bob = app.register("bob").await;
        let r = app.put("/api/v1/admin/agent-categories", Some(&admin.access), json!({"id": "writing", "name_en": "Writing", "name_zh": "写作"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.put("/api/v1/admin/agent-categories", Some(&bob.access), json!({"id": "x", "name_en": "X", "name_zh": "X"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        let translator = create(&app, &alice, json!({"name": "翻译助手", "description": "中英文互译，地道自然", "tags": ["翻译", "Language"], "category": "writing", "visibility": "public"})).await;
        let reviewer = create(&app, &alice, json!({"name": "Code Reviewer", "description": "Reviews 100% of your_code", "tags": ["code"], "visibility": "public"})).await;
        let secret = create(&app, &alice, json!({"name": "Secret 翻译", "visibility": "private"})).await;
        let linked = create(&app, &alice, json!({"name": "Linked 翻译", "visibility": "link"})).await;
        for id in [&translator, &reviewer, &secret, &linked] {
            publish(&app, &alice, id, "v1").await;
        }
        // Public but never published: not in the market.
        create(&app, &alice, json!({"name": "Draft 翻译", "visibility": "public"})).await;

        let names = |r: &skein_testkit::Resp| -> Vec<String> {
            r.json["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect()
        };
        let search = |q: &str| app.client.get(app.url("/api/v1/market/agents")).query(&[("q", q)]);
        let found = app.send(search("翻译")).await;
        assert_eq!((names(&found), found.json["total"].as_i64()), (vec!["翻译助手".to_string()], Some(1)), "{}", found.text);
        assert_eq!(names(&app.send(search("互译")).await), ["翻译助手"]);
        assert_eq!(names(&app.send(search("language 翻译")).await), ["翻译助手"], "terms are ANDed, case-insensitive");
        assert!(names(&app.send(search("language code")).await).is_empty());
        assert_eq!(names(&app.send(search("%")).await), ["Code Reviewer"], "% is literal");
        assert_eq!(names(&app.send(search("_")).await), ["Code Reviewer"], "_ is literal");
        assert!(names(&app.send(search("\\")).await).is_empty(), "\\ is literal");
        assert!(names(&app.send(search("' OR 1=1 --")).await).is_empty());
        let by_category = app.get("/api/v1/market/agents?category=writing", None).await;
        assert_eq!(names(&by_category), ["翻译助手"]);
        let all = app.get("/api/v1/market/agents?sort=newest", None).await;
        assert_eq!(names(&all), ["Code Reviewer", "翻译助手"]);
        let r = app.get("/api/v1/market/agents?sort=loudest", None).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let cats = app.get("/api/v1/market/categories", None).await;
        assert_eq!(cats.json, json!([{"id": "writing", "name_en": "Writing", "name_zh": "写作", "sort": 0}]));

        // Another user's private assistant does not exist for bob; a link one does.
        for (method, path) in [
            (Method::GET, format!("/api/v1/agents/{secret}")),
            (Method::PATCH, format!("/api/v1/agents/{secret}")),
            (Method::DELETE, format!("/api/v1/agents/{secret}")),
            (Method::POST, format!("/api/v1/agents/{secret}/conversations")),
            (Method::PUT, format!("/api/v1/agents/{secret}/like")),
            (Method::POST, format!("/api/v1/agents/{secret}/duplicate")),
            (Method::GET, format!("/api/v1/agents/{secret}/export")),
            (Method::POST, format!("/api/v1/agents/{translator}/publish")),
        ] {
            let r = app.call(method.clone(), &path, Some(&bob.access), Some(json!({}))).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {}", r.text);
        }
        let r = app.get(&format!("/api/v1/agents/{linked}"), Some(&bob.access)).await;
        assert_eq!((r.status, r.json["name"].as_str(), r.json.get("draft")), (StatusCode::OK, Some("Linked 翻译"), None), "{}", r.text);

        // Favourites, duplicates, reports and moderation.
        let r = app.put(&format!("/api/v1/agents/{translator}/favourite"), Some(&bob.access), json!({})).await;
        assert_eq!((r.status, r.json["count"].as_i64()), (StatusCode::OK, Some(1)), "{}", r.text);
        let favs = app.get("/api/v1/agents/favourites", Some(&bob.access)).await;
        assert_eq!(names(&favs), ["翻译助手"]);
        let copy = app.post(&format!("/api/v1/agents/{translator}/duplicate"), Some(&bob.access), json!({})).await;
        assert_eq!((copy.status, copy.json["name"].as_str(), copy.json["visibility"].as_str()), (StatusCode::CREATED, Some("翻译助手 (copy)"), Some("private")), "{}", copy.text);
        let r = app.post(&format!("/api/v1/agents/{reviewer}/report"), Some(&bob.access), json!({"reason": "spam"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let reports = app.get("/api/v1/admin/agent-reports", Some(&admin.access)).await;
        assert_eq!(reports.json["total"].as_i64(), Some(1), "{}", reports.text);
        let report = reports.json["items"][0]["id"].as_str().unwrap().to_string();
        let r = app.put(&format!("/api/v1/admin/agents/{reviewer}/moderation"), Some(&root.access), json!({"listed": false, "resolves_report": report})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(names(&app.send(search("code")).await).is_empty(), "unlisted");
        assert_eq!(app.get("/api/v1/admin/agent-reports", Some(&admin.access)).await.json["total"].as_i64(), Some(0));
        let r = app.put(&format!("/api/v1/admin/agents/{translator}/moderation"), Some(&admin.access), json!({"featured": true})).await;
        assert_eq!(r.json["featured"], true, "{}", r.text);
        assert_eq!(names(&app.get("/api/v1/market/agents?featured=true", None).await), ["翻译助手"]);
    }

    async fn limits_and_bad_input_are_clear_in_both_languages(backend) {
        let app = app(backend).await;
        let alice = app.register("alice").await;
        let r = app.post("/api/v1/agents", Some(&alice.access), json!({"name": "Long", "system_prompt": "x".repeat(20_001)})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("system_prompt")), "{}", r.text);
        let zh = app.send(app.client.post(app.url("/api/v1/agents")).bearer_auth(&alice.access)
            .header("accept-language", "zh-CN").json(&json!({"name": ""}))).await;
        assert_eq!(zh.json["error"]["message"], "助手需要一个名称。", "{}", zh.text);
        let r = app.post("/api/v1/agents", Some(&alice.access), json!({"name": "T", "temperature": 3})).await;
        assert_eq!(r.json["error"]["details"]["field"], "temperature");
        let r = app.post("/api/v1/agents", Some(&alice.access), json!({"name": "T", "visibility": "everyone"})).await;
        assert_eq!(r.json["error"]["details"]["field"], "visibility");
        let id = create(&app, &alice, json!({"name": "Fine"})).await;
        let r = app.patch(&format!("/api/v1/agents/{id}"), Some(&alice.access), json!({"tags": (0..11).map(|i| format!("t{i}")).collect::<Vec<_>>()})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("tags")));
        let r = app.get(&format!("/api/v1/agents/{id}"), Some(&alice.access)).await;
        assert_eq!(r.json["draft"]["name"], "Fine", "a refused edit changes nothing");
        let r = app.post(&format!("/api/v1/agents/{id}/publish"), Some(&alice.access), json!({"changelog": "c".repeat(2_001)})).await;
        assert_eq!(r.json["error"]["details"]["field"], "changelog");
        assert!(app.get(&format!("/api/v1/agents/{id}/versions"), Some(&alice.access)).await.json.as_array().unwrap().is_empty());
        let r = app.get(&format!("/api/v1/market/agents?q={}", "长".repeat(101)), None).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.post("/api/v1/agents", None, json!({"name": "anon"})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }

    async fn lobechat_and_skein_json_import_and_export(backend) {
        let app = app(backend).await;
        let alice = app.register("alice").await;
        let lobe = json!({
            "author": "lobehub", "identifier": "academic-writing", "schemaVersion": 1,
            "meta": {"avatar": "📘", "title": "学术写作助手", "description": "帮你写论文", "tags": ["写作", "academic"]},
            "config": {"systemRole": "你是学术写作专家。", "openingMessage": "你好", "openingQuestions": ["如何写摘要？"], "params": {"temperature": 0.5}},
        });
        let r = app.post("/api/v1/agents/import", Some(&alice.access), lobe.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["current_version"].as_i64(), r.json["published"]["system_prompt"].as_str()), (Some(1), Some("你是学术写作专家。")), "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        let out = app.get(&format!("/api/v1/agents/{id}/export?format=lobechat"), Some(&alice.access)).await;
        assert_eq!((&out.json["meta"]["title"], &out.json["config"]["systemRole"], &out.json["config"]["openingQuestions"]), (&lobe["meta"]["title"], &lobe["config"]["systemRole"], &lobe["config"]["openingQuestions"]), "{}", out.text);

        // Skein's own keeps every version.
        app.patch(&format!("/api/v1/agents/{id}"), Some(&alice.access), json!({"system_prompt": "第二版"})).await;
        publish(&app, &alice, &id, "第二版").await;
        let export = app.get(&format!("/api/v1/agents/{id}/export"), Some(&alice.access)).await.json;
        assert_eq!(export["versions"].as_array().unwrap().len(), 2, "{export}");
        let r = app.post("/api/v1/agents/import", Some(&alice.access), export.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let copy = r.json["id"].as_str().unwrap().to_string();
        let versions = app.get(&format!("/api/v1/agents/{copy}/versions"), Some(&alice.access)).await.json;
        let prompts: Vec<&str> = versions.as_array().unwrap().iter().map(|v| v["spec"]["system_prompt"].as_str().unwrap()).collect();
        assert_eq!(prompts, ["第二版", "你是学术写作专家。"]);

        // A bad version refuses the whole file; nothing is created.
        let mut bad = export.clone();
        bad["versions"][1]["spec"]["system_prompt"] = json!("x".repeat(20_001));
        let before = app.get("/api/v1/agents/mine", Some(&alice.access)).await.json["total"].as_i64();
        let r = app.post("/api/v1/agents/import", Some(&alice.access), bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(app.get("/api/v1/agents/mine", Some(&alice.access)).await.json["total"].as_i64(), before);
        let r = app.post("/api/v1/agents/import", Some(&alice.access), json!({"hello": 1})).await;
        assert_eq!(r.json["error"]["details"]["field"], "format", "{}", r.text);
    }

    async fn five_hundred_concurrent_likes_count_exactly(backend) {
        let app = app(backend).await;
        let alice = app.register("alice").await;
        let id = create(&app, &alice, json!({"name": "Popular", "visibility": "public"})).await;
        publish(&app, &alice, &id, "").await;
        let users: Vec<Persona> = join_all((0..50).map(|i| {
            let app = &app;
            async move { app.register(&format!("fan{i}")).await }
        })).await;
        // 500 likes at once: each of 50 users clicks ten times.
        let path = format!("/api/v1/agents/{id}/like");
        let clicks = users.iter().flat_map(|u| std::iter::repeat_n(u, 10)).map(|u| {
            let (app, path) = (&app, &path);
            async move { app.put(path, Some(&u.access), json!({})).await.status }
        });
        let statuses = join_all(clicks).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        let page = format!("/api/v1/agents/{id}");
        let likes = app.get(&page, Some(&alice.access)).await.json["likes"].as_i64();
        assert_eq!(likes, Some(50));
        // Half take it back, each twice, while the other half like again.
        let mixed = users.iter().enumerate().flat_map(|(i, u)| std::iter::repeat_n((i, u), 4)).map(|(i, u)| {
            let (app, path) = (&app, &path);
            async move {
                let method = if i % 2 == 0 { Method::DELETE } else { Method::PUT };
                app.call(method, path, Some(&u.access), None).await.status
            }
        });
        assert!(join_all(mixed).await.iter().all(|s| *s == StatusCode::OK));
        let likes = app.get(&page, Some(&alice.access)).await.json["likes"].as_i64();
        assert_eq!(likes, Some(25));
        let sorted = app.get("/api/v1/market/agents?sort=most_liked", None).await;
        assert_eq!(sorted.json["items"][0]["likes"].as_i64(), Some(25));
    }
    async fn an_assistants_knowledge_and_tools_serve_only_those_allowed_to_use_them(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.chat.title_model = Some(String::new());
            c.knowledge.poll_interval_ms = 50;
        })
        .await;
        let world = relay_world(&app, Upstream::OpenAi).await;
        let (ada, root, upstream) = (&world.user, &world.root, &world.upstream);
        let bob = app.register("bob").await;
        app.fund(root, &bob, 100_000_000).await;

        // Ada's private base, and a public one; a published tool nobody enabled; Ada's own tool.
        let private = app.post("/api/v1/knowledge/bases", Some(&ada.access),
            json!({"name": "Ada's notes", "embedding_model": ""})).await;
        assert_eq!(private.status, StatusCode::CREATED, "{}", private.text);
        let private = private.json["id"].as_str().unwrap().to_string();
        upload_text(&app, ada, &private, "salaries.txt", "Staff engineers handbook: the secret salary band is ninety-seven thousand.").await;
        let public = app.post("/api/v1/knowledge/bases", Some(&ada.access),
            json!({"name": "Handbook", "embedding_model": "", "visibility": "public"})).await;
        assert_eq!(public.status, StatusCode::CREATED, "{}", public.text);
        let public = public.json["id"].as_str().unwrap().to_string();
        upload_text(&app, ada, &public, "leave.txt", "Staff engineers handbook: annual leave is twenty-five days a year.").await;
        let document = |name: &str, op: &str| json!({
            "openapi": "3.0.0", "info": {"title": name, "version": "1"},
            "servers": [{"url": "https://tools.example.com"}],
            "paths": {format!("/{op}"): {"get": {"operationId": op, "summary": "Looks something up"}}}});
        let r = app.post("/api/v1/admin/plugins", Some(&root.access),
            json!({"name": "Directory", "kind": "openapi", "openapi": document("Directory", "find_person")})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let published = r.json["id"].as_str().unwrap().to_string();
        let r = app.post("/api/v1/plugins", Some(&ada.access),
            json!({"name": "Mine", "kind": "openapi", "openapi": document("Mine", "ada_only")})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let own = r.json["id"].as_str().unwrap().to_string();

        let id = create(&app, ada, json!({
            "name": "HR helper", "system_prompt": "You answer HR questions.", "model": "gpt-test",
            "knowledge_base_ids": [private, public], "plugin_ids": [published, own],
        })).await;
        let r = app.patch(&format!("/api/v1/agents/{id}"), Some(&ada.access), json!({"visibility": "public"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        publish(&app, ada, &id, "first").await;
        // Every word of the question is in both documents, so each passes the coverage bar.
        let question = "staff engineers handbook";

        // Ada may read both bases and use both tools: all of it reaches the model.
        let c = start(&app, ada, &id).await["conversation_id"].as_str().unwrap().to_string();
        let sent = ask(&app, ada, upstream, &c, question).await;
        let context = sent["messages"].to_string();
        assert!(context.contains("twenty-five days"), "{sent}");
        assert!(context.contains("ninety-seven thousand"), "{sent}");
        let mut tools = offered_tools(&sent);
        tools.sort();
        assert_eq!(tools, ["ada_only", "find_person"], "{sent}");

        // Bob gets the public base and the published tool, never Ada's private base or tool.
        let c = start(&app, &bob, &id).await["conversation_id"].as_str().unwrap().to_string();
        let sent = ask(&app, &bob, upstream, &c, question).await;
        assert!(sent["messages"].to_string().contains("twenty-five days"), "{sent}");
        assert!(!sent.to_string().contains("ninety-seven"), "{sent}");
        assert_eq!(offered_tools(&sent), ["find_person"], "{sent}");
        let history = app.get(&format!("/api/v1/chat/conversations/{c}/messages"), Some(&bob.access)).await;
        assert!(!history.text.contains("ninety-seven") && !history.text.contains("salaries.txt"), "{}", history.text);

        // Bob switches the bound tool off for his conversation: it is no longer offered.
        let r = app.put(&format!("/api/v1/plugins/conversations/{c}/{published}"), Some(&bob.access),
            json!({"enabled": false})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sent = ask(&app, &bob, upstream, &c, "And sick leave?").await;
        assert!(offered_tools(&sent).is_empty(), "{sent}");
    }

    async fn publishing_checks_bindings_the_model_and_an_uploaded_avatar(backend) {
        let app = app(backend).await;
        let world = relay_world(&app, Upstream::OpenAi).await;
        let (ada, root) = (&world.user, &world.root);
        let bob = app.register("bob").await;
        app.fund(root, &bob, 100_000_000).await;
        let base = app.post("/api/v1/knowledge/bases", Some(&ada.access),
            json!({"name": "Ada's notes", "embedding_model": ""})).await;
        assert_eq!(base.status, StatusCode::CREATED, "{}", base.text);
        let base = base.json["id"].as_str().unwrap().to_string();
        let r = app.post("/api/v1/plugins", Some(&ada.access), json!({"name": "Mine", "kind": "openapi", "openapi": {
            "openapi": "3.0.0", "info": {"title": "Mine", "version": "1"},
            "servers": [{"url": "https://tools.example.com"}],
            "paths": {"/x": {"get": {"operationId": "ada_only", "summary": "Looks something up"}}}}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let plugin = r.json["id"].as_str().unwrap().to_string();

        // Bob may neither read Ada's base nor use her plugin, nor chat with an unserved model:
        // each is refused at publish, naming the field, and nothing is published.
        let id = create(&app, &bob, json!({"name": "Copycat", "model": "gpt-test"})).await;
        for (patch, field) in [
            (json!({"knowledge_base_ids": [base.clone()]}), "knowledge_base_ids"),
            (json!({"knowledge_base_ids": [], "plugin_ids": [plugin.clone()]}), "plugin_ids"),
            (json!({"plugin_ids": [], "model": "gpt-nobody-serves"}), "model"),
        ] {
            let r = app.patch(&format!("/api/v1/agents/{id}"), Some(&bob.access), patch).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let r = app.post(&format!("/api/v1/agents/{id}/publish"), Some(&bob.access), json!({})).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
        }
        let versions = app.get(&format!("/api/v1/agents/{id}/versions"), Some(&bob.access)).await;
        assert_eq!(versions.json.as_array().map(Vec::len), Some(0), "{}", versions.text);
        // Ada may use all three.
        let own = create(&app, ada, json!({"name": "Mine", "model": "gpt-test",
            "knowledge_base_ids": [base], "plugin_ids": [plugin]})).await;
        assert_eq!(publish(&app, ada, &own, "first").await, 1);

        // An avatar uploaded as a file: Ada's own image is accepted and shown to anyone who
        // sees the card through a signed URL; Bob cannot use her file, nor anyone a text file.
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, image::Rgb([200, 30, 90])))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let upload = |who: &Persona, name: &'static str, content: Vec<u8>| {
            let (app, token) = (&app, who.access.clone());
            async move {
                const B: &str = "skein-agent-avatar-boundary";
                let mut body = format!("--{B}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nagent\r\n\
                    --{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").into_bytes();
                body.extend_from_slice(&content);
                body.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
                let r = app.send(app.client.post(app.url("/api/v1/files")).bearer_auth(&token)
                    .header("content-type", format!("multipart/form-data; boundary={B}")).body(body)).await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
                r.json["id"].as_str().unwrap().to_string()
            }
        };
        let picture = upload(ada, "face.png", png.clone()).await;
        let text = upload(ada, "notes.txt", b"just some words".to_vec()).await;
        let r = app.patch(&format!("/api/v1/agents/{own}"), Some(&ada.access),
            json!({"avatar": format!("file:{text}")})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("avatar")), "{}", r.text);
        let r = app.patch(&format!("/api/v1/agents/{id}"), Some(&bob.access),
            json!({"avatar": format!("file:{picture}")})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("avatar")), "{}", r.text);
        let r = app.patch(&format!("/api/v1/agents/{own}"), Some(&ada.access),
            json!({"avatar": format!("file:{picture}"), "visibility": "public"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(publish(&app, ada, &own, "a face").await, 2);
        let page = app.get(&format!("/api/v1/agents/{own}"), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let url = page.json["avatar_url"].as_str().expect("a signed avatar URL").to_string();
        let path = url.find("/api/").map(|i| &url[i..]).unwrap_or(&url);
        let served = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(served.status(), StatusCode::OK, "{url}");
        assert_eq!(served.bytes().await.unwrap().to_vec(), png, "the avatar's bytes");
        // Bob's copy of the public assistant starts without Ada's file.
        let copy = app.post(&format!("/api/v1/agents/{own}/duplicate"), Some(&bob.access), json!({})).await;
        assert_eq!(copy.status, StatusCode::CREATED, "{}", copy.text);
        assert_eq!((copy.json["avatar"].as_str(), copy.json["avatar_url"].as_str()), (Some(""), None), "{}", copy.text);
    }
}
