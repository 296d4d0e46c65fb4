//! What a confined command may never reach, whatever its policy grants: the
//! runtime's own control plane and the user's credentials. A sandbox that
//! lets a command read `auth.json`, or connect to codexd's socket and start
//! a thread with `danger-full-access`, is no sandbox.
//!
//! - **hidden** paths: a file or socket appears as an empty character
//!   device (`/dev/null`: reads give nothing, `connect` is refused), a
//!   directory appears empty;
//! - **read-only** paths: not writable even inside a writable root
//!   (`$CODEX_HOME`, whose `config.toml` decides the next sandbox);
//! - **local sockets**: a command reaches only the pathname unix sockets
//!   the configuration names (`[permissions.network] allow_unix_sockets`,
//!   e.g. an ssh-agent); every other one that exists when it starts is
//!   hidden, abstract sockets outside the sandbox are out of scope, and
//!   without network or named sockets `connect` itself is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    pub hidden: Vec<PathBuf>,
    pub read_only: Vec<PathBuf>,
    /// Pathname unix sockets a command may connect to.
    pub allow_unix_sockets: Vec<PathBuf>,
    /// Every local socket but the hidden ones is reachable
    /// (`dangerously_allow_all_unix_sockets`).
    pub allow_all_unix_sockets: bool,
}

impl Protection {
    /// The defaults for a runtime whose home is `codex_home`, in an
    /// environment `env` (the D-Bus session bus, `XDG_RUNTIME_DIR`, `HOME`).
    pub fn for_home<'a>(
        codex_home: &Path,
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut p = Protection::default();
        for name in [
            "auth.json",
            ".credentials.json",
            "audit",
            "codexd",
            "app-server-control",
        ] {
            p.hidden.push(codex_home.join(name));
        }
        // Where app-server sockets really live (the control socket above is
        // a symlink into it); hides every daemon of this user, ours or not.
        p.hidden.push(daemon_socket_root());
        p.read_only.push(codex_home.to_path_buf());
        let mut runtime_dir = None;
        for (k, v) in env {
            match k {
                "DBUS_SESSION_BUS_ADDRESS" => p.hidden.extend(dbus_socket_paths(v)),
                "XDG_RUNTIME_DIR" if !v.is_empty() => runtime_dir = Some(PathBuf::from(v)),
                "HOME" if !v.is_empty() => {
                    p.hidden.push(Path::new(v).join(".local/share/keyrings"));
                }
                _ => {}
            }
        }
        if let Some(dir) = runtime_dir {
            // The session bus and gnome-keyring's control socket.
            p.hidden.push(dir.join("bus"));
            p.hidden.push(dir.join("keyring"));
        }
        p
    }

    /// The defaults of [`Protection::for_home`] plus what `config` says
    /// about local sockets.
    pub fn for_config(config: &crate::config::Config) -> Self {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let mut p = Self::for_home(
            &config.codex_home,
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        p.allow_unix_sockets = config.unix_sockets.allow.clone();
        p.allow_all_unix_sockets = config.unix_sockets.allow_all;
        p
    }

    /// Also hides `path` (a socket of the host, a token file, ...).
    pub fn hide(&mut self, path: impl Into<PathBuf>) {
        self.hidden.push(path.into());
    }
}

/// The private directory of this user's app-server sockets, as upstream
/// lays it out: `/tmp/codex-daemon-<euid>` with `/tmp` canonicalized. Upstream
/// uses the literal `/tmp`, not `$TMPDIR`, so that every client computes the
/// same place whatever its environment.
pub fn daemon_socket_root() -> PathBuf {
    let tmp = std::fs::canonicalize("/tmp").unwrap_or_else(|_| PathBuf::from("/tmp"));
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    tmp.join(format!("codex-daemon-{uid}"))
}

/// The `unix:path=` entries of a D-Bus address list.
fn dbus_socket_paths(address: &str) -> Vec<PathBuf> {
    address
        .split(';')
        .filter_map(|a| a.strip_prefix("unix:"))
        .flat_map(|params| params.split(','))
        .filter_map(|kv| kv.strip_prefix("path="))
        .map(|p| PathBuf::from(unescape_dbus(p)))
        .collect()
}

/// D-Bus addresses escape bytes as `%xx`.
fn unescape_dbus(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hide_credentials_the_control_plane_and_the_bus() {
        let p = Protection::for_home(
            Path::new("/h/.codex"),
            [
                (
                    "DBUS_SESSION_BUS_ADDRESS",
                    "unix:path=/tmp/dbus%2dx,guid=1;unix:abstract=/a",
                ),
                ("XDG_RUNTIME_DIR", "/run/user/7"),
                ("HOME", "/h"),
            ],
        );
        for hidden in [
            "/h/.codex/auth.json",
            "/h/.codex/audit",
            "/h/.codex/codexd",
            "/tmp/dbus-x",
            "/run/user/7/bus",
            "/run/user/7/keyring",
            "/h/.local/share/keyrings",
            "/h/.codex/app-server-control",
        ] {
            assert!(p.hidden.contains(&PathBuf::from(hidden)), "{hidden}: {p:?}");
        }
        assert!(p.hidden.contains(&daemon_socket_root()), "{p:?}");
        assert_eq!(p.read_only, [PathBuf::from("/h/.codex")]);
        assert!(p.allow_unix_sockets.is_empty() && !p.allow_all_unix_sockets);
    }
}
