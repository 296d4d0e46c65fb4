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
    fn apply_creates_tables() {
        let mut t = toml::Table::new();
        t.insert("a".into(), toml::Value::Integer(1));
        CliOverride::parse("a.b=2").unwrap().apply(&mut t);
        assert_eq!(t["a"]["b"].as_integer(), Some(2));
    }
}
