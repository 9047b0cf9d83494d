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

/// Whether `value` fits `schema`; the error names where it does not (`settings.units`).
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(schema, value, "settings", 0)
}

fn validate_at(schema: &Value, value: &Value, at: &str, depth: usize) -> Result<(), String> {
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
            return Err(format!("{at} must be of type {kind}"));
        }
    }
    if let Some(choices) = map.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        return Err(format!(
            "{at} must be one of {}",
            Value::Array(choices.clone())
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = map.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{at} must be at least {min}"));
        }
        if let Some(max) = map.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{at} must be at most {max}"));
        }
    }
    if let (Some(text), Some(max)) = (value.as_str(), map.get("maxLength").and_then(Value::as_u64))
        && text.chars().count() as u64 > max
    {
        return Err(format!("{at} must be at most {max} characters"));
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
                return Err(format!("{at}.{name} is required"));
            }
        }
        for (name, item) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(node) => validate_at(node, item, &format!("{at}.{name}"), depth + 1)?,
                None if map.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}.{name} is not a known setting"));
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
            validate(&schema, &json!({"days": 3})).unwrap_err(),
            "settings.units is required"
        );
        assert!(
            validate(&schema, &json!({"units": "kelvin"}))
                .unwrap_err()
                .contains("one of")
        );
        assert_eq!(
            validate(&schema, &json!({"units": "metric", "days": 9})).unwrap_err(),
            "settings.days must be at most 7"
        );
        assert_eq!(
            validate(&schema, &json!({"units": "metric", "days": "3"})).unwrap_err(),
            "settings.days must be of type integer"
        );
        assert_eq!(
            validate(&schema, &json!({"units": "metric", "x": 1})).unwrap_err(),
            "settings.x is not a known setting"
        );
        assert!(check_schema(&json!({"type": "string"})).is_err());
        assert!(
            check_schema(&json!({"type": "object", "properties": {"a": {"type": "date"}}}))
                .is_err()
        );
        assert!(check_schema(&json!({})).is_ok());
    }
}
