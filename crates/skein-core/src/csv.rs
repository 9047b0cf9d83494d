//! CSV exports (usage, ledger, codes, the audit log): one way to write a field.

/// Quotes a CSV field when it needs it, and defuses spreadsheet formulas: a text that starts
/// with `=`, `+`, `-` or `@` (and is not a number) gets a leading `'`, so a spreadsheet shows it
/// instead of running it.
pub fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}
