//! Continuing an answer that stopped at its length limit: the same message grows, the model is
//! sent its own text to write on from, both calls are billed, and what cannot be continued is
//! refused without touching anything.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::{RelayWorld, TestApp, Upstream, on_both_backends, relay_world};

use super::{
    chat_app, cost_of, events, find, history, new_conversation, send, settled_balance, text_of,
};

/// Posts `/chat/messages/{id}/continue` as `token`: the status and the SSE events.
async fn continue_answer(
    app: &TestApp,
    token: &str,
    id: &str,
) -> (StatusCode, Vec<(String, Value)>, String) {
    let r = app
        .client
        .post(app.url(&format!("/api/v1/chat/messages/{id}/continue")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, events(&text), text)
}

on_both_backends! {
    async fn an_answer_cut_at_its_length_limit_is_continued_in_place(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let before = settled_balance(&app, &user).await;
        let id = new_conversation(&app, &user, json!({"model": "gpt-test", "max_tokens": 3})).await;

        // The mock stops at three words: "echo: one two " of "echo: one two three four five".
        let (status, ev, raw) = send(&app, &user, &id, json!({"content": "one two three four five"})).await;
        assert_eq!(status, StatusCode::OK, "{raw}");
        assert_eq!(text_of(&ev), "echo: one two ");
        let answer = find(&ev, "start")["assistant_message_id"].as_str().unwrap().to_string();
        let done = &find(&ev, "done")["message"];
        assert_eq!(done["finish_reason"], "length", "{done}");
        let first_cost = cost_of(5, 3);
        assert_eq!(done["usage"]["cost"], first_cost);

        // Continue: the same message, the model given its own words last, the rest appended.
        let (status, ev, raw) = continue_answer(&app, &user.access, &answer).await;
        assert_eq!(status, StatusCode::OK, "{raw}");
        assert_eq!(find(&ev, "start")["assistant_message_id"], answer.as_str());
        assert_eq!(text_of(&ev), "three four five");
        let sent = upstream.requests().last().unwrap().clone();
        assert_eq!(
            sent["messages"],
            json!([
                {"role": "user", "content": "one two three four five"},
                {"role": "assistant", "content": "echo: one two "}
            ])
        );
        let done = &find(&ev, "done")["message"];
        assert_eq!(done["id"], answer.as_str());
        assert_eq!(done["content"], "echo: one two three four five");
        assert_eq!(done["finish_reason"], "stop");
        assert_eq!(done["status"], "done");
        // The message shows both calls; the ledger charged both, once each.
        let second_cost = cost_of(5 + 3, 3);
        assert_eq!(
            done["usage"],
            json!({"prompt_tokens": 13, "completion_tokens": 6, "cost": first_cost + second_cost})
        );
        assert_eq!(settled_balance(&app, &user).await, before - first_cost - second_cost);
        let h = history(&app, &user, &id).await;
        let messages = h["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2, "{h}");
        assert_eq!(messages[1]["content"], "echo: one two three four five");
        assert_eq!(messages[1]["sibling_count"], 1);
        assert_eq!(h["active_leaf_id"], answer.as_str());
    }
}

on_both_backends! {
    async fn what_cannot_be_continued_is_refused_and_left_as_it_was(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let eve = app.register("eve").await;
        let id = new_conversation(&app, &user, json!({"model": "gpt-test", "max_tokens": 2})).await;
        let (_, ev, _) = send(&app, &user, &id, json!({"content": "alpha beta gamma"})).await;
        let first = find(&ev, "start").clone();
        let (question, answer) = (
            first["user_message_id"].as_str().unwrap().to_string(),
            first["assistant_message_id"].as_str().unwrap().to_string(),
        );
        let calls = upstream.requests().len();

        // Someone else's answer, an unknown one, and a question are not continued.
        let (status, _, raw) = continue_answer(&app, &eve.access, &answer).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{raw}");
        let (status, _, raw) = continue_answer(&app, &user.access, "0190a7a0-0000-7000-8000-000000000000").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{raw}");
        let (status, _, raw) = continue_answer(&app, &user.access, &question).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{raw}");

        // Once the conversation went on past it, the answer is no longer the end of its branch.
        let (_, ev, _) = send(&app, &user, &id, json!({"content": "delta"})).await;
        assert_eq!(find(&ev, "done")["message"]["status"], "done");
        let calls = calls + 1;
        let (status, _, raw) = continue_answer(&app, &user.access, &answer).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{raw}");
        let body: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(body["error"]["code"], "validation_failed", "{raw}");
        assert_eq!(upstream.requests().len(), calls, "nothing went upstream");
        let h = history(&app, &user, &id).await;
        let kept = h["messages"].as_array().unwrap();
        assert_eq!(kept.len(), 4, "{h}");
        assert_eq!(kept[1]["content"], "echo: alpha ");
        assert_eq!(kept[1]["finish_reason"], "length");
        assert_eq!(kept[1]["status"], "done");
    }
}
