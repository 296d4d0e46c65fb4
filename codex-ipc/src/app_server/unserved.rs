//! Params a method does not serve. A params struct collects every key it
//! does not declare (`#[serde(flatten)] rest: Map<String, Value>`); the keys
//! that carry a choice are named to the caller in one `warning`, so nothing
//! a client gives is dropped silently. Null and absent are the same, and so
//! are the "nothing chosen" values (`false`, `""`, `[]`, `{}`) and a field's
//! documented default.

use serde_json::{Map, Value};

/// Whether `v` says anything (not null, `false`, `""`, `[]` or `{}`).
pub fn is_given(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// The keys of `rest` that carry a choice, sorted; `defaults` are
/// (key, value) pairs that choose nothing.
pub fn given_keys(rest: &Map<String, Value>, defaults: &[(&str, Value)]) -> Vec<String> {
    let mut keys: Vec<String> = rest
        .iter()
        .filter(|(k, v)| is_given(v) && !defaults.iter().any(|(dk, dv)| dk == k && dv == *v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort();
    keys
}

/// The `warning` text naming `keys` (`None` when there are none).
pub fn warning(method: &str, keys: &[String]) -> Option<String> {
    let items: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    described_warning(method, &items)
}

/// The `warning` text for `items` already described (e.g. "`collaborationMode`
/// `plan` (runs as default)"); `None` when there are none.
pub fn described_warning(method: &str, items: &[String]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    Some(format!(
        "{method}: this server does not support {}; ignored",
        items.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_choices_are_named() {
        let rest = json!({
            "serviceName": null, "projectId": "p", "environments": [], "flag": false,
            "approvalsReviewer": "user", "zeta": {"a": 1}, "personality": "pragmatic",
        });
        let keys = given_keys(
            rest.as_object().unwrap(),
            &[("approvalsReviewer", json!("user"))],
        );
        assert_eq!(keys, ["personality", "projectId", "zeta"]);
        assert_eq!(
            warning("thread/start", &keys).unwrap(),
            "thread/start: this server does not support `personality`, `projectId`, `zeta`; ignored"
        );
        assert!(warning("thread/start", &[]).is_none());
    }
}
