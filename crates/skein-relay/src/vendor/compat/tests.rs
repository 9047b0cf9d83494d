//! The profile-driven conversions: reasoning switches and reasoning answers in each vendor's
//! terms, history, tool choices, usage, and error classes.

use bytes::Bytes;
use serde_json::{Value, json};

use super::profiles::*;
use super::*;
use crate::vendor::Attempt;

fn body(profile: &Profile, pivot: Value) -> Value {
    profile.body(&pivot).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_effort_becomes_each_vendors_thinking_switch() {
    let pivot = json!({"model": "m", "reasoning_effort": "medium", "messages": []});
    let glm = body(&ZHIPU, pivot.clone());
    assert_eq!(glm["thinking"], json!({"type": "enabled"}));
    assert!(glm.get("reasoning_effort").is_none());
    let qwen = body(&DASHSCOPE, pivot.clone());
    assert_eq!(
        (
            qwen["enable_thinking"].as_bool(),
            qwen["thinking_budget"].as_i64()
        ),
        (Some(true), Some(8192))
    );
    let off = body(
        &DASHSCOPE,
        json!({"model": "m", "reasoning_effort": "minimal", "messages": []}),
    );
    assert_eq!(off["enable_thinking"], false);
    assert!(off.get("thinking_budget").is_none());
    let kimi = body(&MOONSHOT, pivot.clone());
    assert!(kimi.get("reasoning_effort").is_none() && kimi.get("thinking").is_none());
    let minimax = body(&MINIMAX, json!({"model": "m", "messages": []}));
    assert_eq!(minimax["reasoning_split"], true);
    // The client's own switch wins.
    let own = body(
        &DASHSCOPE,
        json!({"model": "m", "reasoning_effort": "high", "enable_thinking": false, "messages": []}),
    );
    assert_eq!(own["enable_thinking"], false);
    assert!(
        DASHSCOPE
            .body(&json!({"model": "m", "reasoning_effort": "extreme"}))
            .is_err()
    );
}

#[test]
fn earlier_reasoning_is_sent_back_as_each_vendor_wants() {
    let pivot = json!({"model": "m", "messages": [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "a", "reasoning_content": "old"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": null, "reasoning_content": "now", "tool_calls": []},
        {"role": "tool", "tool_call_id": "c", "content": "r"}]});
    let ds = body(&DEEPSEEK, pivot.clone());
    assert!(ds["messages"][1].get("reasoning_content").is_none());
    assert_eq!(ds["messages"][3]["reasoning_content"], "now");
    let mm = body(&MINIMAX, pivot.clone());
    assert_eq!(
        mm["messages"][1]["reasoning_details"],
        json!([{"type": "reasoning.text", "text": "old"}])
    );
    let spark = body(&SPARK, pivot.clone());
    assert!(spark["messages"][3].get("reasoning_content").is_none());
    let kimi = body(&MOONSHOT, pivot);
    assert_eq!(kimi["messages"][1]["reasoning_content"], "old");
}

#[test]
fn tool_choices_a_vendor_lacks_are_refused_by_name() {
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    let with = |choice: Value| json!({"model": "m", "messages": [], "tools": tools, "tool_choice": choice});
    let none = body(&ZHIPU, with(json!("none")));
    assert!(none.get("tools").is_none() && none.get("tool_choice").is_none());
    let err = ZHIPU
        .body(&with(json!("required")))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("tool_choice"), "{err}");
    assert!(
        MINIMAX
            .body(&with(
                json!({"type": "function", "function": {"name": "f"}})
            ))
            .is_err()
    );
    assert_eq!(body(&MINIMAX, with(json!("none")))["tool_choice"], "none");
    assert_eq!(
        body(&DEEPSEEK, with(json!("required")))["tool_choice"],
        "required"
    );
}

#[test]
fn answers_carry_reasoning_as_reasoning_content() {
    let minimax = MINIMAX.response(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi",
        "reasoning_details": [{"type": "reasoning.text", "text": "think "}, {"type": "reasoning.text", "text": "more"}]}}]}), "m");
    assert_eq!(
        minimax["choices"][0]["message"]["reasoning_content"],
        "think more"
    );
    assert!(
        minimax["choices"][0]["message"]
            .get("reasoning_details")
            .is_none()
    );
    assert!(!MINIMAX.speaks_pivot());
    assert!(DEEPSEEK.speaks_pivot());
    let kimi = MOONSHOT.response(json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1, "cached_tokens": 4}}), "m");
    assert_eq!(kimi["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
}

#[test]
fn streams_are_made_the_pivots() {
    let mut d = MOONSHOT.decoder("m");
    let out = d
        .event(Bytes::from(r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop","usage":{"prompt_tokens":5,"completion_tokens":2,"cached_tokens":1}}]}"#))
        .unwrap_or_default();
    let chunk = pivot::event_json(&out[0]).unwrap_or_default();
    assert_eq!(chunk["usage"]["prompt_tokens"], 5);
    assert_eq!(chunk["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    assert!(chunk["choices"][0].get("usage").is_none());

    let mut d = DASHSCOPE.decoder("m");
    let out = d
        .event(Bytes::from(r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"","type":"function","function":{"name":"","arguments":"ty\"}"}}]}}]}"#))
        .unwrap_or_default();
    let chunk = pivot::event_json(&out[0]).unwrap_or_default();
    assert_eq!(
        chunk["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "type": "function", "function": {"arguments": "ty\"}"}})
    );

    let mut d = MINIMAX.decoder("m");
    let out = d
        .event(Bytes::from(r#"data: {"choices":[{"index":0,"delta":{"reasoning_details":[{"type":"reasoning.text","text":"hm"}]}}]}"#))
        .unwrap_or_default();
    let chunk = pivot::event_json(&out[0]).unwrap_or_default();
    assert_eq!(chunk["choices"][0]["delta"]["reasoning_content"], "hm");
    assert_eq!(
        d.event(Bytes::from("data: [DONE]")).unwrap_or_default(),
        vec![Bytes::from("data: [DONE]")]
    );
}

fn class(a: &Attempt) -> &'static str {
    match a {
        Attempt::Ok(_) => "ok",
        Attempt::Retry(_) => "retry",
        Attempt::Refused(..) => "refused",
        Attempt::Dead(reason) if reason.contains(KEY_REJECTED) => "key",
        Attempt::Dead(_) => "quota",
    }
}

#[test]
fn vendor_errors_fall_into_the_relays_classes() {
    let cases: &[(&Profile, u16, &str, &str)] = &[
        (
            &DEEPSEEK,
            402,
            r#"{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}"#,
            "quota",
        ),
        (
            &DEEPSEEK,
            429,
            r#"{"error":{"message":"Rate Limit Reached","type":"rate_limit_error"}}"#,
            "retry",
        ),
        (
            &ZHIPU,
            429,
            r#"{"error":{"code":"1113","message":"您的账户已欠费，请充值后重试。"}}"#,
            "quota",
        ),
        (
            &ZHIPU,
            429,
            r#"{"error":{"code":"1302","message":"您当前使用该API的并发数过高"}}"#,
            "retry",
        ),
        (
            &ZHIPU,
            400,
            r#"{"error":{"code":"1301","message":"系统检测到输入或生成内容可能包含不安全或敏感内容"}}"#,
            "refused",
        ),
        (
            &ZHIPU,
            401,
            r#"{"error":{"code":"1002","message":"Authorization Token非法"}}"#,
            "key",
        ),
        (
            &VOLCENGINE,
            403,
            r#"{"error":{"code":"AccountOverdueError","message":"overdue","param":"","type":"Forbidden"}}"#,
            "quota",
        ),
        (
            &VOLCENGINE,
            400,
            r#"{"error":{"code":"SensitiveContentDetected.Violence","message":"x","type":"BadRequest"}}"#,
            "refused",
        ),
        (
            &VOLCENGINE,
            429,
            r#"{"error":{"code":"RateLimitExceeded.EndpointRPMExceeded","message":"x","type":"TooManyRequests"}}"#,
            "retry",
        ),
        (
            &SILICONFLOW,
            403,
            r#"{"code":30001,"message":"Sorry, your account balance is insufficient","data":null}"#,
            "quota",
        ),
        (
            &MOONSHOT,
            429,
            r#"{"error":{"type":"exceeded_current_quota_error","message":"Your account is suspended"}}"#,
            "quota",
        ),
        (
            &MOONSHOT,
            400,
            r#"{"error":{"type":"content_filter","message":"The request was rejected because it was considered high risk"}}"#,
            "refused",
        ),
        (
            &MINIMAX,
            200,
            r#"{"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}"#,
            "quota",
        ),
        (
            &MINIMAX,
            200,
            r#"{"base_resp":{"status_code":1002,"status_msg":"rate limit"}}"#,
            "retry",
        ),
        (
            &DASHSCOPE,
            400,
            r#"{"error":{"code":"Arrearage","message":"Access denied, please make sure your account is in good standing.","type":"Arrearage"}}"#,
            "quota",
        ),
        (
            &DASHSCOPE,
            400,
            r#"{"error":{"code":"data_inspection_failed","message":"Input data may contain inappropriate content.","type":"data_inspection_failed"}}"#,
            "refused",
        ),
        (
            &SPARK,
            200,
            r#"{"code":11201,"message":"licc limit","sid":"x"}"#,
            "quota",
        ),
        // A client's words echoed in a message decide nothing.
        (
            &ZHIPU,
            400,
            r#"{"error":{"code":"1210","message":"1113 Arrearage insufficient balance"}}"#,
            "refused",
        ),
    ];
    for (profile, status, body, expected) in cases {
        let attempt = profile.classify(*status, None, Bytes::from(*body));
        assert_eq!(
            class(&attempt),
            *expected,
            "{:?} {status} {body}",
            profile.kind
        );
    }
    assert!(MINIMAX.error_in_ok(br#"{"base_resp":{"status_code":1008,"status_msg":"x"}}"#));
    assert!(
        !MINIMAX.error_in_ok(br#"{"choices":[],"base_resp":{"status_code":0,"status_msg":""}}"#)
    );
    assert!(!SPARK.error_in_ok(br#"{"code":0,"message":"Success","choices":[]}"#));
}

#[test]
fn content_filter_refusals_reach_clients_with_one_code() {
    for (profile, body) in [
        (&ZHIPU, r#"{"error":{"code":"1301","message":"敏感内容"}}"#),
        (
            &MINIMAX,
            r#"{"base_resp":{"status_code":1026,"status_msg":"input new_sensitive"}}"#,
        ),
    ] {
        let openai: Value =
            serde_json::from_slice(&profile.error_to_openai(Bytes::from(body))).unwrap_or_default();
        assert_eq!(openai["error"]["code"], "content_filter", "{openai}");
        assert!(
            openai["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let sf: Value = serde_json::from_slice(&SILICONFLOW.error_to_openai(Bytes::from(
        r#"{"code":20012,"message":"Model does not exist.","data":null}"#,
    )))
    .unwrap_or_default();
    assert_eq!(sf["error"]["message"], "Model does not exist.");
}

#[test]
fn every_profile_is_wired_to_its_kind() {
    for profile in ALL {
        assert_eq!(crate::vendor::adapter(profile.kind).kind(), profile.kind);
        // Only Azure has no address for everybody (each resource has its own).
        assert!(
            profile
                .default_base_url
                .is_some_and(|url| url.starts_with("https://"))
                || profile.endpoints == Endpoints::Azure,
            "{}",
            profile.vendor
        );
    }
}

#[test]
fn openai_and_azure_send_the_pivot_as_written_and_answer_untouched() {
    for profile in [&OPENAI, &AZURE] {
        assert!(!profile.rewrites_requests(), "{}", profile.vendor);
        assert!(profile.speaks_pivot(), "{}", profile.vendor);
        let pivot = json!({"model": "m", "reasoning_effort": "high", "unknown_field": 1,
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "messages": [{"role": "assistant", "content": "x", "reasoning_content": "kept"}]});
        assert_eq!(body(profile, pivot.clone()), pivot, "{}", profile.vendor);
        // Streamed events go on as they came, without a parse: even one that is not JSON.
        let mut decoder = profile.decoder("m");
        let odd = Bytes::from_static(b"data: {not json\n\n");
        assert_eq!(decoder.event(odd.clone()), Ok(vec![odd]));
        let error = Bytes::from_static(br#"{"detail":"not OpenAI's shape"}"#);
        assert_eq!(profile.error_to_openai(error.clone()), error);
    }
    assert!(OPENAI.serves_openai_paths());
    assert!(!AZURE.serves_openai_paths() && !DEEPSEEK.serves_openai_paths());
}
