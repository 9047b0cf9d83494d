//! The admin runtime report: what the process holds, for admins only.

use reqwest::StatusCode;
use skein_testkit::both_backends;

both_backends! {
    async fn admins_see_what_the_process_holds_and_users_are_refused(app) {
        let (root, admin) = app.root_and_admin().await;
        for who in [&root, &admin] {
            let r = app.get("/api/v1/admin/system/runtime", Some(&who.access)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let rss = r.json["rss_bytes"].as_u64().unwrap();
            assert!(rss > 1_000_000, "a process holds more than a megabyte: {rss}");
            assert!(r.json["rss_anon_bytes"].as_u64().unwrap() > 0);
            assert!(r.json["open_fds"].as_u64().unwrap() > 3, "stdio and a listener at least");
            assert!(r.json["threads"].as_u64().unwrap() >= 1);
            assert!(r.json["tasks"].as_u64().unwrap() >= 1, "the sweepers run as tasks");
            let gauges = &r.json["gauges"];
            assert!(gauges["db.pool.size"].as_u64().unwrap() >= 1, "{}", r.text);
            assert!(gauges["db.pool.idle"].as_u64().is_some());
            // SQLite's own heap (schemas, page caches, statements) is counted on SQLite only.
            let sqlite = gauges["db.sqlite.memory_bytes"].as_u64();
            match app.backend {
                skein_testkit::Backend::Sqlite => {
                    assert!(sqlite.unwrap() > 10_000, "{}", r.text);
                    assert!(gauges["db.sqlite.memory_highwater_bytes"].as_u64() >= sqlite);
                }
                skein_testkit::Backend::Postgres => assert!(sqlite.is_none(), "{}", r.text),
            }
            // The sign-ins above went through the limiter and filled the session cache.
            assert!(gauges["limiter.keys"].as_u64().unwrap() >= 1, "{}", r.text);
            for name in ["user.session_cache", "relay.key_cache", "relay.owner_cache",
                "relay.group_cache", "relay.renewals", "relay.breakers", "relay.tasks",
                "chat.running_answers", "file.jobs", "text.tokenizer_bytes"] {
                assert!(gauges[name].as_u64().is_some(), "{name} missing: {}", r.text);
            }
            // This test binary allocates with the system allocator, which keeps no statistics
            // (the real binary's jemalloc figures: cli::the_binary_reports_its_allocator...).
            assert!(r.json["allocator"].is_null(), "{}", r.text);
        }

        let ada = app.register("ada").await;
        let zh = app.send(app.client.get(app.url("/api/v1/admin/system/runtime"))
            .bearer_auth(&ada.access).header("accept-language", "zh-CN")).await;
        assert_eq!((zh.status, zh.error_code()), (StatusCode::FORBIDDEN, "forbidden"));
        assert_eq!(zh.json["error"]["message"], "你没有执行此操作的权限。");
        assert!(zh.json.get("gauges").is_none());
        let en = app.get("/api/v1/admin/system/runtime", Some(&ada.access)).await;
        assert_eq!(en.json["error"]["message"], "You do not have permission to do this.");
        assert_eq!(app.get("/api/v1/admin/system/runtime", None).await.status, StatusCode::UNAUTHORIZED);

        let doc = app.get("/api/openapi.json", None).await;
        let op = &doc.json["paths"]["/api/v1/admin/system/runtime"]["get"];
        assert!(op["responses"]["403"].is_object(), "documented: {op}");
    }
}
