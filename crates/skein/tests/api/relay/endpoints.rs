//! The OpenAI routes besides chat, end to end through a mock upstream: embeddings (float and
//! base64), legacy completions (whole and streamed), image generation, audio transcription and
//! speech, and rerank — each relayed with its model mapped, billed exactly, refused for free,
//! and failed over to a second channel when the first answers 5xx.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::Fault;
use skein_testkit::mock_openai::endpoints::{
    checksum, completion_of, embedding_base64, embedding_of, input_tokens, rerank_tokens,
    speech_audio, transcript_of,
};
use skein_testkit::{
    Persona, Price, RelayWorld, Resp, TestApp, Upstream, WorldSpec, both_backends,
};

/// Prices: (model, input per Mtok, output per Mtok, per call).
const PRICES: &[(&str, i64, i64, i64)] = &[
    ("emb-test", 1_000_000, 0, 0),
    ("text-test", 2_000_000, 6_000_000, 0),
    ("img-test", 0, 0, 1_000),
    ("whisper-test", 0, 0, 300),
    // Speech: 3 units per input character, plus 5 per call.
    ("tts-test", 3_000_000, 0, 5),
    ("rerank-test", 1_000_000, 0, 2),
    // Upstream gpt-4o-transcribe and gpt-image-1 report token usage.
    ("stt-tokens", 1_000_000, 2_000_000, 0),
    ("img-tokens", 1_000_000, 1_000_000, 100),
];
const START: i64 = 1_000_000;

/// The upstream names of the mapped models.
const MAPPING: &[(&str, &str)] = &[
    ("emb-test", "text-embedding-upstream"),
    ("whisper-test", "whisper-upstream"),
    ("text-test", "text-upstream"),
    ("stt-tokens", "gpt-4o-transcribe"),
    ("img-tokens", "gpt-image-1"),
];

/// An OpenAI channel serving every model of [`PRICES`] at those prices, and a user with
/// [`START`] and a key.
async fn setup(app: &TestApp) -> RelayWorld {
    let mut world = WorldSpec::new(Upstream::OpenAi).balance(START);
    for (model, input, output, per_call) in PRICES {
        let upstream = MAPPING.iter().find(|m| m.0 == *model).map(|m| m.1);
        world = world.model(model, upstream).price(
            model,
            Price {
                per_call: *per_call,
                ..Price::tokens(*input, *output)
            },
        );
    }
    world.build(app).await
}

async fn call(app: &TestApp, key: &str, path: &str, body: Value) -> Resp {
    app.send(app.client.post(app.url(path)).bearer_auth(key).json(&body))
        .await
}

/// The balance once every hold is settled or released (settles run just after the answer).
async fn balance(app: &TestApp, who: &Persona) -> i64 {
    for _ in 0..500 {
        let q = app
            .get("/api/v1/billing/quota", Some(&who.access))
            .await
            .json;
        if q["reserved"] == 0 {
            return q["balance"].as_i64().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("holds were never settled");
}

/// The newest usage record (after waiting for settles).
async fn last_usage(app: &TestApp, who: &Persona) -> Value {
    balance(app, who).await;
    let usage = app.get("/api/v1/billing/usage", Some(&who.access)).await;
    usage.json["items"][0].clone()
}

const BOUNDARY: &str = "skein-test-boundary-7d3f";

/// A multipart form with text fields and an optional audio file.
fn form(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((filename, data)) = file {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: audio/mpeg\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// Audio-like bytes: not UTF-8, with CRLF and dashes inside, as real files have.
pub(crate) fn audio(len: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    if len > 64 {
        data[10..26].copy_from_slice(b"\r\n--skein-test\r\n");
    }
    data
}

async fn upload(app: &TestApp, key: &str, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
    // Each upload on a connection of its own: a server that refuses an oversized body answers
    // before reading it and closes the connection, and the client, still writing, can see the
    // reset before the answer. That is a race in the transport, not in the answer, so an
    // upload cut off that way is sent again (a few times at most).
    for _ in 0..5 {
        let client = reqwest::Client::new();
        let sent = client
            .post(app.url(path))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Resp {
                status,
                headers,
                json,
                text,
            };
        }
    }
    panic!("the upload never got an answer");
}

both_backends! {
    async fn embeddings_pass_through_untouched_and_bill_the_upstreams_tokens(app) {
        let s = setup(&app).await;
        let input = json!(["the quick brown fox", "jumps"]);
        let r = call(&app, &s.key, "/v1/embeddings", json!({"model": "emb-test", "input": input})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["object"], "list");
        for (i, item) in input.as_array().unwrap().iter().enumerate() {
            let floats: Vec<f32> = r.json["data"][i]["embedding"].as_array().unwrap().iter()
                .map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(floats, embedding_of(item, 8));
            assert_eq!(r.json["data"][i]["index"], i);
        }
        assert_eq!(r.json["usage"]["prompt_tokens"], 5);
        let sent = &s.upstream.requests()[0];
        assert_eq!(sent["model"], "text-embedding-upstream", "the model is mapped");
        assert_eq!(balance(&app, &s.user).await, START - 5);
        let record = last_usage(&app, &s.user).await;
        assert_eq!((record["model"].as_str(), record["cost"].as_i64(), record["prompt_tokens"].as_i64()),
            (Some("emb-test"), Some(5), Some(5)));

        // base64 (the official SDKs' default) and dimensions reach the upstream and come back
        // as the upstream wrote them.
        let r = call(&app, &s.key, "/v1/embeddings",
            json!({"model": "emb-test", "input": "one two three", "encoding_format": "base64", "dimensions": 4})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["data"][0]["embedding"], embedding_base64(&embedding_of(&json!("one two three"), 4)));
        let sent = s.upstream.requests().last().unwrap().clone();
        assert_eq!((sent["encoding_format"].as_str(), sent["dimensions"].as_i64()), (Some("base64"), Some(4)));
        // Token arrays count as they are.
        let r = call(&app, &s.key, "/v1/embeddings", json!({"model": "emb-test", "input": [[1, 2, 3], [4, 5]]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["data"].as_array().unwrap().len(), 2);
        assert_eq!(balance(&app, &s.user).await, START - 5 - 3 - input_tokens(&json!([[1, 2, 3], [4, 5]])));
    }

    async fn completions_whole_and_streamed_are_billed_from_usage(app) {
        let s = setup(&app).await;
        let prompt = "say this back";
        let reply = completion_of(prompt);
        let cost = 3 * 2 + reply.split_whitespace().count() as i64 * 6;
        let r = call(&app, &s.key, "/v1/completions", json!({"model": "text-test", "prompt": prompt, "max_tokens": 20})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["object"], "text_completion");
        assert_eq!(r.json["choices"][0]["text"], reply.as_str());
        assert_eq!(s.upstream.requests()[0]["model"], "text-upstream");
        assert_eq!(balance(&app, &s.user).await, START - cost);

        let r = call(&app, &s.key, "/v1/completions", json!({"model": "text-test", "prompt": prompt, "stream": true})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let events: Vec<&str> = r.text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(*events.last().unwrap(), "data: [DONE]");
        let text: String = events.iter().filter_map(|e| e.strip_prefix("data: ")).filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .map(|v| v["choices"][0]["text"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(text, reply);
        assert!(!r.text.contains("\"usage\""), "usage the client did not ask for leaked: {}", r.text);
        assert_eq!(s.upstream.requests()[1]["stream_options"]["include_usage"], true);
        assert_eq!(balance(&app, &s.user).await, START - 2 * cost);
        let record = last_usage(&app, &s.user).await;
        assert_eq!((record["stream"].as_i64(), record["status"].as_str()), (Some(1), Some("ok")));

        let r = call(&app, &s.key, "/v1/completions", json!({"model": "text-test", "prompt": prompt, "stream": true,
            "stream_options": {"include_usage": true}})).await;
        let usage = r.text.split("\n\n").find(|e| e.contains("\"usage\":{")).expect("a usage chunk");
        let v: Value = serde_json::from_str(usage.trim_start_matches("data: ")).unwrap();
        assert_eq!((v["choices"].clone(), v["usage"]["prompt_tokens"].as_i64()), (json!([]), Some(3)));

        // A stream that dies is billed for what was delivered and the client is told.
        s.upstream.fail_next(Fault::DieAfter(2));
        let r = call(&app, &s.key, "/v1/completions", json!({"model": "text-test", "prompt": "one two three four five", "stream": true})).await;
        assert!(r.text.contains("\"code\":\"upstream_error\""), "{}", r.text);
        let record = last_usage(&app, &s.user).await;
        assert_eq!(record["status"], "partial");
        assert!(record["cost"].as_i64().unwrap() > 0);
    }

    async fn images_are_billed_per_image(app) {
        let s = setup(&app).await;
        let r = call(&app, &s.key, "/v1/images/generations", json!({"model": "img-test", "prompt": "a red fox", "n": 2, "size": "256x256"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let data = r.json["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[1]["url"], "https://images.mock.invalid/1.png");
        assert_eq!(s.upstream.requests()[0]["size"], "256x256");
        assert_eq!(balance(&app, &s.user).await, START - 2 * 1_000);
        let b64 = call(&app, &s.key, "/v1/images/generations", json!({"model": "img-test", "prompt": "x", "response_format": "b64_json"})).await;
        assert!(b64.json["data"][0]["b64_json"].as_str().is_some_and(|d| !d.is_empty()));
        let record = last_usage(&app, &s.user).await;
        assert_eq!((record["model"].as_str(), record["cost"].as_i64()), (Some("img-test"), Some(1_000)));
        assert_eq!(balance(&app, &s.user).await, START - 3 * 1_000);
        // gpt-image-1 reports tokens: 3 prompt words in, 1,000 out, on top of the image's price.
        let r = call(&app, &s.key, "/v1/images/generations", json!({"model": "img-tokens", "prompt": "a red fox"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.json["data"][0]["b64_json"].is_string());
        let record = last_usage(&app, &s.user).await;
        assert_eq!((record["cost"].as_i64(), record["prompt_tokens"].as_i64(), record["completion_tokens"].as_i64()),
            (Some(100 + 3 + 1_000), Some(3), Some(1_000)));

        // A client that gives up while the image is drawn is still billed for it, and its hold
        // does not linger until it expires.
        let before = balance(&app, &s.user).await;
        // Generous margins: on a loaded machine the request must reach the upstream before
        // the client gives up (a client gone before that is simply never billed).
        s.upstream.fail_next(Fault::Delay(std::time::Duration::from_millis(3_000)));
        let gave_up = app.client.post(app.url("/v1/images/generations")).bearer_auth(&s.key)
            .timeout(std::time::Duration::from_millis(1_000))
            .json(&json!({"model": "img-test", "prompt": "slow"})).send().await;
        assert!(gave_up.is_err(), "the client timed out");
        let reserved = app.get("/api/v1/billing/quota", Some(&s.user.access)).await.json["reserved"].as_i64();
        assert_eq!(reserved, Some(1_000), "held while the upstream works");
        assert_eq!(balance(&app, &s.user).await, before - 1_000);
    }

    async fn transcriptions_pass_the_form_through_and_bill_per_call(app) {
        let s = setup(&app).await;
        // 3 MB: over the server's 2 MB JSON limit, within the 25 MB audio limit.
        let file = audio(3 * 1024 * 1024);
        let (content_type, body) = form(&[("model", "whisper-test"), ("language", "en")], Some(("talk.mp3", &file)));
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["text"], transcript_of("talk.mp3", &file));
        let sent = &s.upstream.requests()[0];
        assert_eq!(sent["model"], "whisper-upstream", "the model field is mapped");
        assert_eq!(sent["language"], "en");
        assert_eq!(sent["file_len"], file.len());
        assert_eq!(sent["file_checksum"], checksum(&file).to_string(), "the file arrives byte for byte");
        assert_eq!(balance(&app, &s.user).await, START - 300);

        for (format, expect) in [("text", "text/plain"), ("verbose_json", "application/json"), ("srt", "text/plain")] {
            let (content_type, body) = form(&[("model", "whisper-test"), ("response_format", format)], Some(("a.wav", b"RIFF....")));
            let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
            assert_eq!(r.status, StatusCode::OK, "{format}: {}", r.text);
            assert!(r.header("content-type").unwrap().starts_with(expect), "{format}");
            assert!(r.text.contains(&transcript_of("a.wav", b"RIFF....")), "{format}: {}", r.text);
        }
        let (content_type, body) = form(&[("model", "whisper-test")], Some(("a.wav", b"RIFF")));
        let r = upload(&app, &s.key, "/v1/audio/translations", &content_type, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(balance(&app, &s.user).await, START - 5 * 300);
        let record = last_usage(&app, &s.user).await;
        assert_eq!((record["model"].as_str(), record["cost"].as_i64()), (Some("whisper-test"), Some(300)));

        // gpt-4o-transcribe reports tokens: 10 KiB of audio is 10 in, one per transcript word out.
        let words = transcript_of("b.mp3", &audio(10 * 1024)).split_whitespace().count() as i64;
        let (content_type, body) = form(&[("model", "stt-tokens")], Some(("b.mp3", &audio(10 * 1024))));
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["usage"]["input_tokens"], 10);
        let record = last_usage(&app, &s.user).await;
        assert_eq!((record["cost"].as_i64(), record["prompt_tokens"].as_i64()), (Some(10 + words * 2), Some(10)));
        // A streamed transcription is refused before anything is held or sent.
        let (content_type, body) = form(&[("model", "stt-tokens"), ("stream", "true")], Some(("b.mp3", b"x")));
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("stream_not_supported")));
        assert_eq!(s.upstream.requests().len(), 6);
    }

    async fn speech_streams_the_audio_and_bills_per_character(app) {
        let s = setup(&app).await;
        let input = "Hello from Skein, 你好";
        let r = app.send(app.client.post(app.url("/v1/audio/speech")).bearer_auth(&s.key)
            .json(&json!({"model": "tts-test", "input": input, "voice": "alloy"}))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("audio/mpeg"));
        let bytes = app.client.post(app.url("/v1/audio/speech")).bearer_auth(&s.key)
            .json(&json!({"model": "tts-test", "input": input, "voice": "alloy", "response_format": "wav"}))
            .send().await.unwrap().bytes().await.unwrap();
        assert_eq!(bytes.as_ref(), speech_audio(input, "wav").as_slice());
        let chars = input.chars().count() as i64;
        assert_eq!(balance(&app, &s.user).await, START - 2 * (chars * 3 + 5));
        let record = last_usage(&app, &s.user).await;
        assert_eq!((record["prompt_tokens"].as_i64(), record["stream"].as_i64()), (Some(chars), Some(1)));
    }

    async fn rerank_bills_usage_tokens_or_else_per_call(app) {
        let s = setup(&app).await;
        let documents = json!(["the fox is red", "a blue whale", "red fox dens"]);
        let r = call(&app, &s.key, "/v1/rerank", json!({"model": "rerank-test", "query": "red fox", "documents": documents, "top_n": 2})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let results = r.json["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!((results[0]["index"].as_i64(), results[1]["index"].as_i64()), (Some(0), Some(2)));
        let tokens = rerank_tokens("red fox", documents.as_array().unwrap());
        assert_eq!(r.json["usage"]["total_tokens"], tokens);
        assert_eq!(balance(&app, &s.user).await, START - (tokens + 2));
        // An upstream that reports no tokens (Cohere's shape): the per-call price alone.
        s.upstream.set_rerank_usage(false);
        let r = call(&app, &s.key, "/v1/rerank", json!({"model": "rerank-test", "query": "red fox", "documents": documents})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(balance(&app, &s.user).await, START - (tokens + 2) - 2);
    }

    async fn an_unknown_model_is_not_found_on_every_route_in_its_clients_shape(app) {
        // One rule for every route (OpenAI's): a model nobody serves is 404 model_not_found,
        // before any hold; Anthropic and Gemini clients hear it in their own error shapes.
        let s = setup(&app).await;
        let before = balance(&app, &s.user).await;
        let openai: [(&str, Value); 8] = [
            ("/v1/chat/completions", json!({"messages": [{"role": "user", "content": "x"}]})),
            ("/v1/chat/completions", json!({"stream": true, "messages": [{"role": "user", "content": "x"}]})),
            ("/v1/completions", json!({"prompt": "x"})),
            ("/v1/completions", json!({"prompt": "x", "stream": true})),
            ("/v1/embeddings", json!({"input": "x"})),
            ("/v1/images/generations", json!({"prompt": "x"})),
            ("/v1/audio/speech", json!({"input": "x", "voice": "alloy"})),
            ("/v1/rerank", json!({"query": "x", "documents": ["y"]})),
        ];
        for (path, mut body) in openai {
            body["model"] = json!("no-such-model");
            let r = call(&app, &s.key, path, body).await;
            assert_eq!(
                (r.status, r.json["error"]["code"].as_str(), r.json["error"]["type"].as_str()),
                (StatusCode::NOT_FOUND, Some("model_not_found"), Some("not_found_error")),
                "{path}: {}", r.text
            );
        }
        let (content_type, body) = form(&[("model", "no-such-model")], Some(("a.mp3", b"x")));
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")), "{}", r.text);
        let anthropic = json!({"model": "no-such-model", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
        for path in ["/v1/messages", "/v1/messages/count_tokens"] {
            let r = app.send(app.client.post(app.url(path)).header("x-api-key", &s.key).json(&anthropic)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
            assert_eq!((r.json["type"].as_str(), r.json["error"]["type"].as_str()), (Some("error"), Some("not_found_error")), "{path}: {}", r.text);
        }
        for action in ["generateContent", "streamGenerateContent?alt=sse"] {
            let r = app.send(app.client.post(app.url(&format!("/v1beta/models/no-such-model:{action}")))
                .header("x-goog-api-key", &s.key)
                .json(&json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]}))).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{action}: {}", r.text);
            assert_eq!((r.json["error"]["code"].as_i64(), r.json["error"]["status"].as_str()), (Some(404), Some("NOT_FOUND")), "{action}: {}", r.text);
        }
        assert_eq!(balance(&app, &s.user).await, before, "refused requests are free");
        assert!(s.upstream.requests().is_empty(), "nothing reached the upstream");
    }

    async fn refusals_are_clear_and_cost_nothing(app) {
        let s = setup(&app).await;
        let routes: [(&str, Value); 6] = [
            ("/v1/embeddings", json!({"input": "x"})),
            ("/v1/completions", json!({"prompt": "x"})),
            ("/v1/images/generations", json!({"prompt": "x"})),
            ("/v1/audio/speech", json!({"input": "x", "voice": "alloy"})),
            ("/v1/rerank", json!({"query": "x", "documents": ["y"]})),
            ("/v1/embeddings", json!({"input": ["x"], "encoding_format": "float"})),
        ];
        let narrow = app.api_key_with(&s.user, "narrow", json!({"allowed_models": ["emb-test"]})).await;
        let broke = app.register("bob").await;
        let broke_key = app.api_key(&broke, "b").await;
        let models = ["emb-test", "text-test", "img-test", "tts-test", "rerank-test", "emb-test"];
        for ((path, body), model) in routes.iter().zip(models) {
            let mut unknown = body.clone();
            unknown["model"] = json!("no-such-model");
            let r = call(&app, &s.key, path, unknown).await;
            assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")), "{path}: {}", r.text);
            assert_eq!(r.json["error"]["type"], "not_found_error", "OpenAI's error shape on {path}");
            let mut known = body.clone();
            known["model"] = json!(model);
            if model != "emb-test" {
                let r = call(&app, &narrow, path, known.clone()).await;
                assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("model_not_allowed")), "{path}");
            }
            let r = call(&app, &broke_key, path, known).await;
            assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("insufficient_quota")), "{path}: {}", r.text);
            let malformed = app.send(app.client.post(app.url(path)).bearer_auth(&s.key).header("content-type", "application/json").body("{nope")).await;
            assert_eq!((malformed.status, malformed.json["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")), "{path}");
            let r = call(&app, &s.key, path, json!({"model": model})).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} without its input: {}", r.text);
            assert!(r.json["error"]["code"].as_str().unwrap().starts_with("invalid_"), "{path}: {}", r.text);
        }
        let bad_format = call(&app, &s.key, "/v1/embeddings", json!({"model": "emb-test", "input": "x", "encoding_format": "hex"})).await;
        assert_eq!(bad_format.json["error"]["code"], "invalid_encoding_format");

        // Audio: not a form, a form without a file, a broken form, a file over 25 MB.
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", "application/json", b"{}".to_vec()).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
        let (content_type, body) = form(&[("model", "whisper-test")], None);
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_file")));
        let (content_type, _) = form(&[], None);
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, b"--nope".to_vec()).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_form")));
        let (content_type, body) = form(&[("model", "no-such-model")], Some(("a.mp3", b"x")));
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let (content_type, body) = form(&[("model", "whisper-test")], Some(("big.mp3", &audio(26 * 1024 * 1024))));
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
        assert_eq!(r.json["error"]["code"], "file_too_large");
        assert!(r.json["error"]["message"].as_str().unwrap().contains("25 MB"));
        // JSON routes keep the server's own body limit.
        let r = call(&app, &s.key, "/v1/embeddings", json!({"model": "emb-test", "input": "x ".repeat(1_500_000)})).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

        // The upstream's own refusal reaches the client as written, for free.
        let r = call(&app, &s.key, "/v1/audio/speech", json!({"model": "tts-test", "input": "no voice"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json["error"]["message"], "'input' and 'voice' are required.");

        assert_eq!(balance(&app, &s.user).await, START, "refused requests are free");
        assert_eq!(balance(&app, &broke).await, 0);
        assert_eq!(s.upstream.requests().len(), 1, "only the speech request without a voice reached the upstream");
        let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
        assert_eq!(usage.json["items"], json!([]));
    }

    async fn upstream_failures_move_to_the_next_channel(app) {
        let s = setup(&app).await;
        let models: Vec<&str> = PRICES.iter().map(|p| p.0).collect();
        let (backup, backup_id) = s.add_backup(&app, "sk-upstream-backup", &models, 0).await;
        s.upstream.fail_next(Fault::Status(503));
        let r = call(&app, &s.key, "/v1/embeddings", json!({"model": "emb-test", "input": "a b"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(backup.requests()[0]["model"], "emb-test", "no mapping on the backup");
        let record = last_usage(&app, &s.user).await;
        assert_eq!((record["channel_id"].as_str(), record["cost"].as_i64()), (Some(backup_id.as_str()), Some(2)));

        s.upstream.fail_next(Fault::Status(500));
        let (content_type, body) = form(&[("model", "whisper-test")], Some(("a.mp3", &audio(1000))));
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sent = backup.requests()[1].clone();
        assert_eq!((sent["model"].as_str(), sent["file_checksum"].as_str()), (Some("whisper-test"), Some(checksum(&audio(1000)).to_string().as_str())));

        s.upstream.fail_next(Fault::Status(429));
        let r = call(&app, &s.key, "/v1/images/generations", json!({"model": "img-test", "prompt": "x"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(backup.requests().len(), 3);
        let before = balance(&app, &s.user).await;
        assert_eq!(before, START - 2 - 300 - 1_000);

        // Every channel failing: 502 in OpenAI's shape, nothing charged.
        s.upstream.fail_next(Fault::Status(500));
        backup.fail_next(Fault::Status(502));
        let r = call(&app, &s.key, "/v1/rerank", json!({"model": "rerank-test", "query": "q", "documents": ["d"]})).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert_eq!((r.json["error"]["code"].as_str(), r.json["error"]["type"].as_str()), (Some("upstream_unavailable"), Some("server_error")));
        assert_eq!(balance(&app, &s.user).await, before);

        // A rejected upstream key takes the channel out of rotation; the backup answers.
        let primary = app.get("/api/v1/channels", Some(&s.root.access)).await.json.as_array().unwrap().iter()
            .find(|c| c["name"] == "primary").unwrap()["id"].as_str().unwrap().to_string();
        s.upstream.revoke_key(true);
        let r = call(&app, &s.key, "/v1/completions", json!({"model": "text-test", "prompt": "hi"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let channel = app.get(&format!("/api/v1/channels/{primary}"), Some(&s.root.access)).await;
        assert_eq!(channel.json["status"], "auto_disabled", "{}", channel.text);
        let served = s.upstream.requests().len();
        assert_eq!(call(&app, &s.key, "/v1/embeddings", json!({"model": "emb-test", "input": "x"})).await.status, StatusCode::OK);
        assert_eq!(s.upstream.requests().len(), served, "the disabled channel gets no traffic");
    }
}

/// Starts Skein with the endpoint setup, runs `tests/sdk/<script>` with the Python that has
/// `module`, and answers the JSON it printed with the setup (for the upstream's record).
async fn run_sdk(script: &str, module: &str) -> (Value, TestApp, RelayWorld) {
    let python = crate::relay::sdk::python();
    let check = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import {module}: run ./scripts/test (it installs the SDKs) or set SKEIN_TEST_PYTHON"
    );
    let app = TestApp::spawn(skein_testkit::Backend::Sqlite).await;
    let s = setup(&app).await;
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .env("BASE", &app.base)
        .env("KEY", &s.key)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = serde_json::from_str(stdout.trim()).expect("the script prints JSON");
    (seen, app, s)
}

/// The official OpenAI Python SDK on these routes: what matters is what it parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_parses_every_endpoint() {
    let (seen, app, s) = run_sdk("openai_endpoints_sdk.py", "openai").await;

    // The SDK asked for base64 and decoded it into exactly the mock's floats.
    assert_eq!(s.upstream.requests()[0]["encoding_format"], "base64");
    for (i, item) in ["the quick brown fox", "jumps"].iter().enumerate() {
        let expected: Vec<f64> = embedding_of(&json!(item), 8)
            .into_iter()
            .map(f64::from)
            .collect();
        let parsed: Vec<f64> = seen["embeddings"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(parsed, expected, "embedding {i}");
    }
    assert_eq!(seen["embedding_tokens"], 5);
    let float: Vec<f64> = embedding_of(&json!("one two"), 4)
        .into_iter()
        .map(f64::from)
        .collect();
    assert_eq!(seen["embedding_float"], json!(float));

    let audio: Vec<u8> = (0..40_000usize).map(|i| (i * 7 % 251) as u8).collect();
    let transcript = transcript_of("talk.mp3", &audio);
    assert_eq!(seen["transcript"], transcript.as_str());
    assert_eq!(
        seen["transcript_text"].as_str().map(str::trim_end),
        Some(transcript.as_str())
    );
    assert_eq!(seen["transcript_verbose"]["text"], transcript.as_str());
    assert_eq!(seen["transcript_verbose"]["language"], "english");
    let uploads: Vec<Value> = s
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.get("file_checksum").is_some())
        .collect();
    assert_eq!(uploads.len(), 3);
    assert!(
        uploads
            .iter()
            .all(|u| u["file_checksum"].as_str() == Some(checksum(&audio).to_string().as_str())),
        "the SDK's upload reached the upstream byte for byte"
    );

    assert_eq!(
        seen["image_urls"],
        json!([
            "https://images.mock.invalid/0.png",
            "https://images.mock.invalid/1.png"
        ])
    );
    assert_eq!(
        seen["speech_len"].as_u64(),
        Some(speech_audio("hello there", "wav").len() as u64)
    );
    assert_eq!(seen["speech_head"], "RIFF");
    assert_eq!(seen["completion"], completion_of("say this back").as_str());
    assert_eq!(seen["completion_tokens"], 4);
    assert_eq!(seen["unknown"]["status"], 404);
    assert_eq!(seen["unknown"]["code"], "model_not_found");
    // Every call the SDK made was billed, to the unit.
    let spent = START - balance(&app, &s.user).await;
    let expected = 5 + 2 // embeddings
        + 3 * 300 // transcriptions
        + 2 * 1_000 // images
        + ("hello there".len() as i64 * 3 + 5) // speech
        + (3 * 2 + 4 * 6); // completion
    assert_eq!(spent, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_count_tokens_answers_a_free_estimate() {
    let app = TestApp::spawn(skein_testkit::Backend::Sqlite).await;
    let s = setup(&app).await;
    let count = |key: String, body: Value| {
        let app = &app;
        async move {
            app.send(
                app.client
                    .post(app.url("/v1/messages/count_tokens"))
                    .header("x-api-key", key)
                    .header("anthropic-version", "2023-06-01")
                    .json(&body),
            )
            .await
        }
    };
    let short = count(
        s.key.clone(),
        json!({"model": "text-test", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(short.status, StatusCode::OK, "{}", short.text);
    let long = count(s.key.clone(), json!({"model": "text-test", "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a much longer question ".repeat(50)}]}]})).await;
    let (short, long) = (
        short.json["input_tokens"].as_i64().unwrap(),
        long.json["input_tokens"].as_i64().unwrap(),
    );
    assert!(short > 0 && long > short, "{short} {long}");
    // Counted with the o200k tokenizer: the system prompt, and the message with its framing.
    let tokens = |t: &str| skein_text::tokens::count_tokens(t) as i64;
    assert_eq!(
        long,
        tokens("be brief") + 4 + tokens(&"a much longer question ".repeat(50))
    );

    let unknown = count(s.key.clone(), json!({"model": "nope", "messages": []})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.json["type"], "error",
        "Anthropic's error shape: {}",
        unknown.text
    );
    assert_eq!(unknown.json["error"]["type"], "not_found_error");
    let missing = count(s.key.clone(), json!({"model": "text-test"})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json["error"]["type"], "invalid_request_error");
    assert_eq!(balance(&app, &s.user).await, START, "counting is free");
    assert!(s.upstream.requests().is_empty(), "no upstream is called");

    // Free, so limited on its own: a key may count 100 times a minute (2 were used above; the
    // budget also refills by one every 0.6 s while this runs).
    let big = json!({"model": "text-test", "messages": [{"role": "user", "content": "word ".repeat(20_000)}]});
    let mut limited = None;
    let started = std::time::Instant::now();
    for i in 0..200 {
        let r = count(s.key.clone(), big.clone()).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let (at, r) = limited.expect("counting was never limited");
    // 98 left, plus one for each 0.6 s the loop took (a loaded machine counts slowly).
    let refilled = (started.elapsed().as_secs_f64() / 0.6).ceil() as usize;
    assert!(
        (90..=99 + refilled).contains(&at),
        "limited after {at} counts in {:?}",
        started.elapsed()
    );
    assert_eq!(r.json["error"]["type"], "rate_limit_error", "{}", r.text);
    assert!(r.headers.get("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_tokens_per_minute_cover_embeddings_too() {
    let app = TestApp::spawn(skein_testkit::Backend::Sqlite).await;
    let s = setup(&app).await;
    let key = app
        .api_key_with(&s.user, "tpm", json!({"tpm_limit": 5}))
        .await;
    let ask = json!({"model": "emb-test", "input": "one two three four five"});
    assert_eq!(
        call(&app, &key, "/v1/embeddings", ask.clone()).await.status,
        StatusCode::OK
    );
    balance(&app, &s.user).await;
    let limited = call(&app, &key, "/v1/embeddings", ask).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(limited.json["error"]["code"], "tokens_per_minute_exceeded");
    assert_eq!(
        s.upstream.requests().len(),
        1,
        "the limited request never reached the upstream"
    );
}

/// The official Anthropic Python SDK parses `count_tokens`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_sdk_counts_tokens() {
    let (seen, app, s) = run_sdk("anthropic_count_tokens_sdk.py", "anthropic").await;
    // "be brief" + one message (4 for its framing) of "hello from claude sdk", by the tokenizer.
    let tokens = |t: &str| skein_text::tokens::count_tokens(t) as i64;
    assert_eq!(
        seen["input_tokens"],
        tokens("be brief") + 4 + tokens("hello from claude sdk")
    );
    assert_eq!(seen["unknown"]["status"], 404);
    assert_eq!(seen["unknown"]["type"], "not_found_error");
    assert_eq!(balance(&app, &s.user).await, START, "counting is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_open_the_circuit_for_these_routes_too() {
    let app = TestApp::spawn(skein_testkit::Backend::Sqlite).await;
    let s = setup(&app).await;
    let models: Vec<&str> = PRICES.iter().map(|p| p.0).collect();
    let (backup, _) = s.add_backup(&app, "sk-upstream-backup", &models, 0).await;
    for _ in 0..5 {
        s.upstream.fail_next(Fault::Status(503));
    }
    let ask = json!({"model": "emb-test", "input": "hi"});
    for _ in 0..5 {
        assert_eq!(
            call(&app, &s.key, "/v1/embeddings", ask.clone())
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(s.upstream.requests().len(), 5);
    // The primary rests: the next calls, on any route, go straight to the backup.
    assert_eq!(
        call(&app, &s.key, "/v1/embeddings", ask).await.status,
        StatusCode::OK
    );
    let r = call(
        &app,
        &s.key,
        "/v1/rerank",
        json!({"model": "rerank-test", "query": "q", "documents": ["d"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        s.upstream.requests().len(),
        5,
        "an open circuit keeps traffic off the primary"
    );
    assert_eq!(backup.requests().len(), 7);
}

both_backends! {
    async fn an_audio_form_with_a_duplicated_or_unknown_field_is_refused(app) {
        let s = setup(&app).await;
        // Two `model` parts: the relay would price one and a vendor might read the other.
        for (fields, field) in [
            (vec![("model", "whisper-test"), ("model", "stt-tokens")], "model"),
            (vec![("model", "whisper-test"), ("x_vendor_only", "1")], "x_vendor_only"),
            (vec![("model", "whisper-test"), ("language", "en"), ("language", "fr")], "language"),
        ] {
            let (content_type, body) = form(&fields, Some(("a.mp3", b"ID3")));
            let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
            assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_form")), "{}", r.text);
            assert!(r.json["error"]["message"].as_str().unwrap().contains(field), "{}", r.text);
        }
        // A transcription-only field is unknown to translations.
        let (content_type, body) = form(&[("model", "whisper-test"), ("language", "en")], Some(("a.mp3", b"ID3")));
        let r = upload(&app, &s.key, "/v1/audio/translations", &content_type, body).await;
        assert_eq!(r.json["error"]["code"], "invalid_form", "{}", r.text);
        assert!(s.upstream.requests().is_empty(), "a refused form reached the upstream");
        assert_eq!(balance(&app, &s.user).await, START, "a refused form cost something");
        // Array fields may repeat.
        let (content_type, body) = form(&[("model", "whisper-test"), ("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment")], Some(("a.mp3", b"ID3")));
        let r = upload(&app, &s.key, "/v1/audio/transcriptions", &content_type, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}
