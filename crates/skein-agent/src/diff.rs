//! Comparing two versions: which settings changed (field by field, as JSON values) and a line
//! diff of the system prompt (longest common subsequence; prompts are at most 20,000
//! characters, so the table stays small).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::spec::AgentSpec;

/// A setting that differs between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldChange {
    /// The field's name.
    pub field: String,
    /// Its value in the older version.
    pub from: Value,
    /// Its value in the newer version.
    pub to: Value,
}

/// One line of a prompt diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DiffLine {
    /// `same`, `added` or `removed`.
    pub op: &'static str,
    /// The line's text.
    pub text: String,
}

/// Every field of `a` and `b` whose values differ, in the spec's field order; the system
/// prompt is included (its line diff is [`lines`]).
pub fn fields(a: &AgentSpec, b: &AgentSpec) -> Vec<FieldChange> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|(field, from)| {
            let to = b.get(field).cloned().unwrap_or(Value::Null);
            (from != &to).then(|| FieldChange {
                field: field.clone(),
                from: from.clone(),
                to,
            })
        })
        .collect()
}

/// A line diff turning `from` into `to`.
pub fn lines(from: &str, to: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = from.lines().collect();
    let b: Vec<&str> = to.lines().collect();
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let line = |op, text: &str| DiffLine {
        op,
        text: text.to_string(),
    };
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(line("same", a[i]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(line("removed", a[i]));
            i += 1;
        } else {
            out.push(line("added", b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|t| line("removed", t)));
    out.extend(b[j..].iter().map(|t| line("added", t)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_is_removed_then_added_and_the_rest_is_kept() {
        let d = lines(
            "You are a translator.\nBe brief.\nUse English.",
            "You are a translator.\nBe thorough.\nUse English.\nCite sources.",
        );
        let ops: Vec<(&str, &str)> = d.iter().map(|l| (l.op, l.text.as_str())).collect();
        assert_eq!(
            ops,
            [
                ("same", "You are a translator."),
                ("removed", "Be brief."),
                ("added", "Be thorough."),
                ("same", "Use English."),
                ("added", "Cite sources."),
            ]
        );
    }

    #[test]
    fn only_changed_fields_are_listed() {
        let a = AgentSpec {
            name: "A".into(),
            temperature: Some(0.2),
            ..AgentSpec::default()
        };
        let mut b = a.clone();
        b.temperature = Some(0.9);
        b.tags = vec!["x".into()];
        let changed: Vec<String> = fields(&a, &b).into_iter().map(|c| c.field).collect();
        assert_eq!(changed, ["tags", "temperature"]);
    }
}
