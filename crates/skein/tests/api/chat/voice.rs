//! An answer read aloud through the relay's text-to-speech route: the audio comes back as
//! bytes, the text is sent without its Markdown, the call is billed per character, and a
//! deployment without a speech model says so instead of failing.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::mock_openai::endpoints::speech_audio;
use skein_testkit::{Price, RelayWorld, TestApp, Upstream, on_both_backends, relay_world};

use super::{chat_app, find, new_conversation, send, settled_balance};

/// Posts `/chat/messages/{id}/speech` as `token`.
async fn speak(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/chat/messages/{id}/speech")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

on_both_backends! {
    async fn an_answer_is_read_aloud_by_the_speech_model_and_billed_per_character(backend) {
        let app = chat_app(backend, |c| {
            c.chat.speech_model = "tts-chat".into();
            c.chat.speech_voice = "nova".into();
        })
        .await;
        let RelayWorld { user, root, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let eve = app.register("eve").await;
        let id = new_conversation(&app, &user, json!({"model": "gpt-test"})).await;
        let (_, ev, _) = send(&app, &user, &id, json!({"content": "read **this** aloud"})).await;
        let start = find(&ev, "start").clone();
        let answer = start["assistant_message_id"].as_str().unwrap().to_string();
        let question = start["user_message_id"].as_str().unwrap().to_string();
        let calls = upstream.requests().len();
        let before = settled_balance(&app, &user).await;

        // No channel or price for the speech model yet: a clear refusal, nothing sent or paid.
        let r = speak(&app, &user.access, &answer).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "speech_not_available", "{body}");
        assert_eq!(upstream.requests().len(), calls);

        app.add_channel(&root, json!({
            "type": "openai", "name": "speech", "base_url": upstream.base_url, "keys": [upstream.key],
            "models": ["tts-chat"], "model_mapping": {"tts-chat": "tts-1"}
        })).await;
        app.set_price(&root, "tts-chat", Price::tokens(3_000_000, 0)).await;

        let r = speak(&app, &user.access, &answer).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "audio/mpeg");
        let spoken = "echo: read this aloud";
        assert_eq!(r.bytes().await.unwrap().as_ref(), speech_audio(spoken, "mp3").as_slice());
        let sent = upstream.requests().last().unwrap().clone();
        assert_eq!(
            (sent["model"].as_str(), sent["input"].as_str(), sent["voice"].as_str(), sent["response_format"].as_str()),
            (Some("tts-1"), Some(spoken), Some("nova"), Some("mp3"))
        );
        let chars = spoken.chars().count() as i64;
        assert_eq!(settled_balance(&app, &user).await, before - 3 * chars);

        // A question is not read, and another user's answer does not exist for eve.
        let r = speak(&app, &user.access, &question).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = speak(&app, &eve.access, &answer).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(settled_balance(&app, &user).await, before - 3 * chars);
    }
}
