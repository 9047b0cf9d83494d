//! JSON as text: one `path: value` line per leaf, one paragraph per top-level entry (an object's
//! key or an array's element), so a record stays together and its field names are searchable.

use serde_json::Value;
use skein_text::chunk::Block;

use super::{ExtractError, Format};

/// The paragraphs of a JSON document.
pub(crate) fn extract(bytes: &[u8]) -> Result<Vec<Block>, ExtractError> {
    let text = super::text::decode(bytes);
    let value: Value =
        serde_json::from_str(&text).map_err(|e| ExtractError::corrupt(Format::Json, e))?;
    let entries: Vec<(String, &Value)> = match &value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v))
            .collect(),
        scalar => vec![(String::new(), scalar)],
    };
    let mut blocks = Vec::new();
    for (key, value) in entries {
        let mut lines = Vec::new();
        leaves(&key, value, &mut lines);
        if !lines.is_empty() {
            blocks.push(Block::paragraph(lines.join("\n")));
        }
    }
    Ok(blocks)
}

fn leaves(path: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(&child, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::Null => {}
        Value::String(s) if path.is_empty() => out.push(s.clone()),
        Value::String(s) => out.push(format!("{path}: {s}")),
        other if path.is_empty() => out.push(other.to_string()),
        other => out.push(format!("{path}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_paragraphs_of_leaves() {
        let blocks =
            extract(br#"[{"name":"Basic","price":10,"tags":["a"]},{"name":"Pro"}]"#).unwrap();
        assert_eq!(
            blocks,
            [
                Block::paragraph("[0].name: Basic\n[0].price: 10\n[0].tags[0]: a"),
                Block::paragraph("[1].name: Pro"),
            ]
        );
        assert!(matches!(
            extract(b"{broken"),
            Err(ExtractError::Corrupt { .. })
        ));
    }
}
