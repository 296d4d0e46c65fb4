//! The YAML front matter of a `SKILL.md`: the block between a first line
//! `---` and the next `---`. Only what skills use is understood: `key:
//! value` pairs, quoted scalars, `|`/`>` block scalars, nested mappings
//! (`metadata:`), block sequences (`- item`), and flow collections kept as
//! their text (no field read here is a collection). Anything else is an
//! error naming the line, so a malformed file is reported rather than half
//! read.

use std::collections::BTreeMap;

/// A front-matter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(String),
    Map(BTreeMap<String, Value>),
    List(Vec<String>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Scalar(s) => Some(s),
            Value::Map(_) | Value::List(_) => None,
        }
    }
}

/// The text between the `---` fences (`None`: no front matter, or an
/// empty or unterminated one), as upstream extracts it.
pub fn extract(contents: &str) -> Option<String> {
    let mut lines = contents.lines();
    if !matches!(lines.next(), Some(l) if l.trim() == "---") {
        return None;
    }
    let mut body = Vec::new();
    for line in lines {
        if line.trim() == "---" {
            return (!body.is_empty()).then(|| body.join("\n"));
        }
        body.push(line);
    }
    None
}

/// Parses the front matter into its top-level mapping.
pub fn parse(text: &str) -> Result<BTreeMap<String, Value>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    parse_map(&lines, &mut i, 0)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Parses `key: value` lines at exactly `indent` until a line indented less.
fn parse_map(
    lines: &[&str],
    i: &mut usize,
    indent: usize,
) -> Result<BTreeMap<String, Value>, String> {
    let mut map = BTreeMap::new();
    while *i < lines.len() {
        let line = lines[*i];
        if is_blank(line) {
            *i += 1;
            continue;
        }
        if line[..line.len() - line.trim_start().len()].contains('\t') {
            return Err(format!(
                "line {}: tabs are not allowed for indentation",
                *i + 1
            ));
        }
        let ind = indent_of(line);
        if ind < indent {
            break;
        }
        if ind > indent {
            return Err(format!("line {}: unexpected indentation", *i + 1));
        }
        let rest = &line[ind..];
        let Some((key, value)) = split_key(rest) else {
            return Err(format!(
                "line {}: expected `key: value`, found {rest:?}",
                *i + 1
            ));
        };
        *i += 1;
        let value = value.trim();
        let parsed = if value.is_empty() {
            // A nested mapping, or an empty value.
            match next_content_indent(lines, *i) {
                Some(child) if child >= indent && is_item(lines, *i) => {
                    Value::List(parse_list(lines, i, child)?)
                }
                Some(child) if child > indent => Value::Map(parse_map(lines, i, child)?),
                _ => Value::Scalar(String::new()),
            }
        } else if let Some(style) = value.strip_prefix(['|', '>']) {
            let folded = value.starts_with('>');
            let keep_last = !style.contains('-');
            Value::Scalar(block_scalar(lines, i, indent, folded, keep_last))
        } else {
            Value::Scalar(scalar(lines, i, indent, value)?)
        };
        if map.insert(key.to_string(), parsed).is_some() {
            return Err(format!("line {}: duplicate key `{key}`", *i));
        }
    }
    Ok(map)
}

/// `key: rest`, where the key may be quoted.
fn split_key(s: &str) -> Option<(&str, &str)> {
    let (key, rest) = if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        (&q[..end], q[end + 1..].strip_prefix(':')?)
    } else if let Some(q) = s.strip_prefix('\'') {
        let end = q.find('\'')?;
        (&q[..end], q[end + 1..].strip_prefix(':')?)
    } else {
        let pos = s
            .find(": ")
            .or_else(|| s.strip_suffix(':').map(|k| k.len()))?;
        (&s[..pos], &s[pos + 1..])
    };
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('-')).then_some((key, rest))
}

/// Whether the next content line is a sequence item.
fn is_item(lines: &[&str], from: usize) -> bool {
    lines[from..]
        .iter()
        .find(|l| !is_blank(l))
        .is_some_and(|l| l.trim() == "-" || l.trim_start().starts_with("- "))
}

/// `- item` lines at `indent`; an item's deeper lines continue it.
fn parse_list(lines: &[&str], i: &mut usize, indent: usize) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    while *i < lines.len() {
        let line = lines[*i];
        if is_blank(line) {
            *i += 1;
            continue;
        }
        if indent_of(line) != indent || !is_item(lines, *i) {
            break;
        }
        let first = line.trim_start()[1..].trim();
        *i += 1;
        items.push(if first.is_empty() {
            String::new()
        } else {
            scalar(lines, i, indent, first)?
        });
    }
    Ok(items)
}

fn next_content_indent(lines: &[&str], from: usize) -> Option<usize> {
    lines[from..]
        .iter()
        .find(|l| !is_blank(l))
        .map(|l| indent_of(l))
}

/// A `|` or `>` block: the following lines indented deeper than `indent`.
fn block_scalar(
    lines: &[&str],
    i: &mut usize,
    indent: usize,
    folded: bool,
    keep_last: bool,
) -> String {
    let mut body: Vec<&str> = Vec::new();
    let mut block_indent = None;
    while *i < lines.len() {
        let line = lines[*i];
        if line.trim().is_empty() {
            body.push("");
            *i += 1;
            continue;
        }
        let ind = indent_of(line);
        if ind <= indent {
            break;
        }
        let bi = *block_indent.get_or_insert(ind);
        body.push(line.get(bi.min(ind)..).unwrap_or(""));
        *i += 1;
    }
    while body.last() == Some(&"") {
        body.pop();
    }
    let mut text = if folded {
        body.join(" ")
    } else {
        body.join("\n")
    };
    if keep_last && !text.is_empty() {
        text.push('\n');
    }
    text
}

/// A plain or quoted scalar, possibly continued on deeper-indented lines.
fn scalar(lines: &[&str], i: &mut usize, indent: usize, first: &str) -> Result<String, String> {
    let line_no = *i;
    if let Some(q) = first.strip_prefix('"') {
        return double_quoted(q).ok_or_else(|| format!("line {line_no}: unterminated string"));
    }
    if let Some(q) = first.strip_prefix('\'') {
        return single_quoted(q).ok_or_else(|| format!("line {line_no}: unterminated string"));
    }
    if first.starts_with(['&', '*', '!']) {
        return Err(format!(
            "line {line_no}: anchors and tags are not supported"
        ));
    }
    let mut text = strip_comment(first).to_string();
    // Plain multi-line scalars fold into one line.
    while *i < lines.len() && !is_blank(lines[*i]) && indent_of(lines[*i]) > indent {
        text.push(' ');
        text.push_str(strip_comment(lines[*i].trim()));
        *i += 1;
    }
    Ok(text)
}

fn strip_comment(s: &str) -> &str {
    match s.find(" #") {
        Some(pos) => s[..pos].trim_end(),
        None => s,
    }
}

fn double_quoted(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

fn single_quoted(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(m: &'a BTreeMap<String, Value>, k: &str) -> &'a str {
        m.get(k).and_then(Value::as_str).unwrap_or_default()
    }

    #[test]
    fn extracts_between_fences() {
        assert_eq!(
            extract("---\nname: a\n---\nbody").as_deref(),
            Some("name: a")
        );
        assert_eq!(extract("name: a\n---\n"), None);
        assert_eq!(extract("---\nname: a\n"), None);
        assert_eq!(extract("---\n---\n"), None);
    }

    #[test]
    fn parses_the_shapes_skills_use() {
        let m = parse(
            "name: demo\ndescription: |-\n  does things\n  carefully\n\
             quoted: \"a \\\"b\\\"\"\nsingle: 'it''s'\nfolded: >\n  one\n  two\n\
             metadata:\n  short-description: short # comment\n# a comment\nlong: first\n  second\n\
             allowed-tools:\n  - Read\n  - \"Bash(git:*)\"\ntags:\n- a\nflow: [x, y]",
        )
        .unwrap();
        assert_eq!(get(&m, "name"), "demo");
        assert_eq!(get(&m, "description"), "does things\ncarefully");
        assert_eq!(get(&m, "quoted"), "a \"b\"");
        assert_eq!(get(&m, "single"), "it's");
        assert_eq!(get(&m, "folded"), "one two\n");
        assert_eq!(get(&m, "long"), "first second");
        let Some(Value::Map(meta)) = m.get("metadata") else {
            panic!("metadata is a map: {m:?}");
        };
        assert_eq!(get(meta, "short-description"), "short");
        assert_eq!(
            m.get("allowed-tools"),
            Some(&Value::List(vec!["Read".into(), "Bash(git:*)".into()]))
        );
        assert_eq!(m.get("tags"), Some(&Value::List(vec!["a".into()])));
        assert_eq!(get(&m, "flow"), "[x, y]");
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse("just text").unwrap_err().contains("line 1"));
        assert!(parse("name: \"open").unwrap_err().contains("unterminated"));
        assert!(parse("a:\n  b: 1\n c: 2")
            .unwrap_err()
            .contains("indentation"));
        assert!(parse("a: 1\na: 2").unwrap_err().contains("duplicate"));
        assert!(parse("a: &anchor 1").unwrap_err().contains("anchors"));
        assert!(parse("a:\n  - x\n  b: 1")
            .unwrap_err()
            .contains("indentation"));
    }
}
