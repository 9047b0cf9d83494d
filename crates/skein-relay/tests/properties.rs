//! Property tests (issue #11, fuzzing): the SSE splitter and the format conversions take bytes
//! and JSON from clients and upstreams, so they must give the same answer however input is cut
//! and never panic on any value. Run longer with `PROPTEST_CASES=100000 cargo test -p
//! skein-relay --test properties`.

use proptest::prelude::*;
use serde_json::{Map, Value};
use skein_relay::proxy::SseSplitter;
use skein_relay::vendor::{anthropic, gemini};

/// Cases per property unless `PROPTEST_CASES` says otherwise: enough to catch shallow bugs
/// while the suite stays fast.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Keys the converters look at, so generated objects reach their branches, plus noise.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "system",
    "tools",
    "tool_choice",
    "tool_calls",
    "tool_call_id",
    "tool_use_id",
    "id",
    "name",
    "input",
    "arguments",
    "function",
    "parameters",
    "input_schema",
    "max_tokens",
    "stream",
    "stop",
    "stop_sequences",
    "temperature",
    "top_p",
    "thinking",
    "budget_tokens",
    "reasoning_effort",
    "image_url",
    "url",
    "source",
    "data",
    "media_type",
    "contents",
    "parts",
    "inlineData",
    "mimeType",
    "functionCall",
    "functionResponse",
    "response",
    "args",
    "generationConfig",
    "systemInstruction",
    "thinkingConfig",
    "thinkingBudget",
    "choices",
    "delta",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "candidates",
    "usageMetadata",
    "index",
    "message",
    "content_block",
    "partial_json",
    "stop_reason",
    "reasoning_content",
    "n",
    "user",
    "metadata",
    "x",
];

/// A JSON value, at most a few levels deep, biased towards the shapes converters read.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(KEYS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(
            &[
                "user",
                "assistant",
                "system",
                "tool",
                "model",
                "function",
                "text",
                "image",
                "image_url",
                "tool_use",
                "tool_result",
                "thinking",
                "auto",
                "none",
                "any",
                "required",
                "data:image/png;base64,AAAA",
                "data:",
                "stop",
                "length"
            ][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// An object at the top, as every request and event is.
fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..10).prop_map(|pairs| {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    })
}

/// Every event a splitter yields for `stream` pushed in pieces cut at `cuts`, then finished.
fn split(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut splitter = SseSplitter::default();
    let mut events = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([stream.len()]) {
        events.extend(
            splitter
                .push(&stream[at..cut])
                .into_iter()
                .map(|b| b.to_vec()),
        );
        at = cut;
    }
    events.extend(splitter.finish().map(|b| b.to_vec()));
    events
}

/// SSE-like bytes: mostly `data:` lines and separators of both kinds, with arbitrary bytes.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"data: ".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n\n".to_vec()),
            Just(b"\r\n\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"event: x".to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..40,
    )
    .prop_map(|pieces| pieces.concat())
}

/// One valid server-sent event: 1–4 `field: value` lines (values without line breaks) and
/// the line ending it is written with (`\n` or `\r\n`, as servers send one or the other).
fn sse_event() -> impl Strategy<Value = (Vec<(&'static str, String)>, &'static str)> {
    (
        prop::collection::vec(
            (
                prop::sample::select(&["data", "data", "data", "event", "id", "retry"][..]),
                "[^\r\n]{0,24}",
            ),
            1..5,
        ),
        prop::sample::select(&["\n", "\r\n"][..]),
    )
}

/// An event's text as the splitter yields it: its lines, without the blank line after.
fn event_text(lines: &[(&str, String)], eol: &str) -> Vec<u8> {
    lines
        .iter()
        .map(|(field, value)| format!("{field}: {value}"))
        .collect::<Vec<_>>()
        .join(eol)
        .into_bytes()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_sse_splitter_yields_the_same_events_however_the_stream_is_cut(
        stream in sse_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = split(&stream, &[]);
        prop_assert_eq!(split(&stream, &cuts), whole.clone());
        // Byte by byte, the hardest cut of all.
        let every: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(split(&stream, &every), whole);
    }

    #[test]
    fn a_valid_event_stream_cut_anywhere_yields_exactly_its_events(
        events in prop::collection::vec(sse_event(), 0..8),
        unterminated_last in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (i, (lines, eol)) in events.iter().enumerate() {
            let text = event_text(lines, eol);
            stream.extend_from_slice(&text);
            if !(unterminated_last && i + 1 == events.len()) {
                stream.extend_from_slice(format!("{eol}{eol}").as_bytes());
            }
            expected.push(text);
        }
        prop_assert_eq!(split(&stream, &cuts), expected.clone());
        let every: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(split(&stream, &every), expected);
    }

    #[test]
    fn the_data_of_a_valid_event_is_its_data_lines_joined(event in sse_event()) {
        let (lines, eol) = event;
        let data: Vec<&str> = lines
            .iter()
            .filter(|(field, _)| *field == "data")
            .map(|(_, value)| value.as_str())
            .collect();
        let expected = (!data.is_empty()).then(|| data.join("\n"));
        prop_assert_eq!(skein_relay::proxy::event_data(&event_text(&lines, eol)), expected);
    }

    #[test]
    fn the_sse_splitter_never_panics_on_arbitrary_bytes(
        stream in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let events = split(&stream, &cuts);
        for event in &events {
            let _ = skein_relay::proxy::event_data(event);
        }
    }

    #[test]
    fn anthropic_request_conversions_never_panic(req in json_object()) {
        let _ = anthropic::request_to_openai(&req);
        let _ = anthropic::request_from_openai(&req);
        let _ = anthropic::response_from_openai(&req, "m");
        let _ = anthropic::response_to_openai(&req);
        let _ = anthropic::usage_to_openai(&req);
    }

    #[test]
    fn gemini_request_conversions_never_panic(req in json_object(), stream in any::<bool>()) {
        let _ = gemini::request_to_openai(&req, "m", stream);
        let _ = gemini::request_from_openai(&req);
        let _ = gemini::response_from_openai(&req, "m");
        let _ = gemini::response_to_openai(&req, "m");
        let _ = gemini::usage_to_openai(&req);
    }

    #[test]
    fn stream_converters_never_panic(events in prop::collection::vec(json_object(), 0..8)) {
        let mut to_anthropic = anthropic::StreamConverter::new("m");
        let mut from_anthropic = anthropic::UpstreamStream::default();
        let mut from_gemini = gemini::UpstreamStream::new("m");
        let mut pending = Vec::new();
        for event in &events {
            let _ = to_anthropic.chunk(event);
            let _ = from_anthropic.event(event);
            let _ = from_gemini.item(event);
            let _ = gemini::chunk_from_openai(event, "m", &mut pending);
        }
        let _ = to_anthropic.finish();
        let _ = from_gemini.finish();
    }
}
