//! Property tests (issue #11, fuzzing) for chat imports, which parse whatever file a user
//! uploads: Skein's own export or a ChatGPT export, with trees that may be broken, cyclic or
//! huge. Any bytes and any JSON must give an answer or a clean error, never a panic. Run
//! longer with `PROPTEST_CASES=100000 cargo test -p skein-chat --test properties`.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

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

/// Keys the importers read, so generated objects reach their branches.
const KEYS: &[&str] = &[
    "title",
    "mapping",
    "current_node",
    "message",
    "parent",
    "children",
    "author",
    "role",
    "content",
    "content_type",
    "parts",
    "create_time",
    "id",
    "conversations",
    "messages",
    "model",
    "system_prompt",
    "parent_id",
    "created_at",
    "version",
    "x",
];

/// Node ids drawn from a small set, so parents, children and cycles actually connect.
const IDS: &[&str] = &["a", "b", "c", "d", "root"];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(IDS).prop_map(Value::from),
        prop::sample::select(&["user", "assistant", "system", "tool", "text", "code"][..])
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..8).prop_map(
                |pairs| {
                    Value::Object(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
            // A ChatGPT-shaped mapping of nodes keyed by the small id set.
            prop::collection::vec((prop::sample::select(IDS), inner), 0..6).prop_map(|nodes| {
                let mapping: Map<String, Value> =
                    nodes.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                json!([{"title": "t", "mapping": mapping, "current_node": "a"}])
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_are_answered_without_a_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = skein_chat::import::parse(&body);
    }

    #[test]
    fn any_json_is_answered_without_a_panic(value in json_value()) {
        let _ = skein_chat::import::parse(value.to_string().as_bytes());
    }
}
