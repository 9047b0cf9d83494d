//! The official OpenAI Python SDK against Skein: what matters is what the SDK parses, not what
//! our own tests think the wire format is.

use serde_json::Value;
use skein_testkit::{Backend, Price, TestApp, Upstream, WorldSpec, relay_world};

/// The Python with the `openai` package: `SKEIN_TEST_PYTHON`, which `scripts/test` sets up.
pub(crate) fn python() -> String {
    std::env::var("SKEIN_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Starts Skein with a priced channel to the mock upstream, runs `tests/sdk/<script>` with the
/// Python that has `module`, and answers the JSON the script printed.
async fn run_sdk(script: &str, module: &str) -> Value {
    run_sdk_over(script, module, None).await
}

/// Like [`run_sdk`], with the channel's upstream of `kind` (the OpenAI mock when `None`): the
/// SDK must parse what Skein makes of that vendor's answers.
async fn run_sdk_over(script: &str, module: &str, kind: Option<Upstream>) -> Value {
    let python = python();
    let check = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import {module}: run ./scripts/test (it installs the SDKs) or set SKEIN_TEST_PYTHON"
    );
    let app = TestApp::spawn(Backend::Sqlite).await;
    // The OpenAI world, or one whose only channel (`vendor`) is of `kind`, serving the same
    // model unmapped.
    let s = match kind {
        None => relay_world(&app, Upstream::OpenAi).await,
        Some(kind) => {
            WorldSpec::new(kind)
                .model("gpt-test", None)
                .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
                .channel(serde_json::json!({"name": "vendor"}))
                .build(&app)
                .await
        }
    };
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(&python)
        .arg(path)
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
    serde_json::from_str(stdout.trim()).expect("the script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_works() {
    let seen = run_sdk("openai_sdk.py", "openai").await;
    assert_eq!(seen["plain"], "echo: hello from the sdk");
    assert_eq!(seen["plain_prompt_tokens"], 4);
    assert_eq!(seen["stream"], "echo: hello from the sdk");
    assert_eq!(
        seen["stream_usage_seen"], false,
        "usage the client did not ask for leaked"
    );
    assert_eq!(seen["stream_usage_completion"], 5);
    assert_eq!(seen["stream_usage_last_has_no_choices"], true);
    assert_eq!(seen["models"], serde_json::json!(["gpt-test"]));
    // No channel serves it: not found, checked before the price.
    assert_eq!(seen["unpriced"]["status"], 404);
    assert_eq!(seen["unpriced"]["code"], "model_not_found");
    assert_eq!(seen["bad_key"]["status"], 401);
    assert_eq!(seen["bad_key"]["code"], "invalid_api_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_sdk_works() {
    let seen = run_sdk("anthropic_sdk.py", "anthropic").await;
    assert_eq!(seen["text"], "echo: hello from claude sdk");
    assert_eq!(seen["stop_reason"], "end_turn");
    // The mock counts words: "be brief" + "hello from claude sdk" = 6 prompt tokens.
    assert_eq!(seen["input_tokens"], 6);
    assert_eq!(seen["output_tokens"], 5);
    assert_eq!(seen["stream_text"], "echo: hello from claude sdk");
    assert_eq!(seen["stream_output_tokens"], 5);
    assert_eq!(seen["stream_stop_reason"], "end_turn");
    // No channel serves it: not found, in Anthropic's own error shape.
    assert_eq!(seen["unpriced"]["status"], 404);
    assert_eq!(seen["unpriced"]["type"], "not_found_error");
    assert_eq!(seen["bad_key"]["status"], 401);
    assert_eq!(seen["bad_key"]["type"], "authentication_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_gemini_sdk_works() {
    let seen = run_sdk("gemini_sdk.py", "google.genai").await;
    assert_eq!(seen["text"], "echo: hello from gemini sdk");
    // "be brief" + "hello from gemini sdk" = 6 words.
    assert_eq!(seen["prompt_tokens"], 6);
    assert_eq!(seen["output_tokens"], 5);
    assert!(seen["finish_reason"].as_str().unwrap().contains("STOP"));
    assert_eq!(seen["stream_text"], "echo: hello from gemini sdk");
    assert_eq!(seen["stream_output_tokens"], 5);
    // No channel serves it: not found, in Gemini's own error shape.
    assert_eq!(seen["unpriced"]["code"], 404);
    assert_eq!(seen["unpriced"]["status"], "NOT_FOUND");
    assert_eq!(seen["bad_key"]["code"], 401);
    assert_eq!(seen["bad_key"]["status"], "UNAUTHENTICATED");
}

/// The Anthropic SDK over an Anthropic upstream (passed through) and over a Gemini upstream,
/// the Gemini SDK over Anthropic, Azure and Gemini (passed through) upstreams, and the OpenAI
/// SDK over a Gemini upstream: the official parsers accept what the
/// adapters make of each vendor's answers, usage included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_work_over_other_vendors_upstreams() {
    for kind in [Upstream::Anthropic, Upstream::Gemini] {
        let seen = run_sdk_over("anthropic_sdk.py", "anthropic", Some(kind)).await;
        assert_eq!(seen["text"], "echo: hello from claude sdk", "{kind:?}");
        assert_eq!(seen["stop_reason"], "end_turn");
        assert_eq!(
            (
                seen["input_tokens"].as_i64(),
                seen["output_tokens"].as_i64()
            ),
            (Some(6), Some(5)),
            "{kind:?}"
        );
        assert_eq!(
            seen["stream_text"], "echo: hello from claude sdk",
            "{kind:?}"
        );
        assert_eq!(seen["stream_output_tokens"], 5, "{kind:?}");
        assert_eq!(seen["stream_stop_reason"], "end_turn");
    }
    for kind in [Upstream::Anthropic, Upstream::Azure, Upstream::Gemini] {
        let seen = run_sdk_over("gemini_sdk.py", "google.genai", Some(kind)).await;
        assert_eq!(seen["text"], "echo: hello from gemini sdk", "{kind:?}");
        assert_eq!(
            (
                seen["prompt_tokens"].as_i64(),
                seen["output_tokens"].as_i64()
            ),
            (Some(6), Some(5)),
            "{kind:?}"
        );
        assert_eq!(
            seen["stream_text"], "echo: hello from gemini sdk",
            "{kind:?}"
        );
        assert_eq!(seen["stream_output_tokens"], 5, "{kind:?}");
    }
    let seen = run_sdk_over("openai_sdk.py", "openai", Some(Upstream::Gemini)).await;
    assert_eq!(seen["plain"], "echo: hello from the sdk");
    assert_eq!(seen["plain_prompt_tokens"], 4);
    assert_eq!(seen["stream"], "echo: hello from the sdk");
    assert_eq!(seen["stream_usage_seen"], false);
    assert_eq!(seen["stream_usage_completion"], 5);
    assert_eq!(seen["stream_usage_last_has_no_choices"], true);
}
