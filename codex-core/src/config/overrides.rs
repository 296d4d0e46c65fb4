//! `-c key=value` overrides: a dotted key path and a TOML value (a bare word
//! that is not valid TOML is taken as a string, so `-c model=o3` works).

use super::ConfigError;

/// One parsed `-c` override.
#[derive(Debug, Clone, PartialEq)]
pub struct CliOverride {
    pub path: Vec<String>,
    pub value: toml::Value,
    /// The argument as given, for error messages.
    pub raw: String,
}

impl CliOverride {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let (key, value) = raw.split_once('=').ok_or_else(|| ConfigError::Override {
            arg: raw.to_string(),
            reason: "missing '=' (expected key=value)".into(),
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError::Override {
                arg: raw.to_string(),
                reason: "empty key".into(),
            });
        }
        let value = value.trim();
        let parsed = toml::from_str::<toml::Table>(&format!("_x_ = {value}"))
            .ok()
            .and_then(|mut t| t.remove("_x_"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        Ok(Self {
            path: key.split('.').map(|s| s.trim().to_string()).collect(),
            value: parsed,
            raw: raw.to_string(),
        })
    }

    /// An override from a dotted key and a JSON value (app-server `config`
    /// params). `null` is not representable in TOML and is refused.
    pub fn from_json(key: &str, value: &serde_json::Value) -> Result<Self, ConfigError> {
        let raw = format!("{key}={value}");
        let value = json_to_toml(value).ok_or_else(|| ConfigError::Override {
            arg: raw.clone(),
            reason: "null (or a non-finite number) has no TOML form".into(),
        })?;
        if key.trim().is_empty() {
            return Err(ConfigError::Override {
                arg: raw,
                reason: "empty key".into(),
            });
        }
        Ok(Self {
            path: key.split('.').map(|s| s.trim().to_string()).collect(),
            value,
            raw,
        })
    }

    /// Writes the value into `table`, creating (or replacing) intermediate tables.
    pub fn apply(&self, table: &mut toml::Table) {
        let Some((last, parents)) = self.path.split_last() else {
            return;
        };
        let mut cur = table;
        for seg in parents {
            let entry = cur
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            let toml::Value::Table(next) = entry else {
                return;
            };
            cur = next;
        }
        cur.insert(last.clone(), self.value.clone());
    }
}

fn json_to_toml(v: &serde_json::Value) -> Option<toml::Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => toml::Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().filter(|f| f.is_finite())?),
        },
        J::String(s) => toml::Value::String(s.clone()),
        J::Array(a) => toml::Value::Array(a.iter().map(json_to_toml).collect::<Option<_>>()?),
        J::Object(m) => toml::Value::Table(
            m.iter()
                .filter_map(|(k, v)| json_to_toml(v).map(|v| (k.clone(), v)))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_values_and_bare_strings() {
        let o = CliOverride::parse("model=o3").unwrap();
        assert_eq!(o.value, toml::Value::String("o3".into()));
        let o = CliOverride::parse("model=\"o3\"").unwrap();
        assert_eq!(o.value, toml::Value::String("o3".into()));
        let o = CliOverride::parse("a.b.c=[1, 2]").unwrap();
        assert_eq!(o.path, vec!["a", "b", "c"]);
        assert!(o.value.is_array());
        let o = CliOverride::parse("x=true").unwrap();
        assert_eq!(o.value, toml::Value::Boolean(true));
        assert!(CliOverride::parse("novalue").is_err());
        assert!(CliOverride::parse("=1").is_err());
    }

    #[test]
    fn from_json_values() {
        let o = CliOverride::from_json(
            "sandbox_workspace_write.network_access",
            &serde_json::json!(true),
        )
        .unwrap();
        assert_eq!(o.path, vec!["sandbox_workspace_write", "network_access"]);
        assert_eq!(o.value, toml::Value::Boolean(true));
        assert!(CliOverride::from_json("model", &serde_json::Value::Null).is_err());
    }

    #[test]
    fn apply_creates_tables() {
        let mut t = toml::Table::new();
        t.insert("a".into(), toml::Value::Integer(1));
        CliOverride::parse("a.b=2").unwrap().apply(&mut t);
        assert_eq!(t["a"]["b"].as_integer(), Some(2));
    }
}
