//! `{{ name }}` substitution for upstream's prompt templates.

/// Replaces each `{{ name }}` (upstream's spacing) with its value in one
/// left-to-right pass, so a value that itself contains `{{ ... }}` (rollout
/// text can) is never expanded again.
pub(crate) fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'outer: while let Some(start) = rest.find("{{ ") {
        for (name, value) in vars {
            let placeholder = format!("{{{{ {name} }}}}");
            if rest[start..].starts_with(&placeholder) {
                out.push_str(&rest[..start]);
                out.push_str(value);
                rest = &rest[start + placeholder.len()..];
                continue 'outer;
            }
        }
        out.push_str(&rest[..start + 3]);
        rest = &rest[start + 3..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn substitutes_once() {
        let out = super::render(
            "a {{ x }} b {{ y }} {{ z }}",
            &[("x", "{{ y }}"), ("y", "2")],
        );
        assert_eq!(out, "a {{ y }} b 2 {{ z }}");
    }
}
