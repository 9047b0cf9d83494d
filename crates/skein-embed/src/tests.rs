//! The loader on small models written here, and on the real model when it is installed.

use std::path::Path;

use super::*;

/// A safetensors file of the given tensors: (name, dtype, shape, bytes).
fn safetensors(tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            (*name).to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&data);
    file
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn tokenizer(vocab: &[(&str, f64)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "normalizer": {"type": "Precompiled", "precompiled_charsmap": ""},
        "model": {"type": "Unigram", "unk_id": 0, "vocab": vocab},
    }))
    .unwrap()
}

fn write(dir: &Path, tokenizer_json: &[u8], weights: &[u8], config: &str) {
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
}

const VOCAB: &[(&str, f64)] = &[
    ("<unk>", 0.0),
    ("\u{2581}", -1.0),
    ("\u{2581}ab", -1.0),
    ("\u{2581}a", -2.0),
    ("b", -2.0),
    ("c", -3.0),
    ("年假", -1.5),
    ("年", -3.0),
    ("假", -3.0),
];

#[test]
fn pieces_follow_the_highest_scoring_path() {
    let t = Unigram::from_json(&tokenizer(VOCAB)).unwrap();
    // "▁ab" (-1) beats "▁a" + "b" (-4).
    assert_eq!(t.encode("ab"), [2]);
    // Words are split at whitespace (full-width space too, after NFKC); "z" has no piece.
    assert_eq!(t.encode("ab\u{3000}c z"), [2, 1, 5, 1]);
    assert_eq!(t.encode("年假"), [1, 6]);
    // Full-width letters fold to ASCII.
    assert_eq!(t.encode("ａｂ"), [2]);
    assert!(t.encode("").is_empty());
}

#[test]
fn a_plain_model_averages_its_token_vectors() {
    let dir = tempfile::tempdir().unwrap();
    // One row per token, 2 dimensions; row i is (i, 1).
    let rows: Vec<f32> = (0..VOCAB.len()).flat_map(|i| [i as f32, 1.0]).collect();
    write(
        dir.path(),
        &tokenizer(VOCAB),
        &safetensors(&[("embeddings", "F32", vec![VOCAB.len(), 2], f32s(&rows))]),
        r#"{"normalize": false}"#,
    );
    let model = StaticModel::load(dir.path()).unwrap();
    assert_eq!(model.dimensions(), 2);
    // "▁ab c" → ids 2, 1, 5 → mean of (2,1), (1,1), (5,1).
    assert_eq!(model.embed("ab c"), vec![8.0 / 3.0, 1.0]);
    // "z" has no piece: only the word mark "▁" (row (1, 1)) counts.
    assert_eq!(model.embed("zzz"), vec![1.0, 1.0]);
    // Nothing at all: the zero vector, not NaN.
    assert_eq!(model.embed(" "), vec![0.0, 0.0]);
    assert_eq!(model.count_tokens("ab c"), 3);
}

#[test]
fn a_quantized_model_maps_tokens_to_rows_and_weighs_them() {
    let dir = tempfile::tempdir().unwrap();
    let mapping: Vec<u8> = (0..VOCAB.len() as i64)
        .flat_map(|i| (i % 2).to_le_bytes())
        .collect();
    let weights: Vec<f32> = (0..VOCAB.len()).map(|i| i as f32).collect();
    write(
        dir.path(),
        &tokenizer(VOCAB),
        &safetensors(&[
            ("mapping", "I64", vec![VOCAB.len()], mapping),
            ("weights", "F32", vec![VOCAB.len()], f32s(&weights)),
            // Row 0 = (3, 0), row 1 = (0, 4), int8 as model2vec stores them.
            ("embeddings", "I8", vec![2, 2], vec![3, 0, 0, 4]),
        ]),
        "{}",
    );
    let model = StaticModel::load(dir.path()).unwrap();
    // "▁ab" is id 2 → row 0, weight 2 → (6, 0), normalized → (1, 0).
    assert_eq!(model.embed("ab"), vec![1.0, 0.0]);
    // "c" is id 5 → row 1 weight 5; "▁" id 1 → row 1 weight 1: all along the second axis.
    let v = model.embed("ab c");
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
}

#[test]
fn broken_folders_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = StaticModel::load(dir.path()).unwrap_err().to_string();
    assert!(missing.contains("tokenizer.json"), "{missing}");

    let bpe =
        serde_json::to_vec(&serde_json::json!({"model": {"type": "BPE", "vocab": []}})).unwrap();
    write(dir.path(), &bpe, b"", "{}");
    let error = StaticModel::load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("only Unigram"), "{error}");

    // Fewer rows than tokens and no mapping.
    write(
        dir.path(),
        &tokenizer(VOCAB),
        &safetensors(&[("embeddings", "F32", vec![2, 2], f32s(&[0.0; 4]))]),
        "{}",
    );
    let error = StaticModel::load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("no 'mapping'"), "{error}");

    // A mapping that points past the rows.
    let mapping: Vec<u8> = (0..VOCAB.len() as i64)
        .flat_map(|_| 7i64.to_le_bytes())
        .collect();
    write(
        dir.path(),
        &tokenizer(VOCAB),
        &safetensors(&[
            ("mapping", "I64", vec![VOCAB.len()], mapping),
            ("embeddings", "F32", vec![2, 2], f32s(&[0.0; 4])),
        ]),
        "{}",
    );
    let error = StaticModel::load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("does not map"), "{error}");
}

/// The installed model (scripts/test installs it and sets `SKEIN_LOCAL_EMBED_DIR`) gives the
/// vectors its package's own Rust implementation gives, within the rounding of NFKC against
/// SentencePiece's precompiled map. Without the model installed there is nothing to compare.
#[test]
fn the_installed_model_matches_its_reference_vectors() {
    let Ok(dir) = std::env::var("SKEIN_LOCAL_EMBED_DIR") else {
        eprintln!("SKEIN_LOCAL_EMBED_DIR is not set: the real model is not checked");
        return;
    };
    let model = StaticModel::load(Path::new(&dir)).unwrap();
    assert_eq!(model.dimensions(), 64);
    let reference: Vec<Vec<f32>> =
        serde_json::from_str(include_str!("../tests/reference.json")).unwrap();
    let inputs = [
        "员工每年享有十五天带薪年假。",
        "The kettle must be descaled monthly with citric acid.",
        "Ｆｕｌｌｗｉｄｔｈ\u{3000}ＡＢＣ and ℃ tabs\there",
    ];
    for (input, expected) in inputs.iter().zip(&reference) {
        let got = model.embed(input);
        let cosine: f32 = got.iter().zip(expected).map(|(a, b)| a * b).sum();
        assert!(cosine > 0.999, "{input}: cosine {cosine} to the reference");
    }
}
