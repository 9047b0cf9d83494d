//! A small JSON Schema check for plugins' settings: the subset a settings form needs
//! (`type`, `properties`, `required`, `enum`, `additionalProperties: false`, `minimum`,
//! `maximum`, `maxLength`, `items`). A user's settings for a plugin are checked against its
//! schema, so a tool never reads a setting of the wrong shape.

use serde_json::Value;

/// The deepest schema accepted (settings are shallow; this bounds the recursion).
const MAX_DEPTH: usize = 8;

/// Whether `schema` is one this check can apply: an object schema (or `{}`, no settings).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    let Some(map) = schema.as_object() else {
        return Err("the schema must be a JSON object".into());
    };
    if map.is_empty() {
        return Ok(());
    }
    if map.get("type").and_then(Value::as_str) != Some("object") {
        return Err("the schema's type must be \"object\"".into());
    }
    check_node(schema, 0)
}

fn check_node(schema: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("the schema is nested deeper than {MAX_DEPTH}"));
    }
    let Some(map) = schema.as_object() else {
        return Err("every schema must be a JSON object".into());
    };
    if let Some(kind) = map.get("type") {
        match kind.as_str() {
            Some("object" | "string" | "integer" | "number" | "boolean" | "array" | "null") => {}
            _ => return Err(format!("unknown type {kind}")),
        }
    }
    if let Some(properties) = map.get("properties") {
        let Some(properties) = properties.as_object() else {
            return Err("properties must be an object".into());
        };
        for node in properties.values() {
            check_node(node, depth + 1)?;
        }
    }
    if let Some(required) = map.get("required")
        && !required
            .as_array()
            .is_some_and(|r| r.iter().all(Value::is_string))
    {
        return Err("required must be an array of names".into());
    }
    if let Some(items) = map.get("items") {
        check_node(items, depth + 1)?;
    }
    Ok(())
}

/// Where and how a value does not fit its schema, in English and Chinese.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    /// The path of the value that does not fit (`settings.units`, `settings.tags[2]`).
    pub at: String,
    /// What is wrong, in English, naming `at`.
    pub en: String,
    /// What is wrong, in Chinese, naming `at`.
    pub zh: String,
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.en)
    }
}

fn misfit(at: &str, en: String, zh: String) -> Misfit {
    Misfit {
        at: at.to_string(),
        en,
        zh,
    }
}

/// Whether `value` fits `schema`; the error names where it does not (`settings.units`).
pub fn validate(schema: &Value, value: &Value) -> Result<(), Misfit> {
    validate_at(schema, value, "settings", 0)
}

fn validate_at(schema: &Value, value: &Value, at: &str, depth: usize) -> Result<(), Misfit> {
    let Some(map) = schema.as_object() else {
        return Ok(());
    };
    if depth > MAX_DEPTH {
        return Ok(());
    }
    if let Some(kind) = map.get("type").and_then(Value::as_str) {
        let fits = match kind {
            "object" => value.is_object(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => true,
        };
        if !fits {
            return Err(misfit(
                at,
                format!("{at} must be of type {kind}"),
                format!("{at} 的类型须为 {kind}"),
            ));
        }
    }
    if let Some(choices) = map.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        let choices = Value::Array(choices.clone());
        return Err(misfit(
            at,
            format!("{at} must be one of {choices}"),
            format!("{at} 须为 {choices} 之一"),
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = map.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(misfit(
                at,
                format!("{at} must be at least {min}"),
                format!("{at} 不能小于 {min}"),
            ));
        }
        if let Some(max) = map.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(misfit(
                at,
                format!("{at} must be at most {max}"),
                format!("{at} 不能大于 {max}"),
            ));
        }
    }
    if let (Some(text), Some(max)) = (value.as_str(), map.get("maxLength").and_then(Value::as_u64))
        && text.chars().count() as u64 > max
    {
        return Err(misfit(
            at,
            format!("{at} must be at most {max} characters"),
            format!("{at} 不能超过 {max} 个字符"),
        ));
    }
    if let Some(object) = value.as_object() {
        let properties = map.get("properties").and_then(Value::as_object);
        for name in map
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                let path = format!("{at}.{name}");
                return Err(misfit(
                    &path,
                    format!("{path} is required"),
                    format!("{path} 为必填项"),
                ));
            }
        }
        for (name, item) in object {
            let path = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(node) => validate_at(node, item, &path, depth + 1)?,
                None if map.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(misfit(
                        &path,
                        format!("{path} is not a known setting"),
                        format!("{path} 不是已知的设置项"),
                    ));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (map.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate_at(items, item, &format!("{at}[{i}]"), depth + 1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_checked_against_the_schema() {
        let schema = json!({"type": "object", "additionalProperties": false, "required": ["units"],
            "properties": {"units": {"type": "string", "enum": ["metric", "imperial"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7}}});
        check_schema(&schema).unwrap();
        assert!(validate(&schema, &json!({"units": "metric", "days": 3})).is_ok());
        assert_eq!(
            validate(&schema, &json!({"days": 3}))
                .unwrap_err()
                .to_string(),
            "settings.units is required"
        );
        assert!(
            validate(&schema, &json!({"units": "kelvin"}))
                .unwrap_err()
                .en
                .contains("one of")
        );
        assert_eq!(
            validate(&schema, &json!({"units": "metric", "days": 9}))
                .unwrap_err()
                .en,
            "settings.days must be at most 7"
        );
        assert_eq!(
            validate(&schema, &json!({"units": "metric", "days": "3"}))
                .unwrap_err()
                .en,
            "settings.days must be of type integer"
        );
        assert_eq!(
            validate(&schema, &json!({"units": "metric", "x": 1}))
                .unwrap_err()
                .at,
            "settings.x"
        );
        assert!(check_schema(&json!({"type": "string"})).is_err());
        assert!(
            check_schema(&json!({"type": "object", "properties": {"a": {"type": "date"}}}))
                .is_err()
        );
        assert!(check_schema(&json!({})).is_ok());
    }
}
