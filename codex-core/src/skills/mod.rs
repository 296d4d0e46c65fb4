//! Skill discovery as upstream does it: every `SKILL.md` under the skill
//! roots of a working directory, with its front matter (`name`,
//! `description`, `metadata.short-description`) and the optional
//! `agents/openai.yaml` interface beside it. A file that cannot be read or
//! parsed is an error entry for that file (except in system skills, which
//! codex writes itself), never a failure of the whole listing.
//!
//! Roots, highest precedence first: `.codex/skills` in each directory from
//! the cwd up to the project root (the nearest ancestor holding `.git`) —
//! `repo`; `$CODEX_HOME/skills` and `$HOME/.agents/skills` — `user`;
//! `$CODEX_HOME/skills/.system` — `system`; `/etc/codex/skills` — `admin`;
//! then `.agents/skills` in each directory from the project root down to
//! the cwd — `repo`.

mod frontmatter;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};

use frontmatter::Value;

const SKILL_FILE: &str = "SKILL.md";
const MAX_NAME_LEN: usize = 64;
const MAX_DESCRIPTION_LEN: usize = 1024;
/// Directory levels scanned below a root.
const MAX_SCAN_DEPTH: usize = 6;
const MAX_DIRS_PER_ROOT: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkillScope {
    Repo,
    User,
    System,
    Admin,
}

impl SkillScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SkillScope::Repo => "repo",
            SkillScope::User => "user",
            SkillScope::System => "system",
            SkillScope::Admin => "admin",
        }
    }
}

/// Where to look for one working directory's skills.
#[derive(Debug, Clone)]
pub struct SkillSearch {
    pub cwd: PathBuf,
    pub codex_home: PathBuf,
    /// `$HOME` (for `~/.agents/skills`).
    pub home: Option<PathBuf>,
    /// Admin skills (`/etc/codex/skills` on Unix).
    pub admin: Option<PathBuf>,
}

impl SkillSearch {
    /// Upstream's roots for `cwd`.
    pub fn new(cwd: PathBuf, codex_home: PathBuf) -> Self {
        Self {
            cwd,
            codex_home,
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            admin: Some(PathBuf::from("/etc/codex/skills")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SkillRoot {
    pub path: PathBuf,
    pub scope: SkillScope,
}

/// `agents/openai.yaml`'s `interface`: how clients present a skill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkillInterface {
    pub display_name: Option<String>,
    pub short_description: Option<String>,
    pub icon_small: Option<PathBuf>,
    pub icon_large: Option<PathBuf>,
    pub brand_color: Option<String>,
    pub default_prompt: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub short_description: Option<String>,
    pub interface: Option<SkillInterface>,
    /// The `SKILL.md` (canonical).
    pub path: PathBuf,
    pub scope: SkillScope,
}

/// A `SKILL.md` that could not be loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct SkillLoadOutcome {
    pub skills: Vec<Skill>,
    pub errors: Vec<SkillError>,
}

/// The roots for `search`, highest precedence first, without duplicates.
pub fn roots(search: &SkillSearch) -> Vec<SkillRoot> {
    let cwd = canonical(&search.cwd);
    let project_root = project_root(&cwd);
    // cwd first, project root last.
    let upward: Vec<&Path> = {
        let mut dirs = Vec::new();
        for dir in cwd.ancestors() {
            dirs.push(dir);
            if dir == project_root {
                break;
            }
        }
        dirs
    };
    let mut roots: Vec<SkillRoot> = upward
        .iter()
        .map(|d| SkillRoot {
            path: d.join(".codex").join("skills"),
            scope: SkillScope::Repo,
        })
        .collect();
    roots.push(SkillRoot {
        path: search.codex_home.join("skills"),
        scope: SkillScope::User,
    });
    if let Some(home) = &search.home {
        roots.push(SkillRoot {
            path: home.join(".agents").join("skills"),
            scope: SkillScope::User,
        });
    }
    roots.push(SkillRoot {
        path: search.codex_home.join("skills").join(".system"),
        scope: SkillScope::System,
    });
    if let Some(admin) = &search.admin {
        roots.push(SkillRoot {
            path: admin.clone(),
            scope: SkillScope::Admin,
        });
    }
    roots.extend(upward.iter().rev().map(|d| SkillRoot {
        path: d.join(".agents").join("skills"),
        scope: SkillScope::Repo,
    }));
    let mut seen = HashSet::new();
    roots.retain(|r| seen.insert(canonical(&r.path)));
    roots
}

/// Every skill under `roots`: one entry per `SKILL.md`, repo skills
/// first, then user, system, admin; by name within a scope.
pub fn load(roots: &[SkillRoot]) -> SkillLoadOutcome {
    let mut out = SkillLoadOutcome::default();
    for root in roots {
        scan_root(root, &mut out);
    }
    let mut seen = HashSet::new();
    out.skills.retain(|s| seen.insert(s.path.clone()));
    out.skills
        .sort_by(|a, b| (a.scope, &a.name, &a.path).cmp(&(b.scope, &b.name, &b.path)));
    out
}

/// [`load`] of [`roots`].
pub fn discover(search: &SkillSearch) -> SkillLoadOutcome {
    load(&roots(search))
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn project_root(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(cwd)
        .to_path_buf()
}

fn scan_root(root: &SkillRoot, out: &mut SkillLoadOutcome) {
    let start = canonical(&root.path);
    if !start.is_dir() {
        return;
    }
    // Codex writes system skills itself; other roots may link elsewhere.
    let follow_links = root.scope != SkillScope::System;
    let mut visited = HashSet::from([start.clone()]);
    let mut queue = VecDeque::from([(start.clone(), 0usize)]);
    let mut truncated = false;
    while let Some((dir, depth)) = queue.pop_front() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot read skills directory {}: {e}", dir.display());
                continue;
            }
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            let is_dir = if ft.is_symlink() {
                follow_links && path.is_dir()
            } else {
                ft.is_dir()
            };
            if is_dir {
                if depth + 1 > MAX_SCAN_DEPTH {
                    continue;
                }
                if visited.len() >= MAX_DIRS_PER_ROOT {
                    truncated = true;
                    continue;
                }
                let resolved = canonical(&path);
                if visited.insert(resolved.clone()) {
                    queue.push_back((resolved, depth + 1));
                }
                continue;
            }
            let is_file = if ft.is_symlink() {
                follow_links && path.is_file()
            } else {
                ft.is_file()
            };
            if is_file && name == SKILL_FILE {
                match parse_skill(&path, root.scope) {
                    Ok(skill) => out.skills.push(skill),
                    Err(message) if root.scope != SkillScope::System => {
                        out.errors.push(SkillError { path, message })
                    }
                    Err(message) => {
                        tracing::warn!("system skill {}: {message}", path.display())
                    }
                }
            }
        }
    }
    if truncated {
        tracing::warn!(
            "skills scan of {} stopped after {MAX_DIRS_PER_ROOT} directories",
            start.display()
        );
    }
}

fn single_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_len(value: &str, max: usize, field: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("missing field `{field}`"));
    }
    if value.chars().count() > max {
        return Err(format!(
            "invalid {field}: exceeds maximum length of {max} characters"
        ));
    }
    Ok(())
}

fn str_field(map: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(single_line)
}

fn parse_skill(path: &Path, scope: SkillScope) -> Result<Skill, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("failed to read file: {e}"))?;
    let fm = frontmatter::extract(&text)
        .ok_or_else(|| "missing YAML frontmatter delimited by ---".to_string())?;
    let map = frontmatter::parse(&fm).map_err(|e| format!("invalid YAML: {e}"))?;
    let skill_dir = path.parent().unwrap_or(path);
    let name = str_field(&map, "name")
        .filter(|n| !n.is_empty())
        .or_else(|| {
            skill_dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(single_line)
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "skill".into());
    let description = str_field(&map, "description").unwrap_or_default();
    let short_description = match map.get("metadata") {
        Some(Value::Map(meta)) => str_field(meta, "short-description").filter(|s| !s.is_empty()),
        _ => None,
    };
    check_len(&name, MAX_NAME_LEN, "name")?;
    check_len(&description, MAX_DESCRIPTION_LEN, "description")?;
    if let Some(s) = &short_description {
        check_len(s, MAX_DESCRIPTION_LEN, "metadata.short-description")?;
    }
    Ok(Skill {
        name,
        description,
        short_description,
        interface: interface(skill_dir),
        path: canonical(path),
        scope,
    })
}

/// `agents/openai.yaml`'s `interface`; optional, so any problem with it is
/// logged and the skill loads without one (as upstream).
fn interface(skill_dir: &Path) -> Option<SkillInterface> {
    let file = skill_dir.join("agents").join("openai.yaml");
    let text = std::fs::read_to_string(&file).ok()?;
    let map = match frontmatter::parse(&text) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", file.display());
            return None;
        }
    };
    let Some(Value::Map(i)) = map.get("interface") else {
        return None;
    };
    let bounded = |key: &str, max: usize| {
        str_field(i, key).filter(|v| !v.is_empty() && v.chars().count() <= max)
    };
    let icon = |key: &str| {
        i.get(key)
            .and_then(Value::as_str)
            .and_then(|p| asset_path(skill_dir, p))
    };
    let out = SkillInterface {
        display_name: bounded("display_name", MAX_NAME_LEN),
        short_description: bounded("short_description", MAX_DESCRIPTION_LEN),
        icon_small: icon("icon_small"),
        icon_large: icon("icon_large"),
        brand_color: i
            .get("brand_color")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|c| {
                c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|h| h.is_ascii_hexdigit())
            })
            .map(str::to_string),
        default_prompt: bounded("default_prompt", MAX_DESCRIPTION_LEN),
    };
    (out != SkillInterface::default()).then_some(out)
}

/// An icon must be a relative path under the skill's `assets/`.
fn asset_path(skill_dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel.trim());
    let mut normal = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(p) => normal.push(p),
            _ => return None,
        }
    }
    normal
        .starts_with("assets")
        .then(|| skill_dir.join(normal))
        .filter(|p| p.components().count() > skill_dir.components().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn skill_md(name: &str, description: &str) -> String {
        format!("---\nname: {name}\ndescription: |-\n  {description}\n---\n\n# Body\n")
    }

    struct Layout {
        _tmp: tempfile::TempDir,
        home: PathBuf,
        codex_home: PathBuf,
        repo: PathBuf,
    }

    fn layout() -> Layout {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let home = root.join("home");
        let codex_home = home.join(".codex");
        let repo = root.join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(&codex_home).unwrap();
        Layout {
            _tmp: tmp,
            home,
            codex_home,
            repo,
        }
    }

    fn search(l: &Layout, cwd: &Path) -> SkillSearch {
        SkillSearch {
            cwd: cwd.to_path_buf(),
            codex_home: l.codex_home.clone(),
            home: Some(l.home.clone()),
            admin: None,
        }
    }

    #[test]
    fn finds_nested_skills_in_home_and_repo_roots() {
        let l = layout();
        let sub = l.repo.join("crates").join("a");
        std::fs::create_dir_all(&sub).unwrap();
        write(
            &l.codex_home.join("skills/group/deep/SKILL.md"),
            &skill_md("deep-one", "nested\n  twice"),
        );
        write(
            &l.home.join(".agents/skills/agent/SKILL.md"),
            &skill_md("agent-skill", "from ~/.agents"),
        );
        write(
            &l.repo.join(".codex/skills/repo-codex/SKILL.md"),
            &skill_md("repo-codex", "from the repo's .codex"),
        );
        write(
            &sub.join(".agents/skills/local/SKILL.md"),
            &skill_md("local", "next to the cwd"),
        );
        write(
            &l.codex_home.join("skills/.system/sys/SKILL.md"),
            &skill_md("sys", "system"),
        );
        // Outside the project: not a root.
        write(
            &l.repo
                .parent()
                .unwrap()
                .join(".agents/skills/outside/SKILL.md"),
            &skill_md("outside", "above the project root"),
        );

        let out = discover(&search(&l, &sub));
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let got: Vec<(&str, SkillScope)> = out
            .skills
            .iter()
            .map(|s| (s.name.as_str(), s.scope))
            .collect();
        assert_eq!(
            got,
            vec![
                ("local", SkillScope::Repo),
                ("repo-codex", SkillScope::Repo),
                ("agent-skill", SkillScope::User),
                ("deep-one", SkillScope::User),
                ("sys", SkillScope::System),
            ]
        );
        let deep = &out.skills[3];
        assert_eq!(deep.description, "nested twice");
        assert_eq!(deep.path, l.codex_home.join("skills/group/deep/SKILL.md"));
    }

    #[test]
    fn bad_front_matter_is_an_error_for_that_file_only() {
        let l = layout();
        let skills = l.codex_home.join("skills");
        write(&skills.join("good/SKILL.md"), &skill_md("good", "fine"));
        write(&skills.join("nofm/SKILL.md"), "# no front matter\n");
        write(&skills.join("open/SKILL.md"), "---\nname: open\n");
        write(
            &skills.join("yaml/SKILL.md"),
            "---\nname: \"unterminated\ndescription: x\n---\n",
        );
        write(&skills.join("nodesc/SKILL.md"), "---\nname: nodesc\n---\n");
        write(
            &skills.join("long/SKILL.md"),
            &skill_md("long", &"x".repeat(MAX_DESCRIPTION_LEN + 1)),
        );
        // Broken system skills are not reported.
        write(&skills.join(".system/broken/SKILL.md"), "nothing");

        let out = discover(&search(&l, &l.repo));
        assert_eq!(
            out.skills
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["good"]
        );
        let mut errors: Vec<(String, String)> = out
            .errors
            .iter()
            .map(|e| {
                let dir = e.path.parent().unwrap().file_name().unwrap();
                (dir.to_string_lossy().into_owned(), e.message.clone())
            })
            .collect();
        errors.sort();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].0 == "long" && errors[0].1.contains("invalid description"));
        assert!(errors[1].0 == "nodesc" && errors[1].1 == "missing field `description`");
        assert!(errors[2].0 == "nofm" && errors[2].1.contains("missing YAML frontmatter"));
        assert!(errors[3].0 == "open" && errors[3].1.contains("missing YAML frontmatter"));
        assert!(errors[4].0 == "yaml" && errors[4].1.starts_with("invalid YAML: "));
    }

    #[test]
    fn name_defaults_to_the_directory_and_interface_is_read() {
        let l = layout();
        let dir = l.codex_home.join("skills/fallback");
        write(
            &dir.join("SKILL.md"),
            "---\ndescription: d\nmetadata:\n  short-description: short\n---\n",
        );
        write(
            &dir.join("agents/openai.yaml"),
            "interface:\n  display_name: \"Fall Back\"\n  icon_small: ./assets/s.png\n  \
             icon_large: ../escape.png\n  brand_color: \"#0A0B0C\"\n  default_prompt: Use it\n",
        );
        let out = discover(&search(&l, &l.repo));
        let s = &out.skills[0];
        assert_eq!(s.name, "fallback");
        assert_eq!(s.short_description.as_deref(), Some("short"));
        let i = s.interface.as_ref().unwrap();
        assert_eq!(i.display_name.as_deref(), Some("Fall Back"));
        assert_eq!(
            i.icon_small.as_deref(),
            Some(dir.join("assets/s.png").as_path())
        );
        assert_eq!(i.icon_large, None);
        assert_eq!(i.brand_color.as_deref(), Some("#0A0B0C"));
        assert_eq!(i.default_prompt.as_deref(), Some("Use it"));
    }

    #[test]
    fn roots_without_a_git_root_are_the_cwd_only() {
        let l = layout();
        let plain = l.home.join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        let r = roots(&search(&l, &plain));
        let repo_roots: Vec<&Path> = r
            .iter()
            .filter(|r| r.scope == SkillScope::Repo)
            .map(|r| r.path.as_path())
            .collect();
        assert_eq!(
            repo_roots,
            [plain.join(".codex/skills"), plain.join(".agents/skills")]
        );
    }
}
