//! The built-in code interpreter through the real server: an admin turns it on (limits
//! checked), a user enables it, and the mock model calls `run_code` in a chat. A normal run
//! reads the user's uploaded file and hands back its stdout and the files it wrote (a PNG
//! drawn without any library, stored as the user's file and linked from the answer). Then the
//! escape suite, each attack as the model's own call: a fork bomb, a socket and an HTTP
//! request, `rm -rf /`, an endless loop, a 4 GB allocation, reading the server's data
//! directory and configuration — each a clear result the model reads, the server's files
//! untouched and the server healthy after.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::{Persona, RelayWorld, TestApp, Upstream, on_both_backends};

/// `(event, data)` of a finished SSE body.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let name = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).ok()?))
        })
        .collect()
}

fn find<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|(e, _)| e == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
        .1
}

async fn conversation(app: &TestApp, who: &Persona) -> String {
    let r = app
        .post("/api/v1/chat/conversations", Some(&who.access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// The model calls `run_code` with `arguments`; the tool's result and the finished answer.
async fn call(
    app: &TestApp,
    world: &RelayWorld,
    conversation: &str,
    arguments: Value,
) -> (Value, Value) {
    world
        .upstream
        .set_tool_call(Some("run_code"), Some(&arguments.to_string()));
    let r = app
        .client
        .post(app.url(&format!(
            "/api/v1/chat/conversations/{conversation}/messages"
        )))
        .bearer_auth(&world.user.access)
        .json(&json!({ "content": "run it" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ev = events(&r.text().await.unwrap());
    assert_eq!(find(&ev, "tool_call")["name"], "run_code", "{ev:?}");
    let result = find(&ev, "tool_result").clone();
    let done = find(&ev, "done")["message"].clone();
    assert_eq!(done["status"], "done", "{done}");
    (result, done)
}

/// As [`call`], with the result's content (the JSON the model reads) parsed.
async fn run_code(
    app: &TestApp,
    world: &RelayWorld,
    conversation: &str,
    arguments: Value,
) -> (Value, Value, Value) {
    let (result, done) = call(app, world, conversation, arguments).await;
    let body: Value = serde_json::from_str(result["content"].as_str().unwrap())
        .unwrap_or_else(|_| panic!("the model reads JSON: {result}"));
    (result, body, done)
}

/// The admin turns the code interpreter on with `limits`; the world's user enables it.
async fn turn_on(app: &TestApp, world: &RelayWorld, limits: Value) {
    let r = app
        .put(
            "/api/v1/admin/plugins/settings",
            Some(&world.root.access),
            json!({"search": null, "code": {"enabled": true, "limits": limits}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .put(
            "/api/v1/plugins/builtin-code/preferences",
            Some(&world.user.access),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

const BOUNDARY: &str = "c0debound";

async fn upload(app: &TestApp, who: &Persona, name: &str, content: &[u8]) -> String {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nchat\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/files"))
                .bearer_auth(&who.access)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                )
                .body(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Python that writes a 2×2 red PNG by hand (zlib and struct only: no plotting library).
const DRAW_PNG: &str = r#"
import struct, zlib
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
raw = b''.join(b'\x00' + b'\xff\x00\x00' * 2 for _ in range(2))
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 2, 2, 8, 2, 0, 0, 0)) \
    + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
open('plot.png', 'wb').write(png)
"#;

on_both_backends! {
    async fn a_model_runs_code_on_the_users_file_and_gets_stdout_and_files_back(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;

        // Off until an admin turns it on; the admin sees that the sandbox works here.
        let settings = app.get("/api/v1/admin/plugins/settings", Some(&world.root.access)).await;
        assert_eq!(settings.status, StatusCode::OK, "{}", settings.text);
        assert_eq!(settings.json["code"]["available"], true, "{}", settings.text);
        assert_eq!(settings.json["code"]["enabled"], false);
        assert_eq!(settings.json["code"]["limits"]["memory_mb"], 512);
        let market = app.get("/api/v1/plugins/builtin-code", Some(&world.user.access)).await;
        assert_eq!(market.json["available"], false, "{}", market.text);

        // Limits out of range are refused by name, in both languages.
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "code": {"enabled": true, "limits": {"memory_mb": 64}}})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("code.limits")), "{}", r.text);
        assert!(r.text.contains("memory_mb is 128 to 16384"), "{}", r.text);
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.user.access),
            json!({"search": null, "code": {"enabled": true}})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        turn_on(&app, &world, json!({"cpu_secs": 5, "wall_secs": 10})).await;
        let settings = app.get("/api/v1/admin/plugins/settings", Some(&world.root.access)).await;
        assert_eq!(settings.json["code"]["limits"]["wall_secs"], 10, "{}", settings.text);
        // A later save without `code` keeps it as it is.
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access), json!({"search": null})).await;
        assert_eq!(r.json["code"]["enabled"], true, "{}", r.text);
        let tools = app.get("/api/v1/plugins/tools", Some(&world.user.access)).await;
        let tool = tools.json["items"].as_array().unwrap().iter().find(|t| t["name"] == "run_code").cloned()
            .unwrap_or_else(|| panic!("run_code is offered: {}", tools.text));
        assert_eq!(tool["parameters"]["required"], json!(["code"]));
        assert!(tool["description"].as_str().unwrap().contains("No network"), "{tool}");

        let data = upload(&app, &world.user, "sales.csv", b"region,amount\nnorth,10\nsouth,32\n").await;
        let id = conversation(&app, &world.user).await;
        let code = format!("import csv\nrows = list(csv.DictReader(open('sales.csv')))\nprint('total', sum(int(r['amount']) for r in rows))\nopen('summary.txt', 'w').write('42')\n{DRAW_PNG}");
        let (result, body, done) = run_code(&app, &world, &id, json!({"code": code, "files": [data]})).await;
        assert_eq!(result["is_error"], false, "{result}");
        assert_eq!(body["exit_code"], 0, "{body}");
        assert_eq!(body["stdout"], "total 42\n");
        assert_eq!(body["stderr"], "");
        let files = body["files"].as_array().unwrap();
        let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["plot.png", "summary.txt"], "{body}");
        assert_eq!(files[0]["content_type"], "image/png");

        // The files are the user's own, stored through the File service; another user's id
        // reads as missing.
        let summary = files[1]["file_id"].as_str().unwrap();
        let bytes = app.client.get(app.url(&format!("/api/v1/files/{summary}/content")))
            .bearer_auth(&world.user.access).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(&bytes[..], b"42");
        let other = app.register("someone-else").await;
        assert_eq!(app.get(&format!("/api/v1/files/{summary}"), Some(&other.access)).await.status, StatusCode::NOT_FOUND);

        // The answer keeps the step: the model's input, the JSON result, the image linked.
        let step = &done["tool_calls"][0];
        assert_eq!(step["name"], "run_code", "{done}");
        let linked: Vec<&str> = step["citations"].as_array().unwrap().iter()
            .filter_map(|c| c["reference"]["file_id"].as_str()).collect();
        assert_eq!(linked.len(), 2, "{step}");
        assert!(linked.contains(&files[0]["file_id"].as_str().unwrap()));
        // The model read the same JSON on its next call.
        let sent = world.upstream.requests();
        let last = sent[1]["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["content"], result["content"]);

        // Someone else's file cannot be given to the code.
        let theirs = upload(&app, &other, "theirs.csv", b"a\n1\n").await;
        let (result, _) = call(&app, &world, &id, json!({"code": "print(1)", "files": [theirs]})).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("no file"), "{result}");

        // A language the server cannot run is a clear error.
        let (result, _) = call(&app, &world, &id, json!({"code": "puts 1", "language": "ruby"})).await;
        assert!(result["content"].as_str().unwrap().contains("`ruby` cannot run here"), "{result}");
    }

    async fn the_escape_suite_fails_safely_through_the_chat_and_the_server_stays_healthy(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        turn_on(&app, &world, json!({"cpu_secs": 2, "wall_secs": 4, "memory_mb": 256, "max_processes": 16})).await;
        let id = conversation(&app, &world.user).await;
        let data_dir = app.config.data_dir.clone();
        let canary = data_dir.join("canary.txt");
        std::fs::write(&canary, "untouched").unwrap();
        std::fs::write(data_dir.join("skein.toml"), "[secrets]\nkey = 'do-not-leak'\n").unwrap();

        // A fork bomb: the process limit stops it, the wall limit ends it, nothing lingers.
        let fork_bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError as e:\n        print(e, flush=True)\n";
        let (result, body, _) = run_code(&app, &world, &id, json!({"code": fork_bomb})).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(body["stdout"].as_str().unwrap().contains("Resource temporarily unavailable"), "{body}");
        assert_eq!(body["timed_out"], true, "{body}");
        assert!(body["limit"].as_str().unwrap().contains("wall-time limit of 4 s"), "{body}");

        // A socket and an HTTP request (to this very server): refused, nothing reached.
        let net = format!("import socket, urllib.request\ntry:\n    socket.create_connection(('127.0.0.1', {}), timeout=2)\nexcept OSError as e:\n    print('socket:', e)\nurllib.request.urlopen('{}/readyz', timeout=2)\n",
            app.base.rsplit(':').next().unwrap(), app.base);
        let (result, body, _) = run_code(&app, &world, &id, json!({"code": net})).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(body["stdout"].as_str().unwrap().contains("socket: [Errno 13] Permission denied"), "{body}");
        assert!(body["stderr"].as_str().unwrap().contains("URLError"), "{body}");
        assert_eq!(body["limit"], "The sandbox has no network.", "{body}");

        // 4 GB: a MemoryError at the memory limit.
        let (result, body, _) = run_code(&app, &world, &id, json!({"code": "x = bytearray(4 * 1024 ** 3)\n"})).await;
        assert_eq!(result["is_error"], true);
        assert_eq!(body["exit_code"], 1, "{body}");
        assert!(body["stderr"].as_str().unwrap().contains("MemoryError"), "{body}");
        assert_eq!(body["limit"], "Memory is limited to 256 MiB per process.", "{body}");

        // The server's data directory and configuration, and the machine's secrets: absent.
        let read = format!("import os\nfor p in [{:?}, {:?}, {:?}, '/etc/shadow']:\n    try:\n        print(open(p).read())\n    except OSError as e:\n        print(type(e).__name__, p)\nprint(os.path.exists({:?}))\n",
            data_dir.join("skein.toml").display().to_string(), canary.display().to_string(),
            data_dir.join("skein.db").display().to_string(), data_dir.display().to_string());
        let (result, body, _) = run_code(&app, &world, &id, json!({"code": read})).await;
        assert_eq!(result["is_error"], false, "{result}");
        let stdout = body["stdout"].as_str().unwrap();
        assert_eq!(stdout.matches("FileNotFoundError").count(), 4, "{body}");
        assert!(stdout.ends_with("False\n") && !stdout.contains("do-not-leak"), "{body}");

        // rm -rf /: the sandbox's own throwaway root only. rm walks all of /usr (each entry
        // refused), seconds of CPU on a busy machine: these two runs get more time.
        turn_on(&app, &world, json!({"cpu_secs": 60, "wall_secs": 50, "memory_mb": 256, "max_processes": 16})).await;
        let rm = "import subprocess\nr = subprocess.run(['rm', '-rf', '--no-preserve-root', '/'], capture_output=True, text=True)\nprint('rm', r.returncode, 'Read-only' in r.stderr)\n";
        let (_, body, _) = run_code(&app, &world, &id, json!({"code": rm})).await;
        assert_eq!(body["stdout"], "rm 1 True\n", "{body}");
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "untouched");

        // An endless loop: killed at the CPU limit (well before the wall limit).
        turn_on(&app, &world, json!({"cpu_secs": 1, "wall_secs": 50, "memory_mb": 256, "max_processes": 16})).await;
        let (result, body, _) = run_code(&app, &world, &id, json!({"code": "while True:\n    pass\n"})).await;
        assert_eq!(result["is_error"], true);
        assert_eq!(body["signal"], 24, "{body}");
        assert_eq!(body["limit"], "Stopped at the CPU-time limit of 1 s.", "{body}");

        // The server is healthy: ready, and the next run is normal.
        assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
        let (result, body, _) = run_code(&app, &world, &id, json!({"code": "print(6 * 7)"})).await;
        assert_eq!((result["is_error"].as_bool(), body["stdout"].as_str()), (Some(false), Some("42\n")), "{body}");
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "untouched");
    }

    async fn a_paid_run_is_charged_when_the_code_ran_even_if_it_failed(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        turn_on(&app, &world, json!({"cpu_secs": 5, "wall_secs": 10})).await;
        let r = app.patch("/api/v1/admin/plugins/builtin-code", Some(&world.root.access), json!({"price_per_call": 7})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let id = conversation(&app, &world.user).await;

        // The program ran, printed, then exited with an error: the sandbox's work was done and
        // the model reads the program's own output, so the run is charged.
        let (result, body, _) = run_code(&app, &world, &id, json!({"code": "print('half way')\nraise SystemExit(3)\n"})).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert_eq!((body["exit_code"].as_i64(), body["stdout"].as_str()), (Some(3), Some("half way\n")), "{body}");
        // Refused before anything ran (a language this server lacks): not charged.
        let (result, _) = call(&app, &world, &id, json!({"code": "puts 1", "language": "ruby"})).await;
        assert_eq!(result["is_error"], true, "{result}");

        // Four model calls and one charge of 7.
        let mut records = Vec::new();
        for _ in 0..500 {
            let usage = app.get("/api/v1/billing/usage", Some(&world.user.access)).await.json;
            let quota = app.get("/api/v1/billing/quota", Some(&world.user.access)).await.json;
            records = usage["items"].as_array().cloned().unwrap_or_default();
            if records.len() == 5 && quota["reserved"] == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let charges: Vec<i64> = records.iter().filter(|r| r["model"] == "tool:run_code").map(|r| r["cost"].as_i64().unwrap()).collect();
        assert_eq!(charges, [7], "{records:?}");
        assert_eq!(records.len(), 5, "{records:?}");
    }
}
