//! Audio priced apart from text: a chat completion with audio in and spoken audio out, relayed
//! to the mock OpenAI upstream and billed at the model's audio rates; refused while the model
//! has no audio output rate.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::mock_openai::{AUDIO_TOKENS_PER_WORD, input_audio_tokens};
use skein_testkit::{RelayWorld, Upstream, both_backends, relay_world};

use super::{balance_after, chat};

both_backends! {
    async fn audio_in_and_out_is_billed_at_the_audio_rates(app) {
        let RelayWorld { root, user, key, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let messages = json!([{"role": "user", "content": [
            {"type": "text", "text": "what is said here"},
            {"type": "input_audio", "input_audio": {"data": "U".repeat(1_200), "format": "wav"}}
        ]}]);
        let body = json!({"model": "gpt-test", "messages": messages, "modalities": ["text", "audio"],
            "audio": {"voice": "alloy", "format": "wav"}});
        // Without an audio output rate, spoken output cannot be billed: refused, nothing sent.
        let r = chat(&app, &key, body.clone()).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_field")), "{}", r.text);
        assert!(upstream.requests().is_empty());

        // Text at 2 in and 6 out; audio at 20 in and 50 out.
        let r = app.put("/api/v1/admin/pricing/gpt-test", Some(&root.access), json!({
            "input_per_mtok": 2_000_000, "output_per_mtok": 6_000_000, "cache_read_per_mtok": 0,
            "cache_write_per_mtok": 0, "per_call": 0,
            "audio_input_per_mtok": 20_000_000, "audio_output_per_mtok": 50_000_000})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let before = balance_after(&app, &user, 0).await;
        let r = chat(&app, &key, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let message = &r.json["choices"][0]["message"];
        assert_eq!(message["audio"]["transcript"], "echo: what is said here", "{message}");
        assert!(message["audio"]["data"].as_str().is_some_and(|d| !d.is_empty()));
        let usage = &r.json["usage"];
        let audio_in = input_audio_tokens(&messages);
        assert_eq!(audio_in, 12);
        assert_eq!(usage["prompt_tokens_details"]["audio_tokens"], audio_in, "{usage}");
        let text_in = usage["prompt_tokens"].as_i64().unwrap() - audio_in;
        let spoken_words = 5;
        let audio_out = spoken_words * AUDIO_TOKENS_PER_WORD;
        assert_eq!(usage["completion_tokens_details"]["audio_tokens"], audio_out, "{usage}");
        let text_out = usage["completion_tokens"].as_i64().unwrap() - audio_out;
        let expected = text_in * 2 + audio_in * 20 + text_out * 6 + audio_out * 50;
        assert_eq!(balance_after(&app, &user, 1).await, before - expected);
        let records = app.get("/api/v1/billing/usage", Some(&user.access)).await.json;
        assert_eq!(records["items"][0]["cost"], expected, "{records}");
        // The record keeps the audio rates it was charged at.
        let pricing: serde_json::Value = serde_json::from_str(records["items"][0]["pricing"].as_str().unwrap()).unwrap();
        assert_eq!(pricing["audio_output_per_mtok"], 50_000_000, "{pricing}");
    }
}
