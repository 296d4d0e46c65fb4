//! Service definitions for running codexd under the OS's service manager:
//! a systemd user unit pair (`codexd.socket` holds the socket, so clients
//! that connect while codexd starts wait in the kernel's backlog;
//! `codexd.service` is `Type=notify` with a watchdog and `Delegate=yes`, so
//! codexd may make per-worker cgroups) and a launchd LaunchAgent with a
//! `Sockets` entry. Generated on every OS so both are tested everywhere.

use std::path::{Path, PathBuf};

use super::LifecycleError;

pub const SOCKET_UNIT: &str = "codexd.socket";
pub const SERVICE_UNIT: &str = "codexd.service";
/// The LaunchAgent's label (and file name, `<label>.plist`).
pub const LAUNCHD_LABEL: &str = "dev.codex.codexd";
/// The name the activation fd carries (`FileDescriptorName=`, the plist's
/// `Sockets` key).
pub const FD_NAME: &str = "codexd";
/// `sun_path` is 108 bytes on Linux, 104 on macOS (with the NUL).
const SUN_PATH_MAX: usize = 104;

/// What the service runs.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    /// Absolute path of the `codex` binary.
    pub codex_exe: PathBuf,
    pub codex_home: PathBuf,
    pub socket: PathBuf,
    /// The socket systemd binds and passes: `socket` itself, or, for
    /// upstream's default path, the short path under `/tmp` that it links to
    /// (as upstream lays it out; activated, codexd makes the link).
    pub bind: PathBuf,
    /// Where launchd writes codexd's output.
    pub log_file: PathBuf,
}

impl UnitSpec {
    fn check(&self) -> Result<(), LifecycleError> {
        for (what, p) in [
            ("the codex binary", &self.codex_exe),
            ("CODEX_HOME", &self.codex_home),
            ("the socket", &self.socket),
            ("the bound socket", &self.bind),
        ] {
            if !p.is_absolute() {
                return Err(LifecycleError::Other(format!(
                    "{what} must be an absolute path, got {}",
                    p.display()
                )));
            }
        }
        if self.bind.as_os_str().len() >= SUN_PATH_MAX {
            return Err(LifecycleError::Other(format!(
                "the socket path {} is longer than a unix socket address allows ({} bytes); choose a shorter one",
                self.bind.display(),
                SUN_PATH_MAX - 1
            )));
        }
        Ok(())
    }

    fn listen_arg(&self) -> String {
        if self.bind == self.socket {
            format!("unix://{}", self.socket.display())
        } else {
            // Upstream's default layout: codexd links `socket` to `bind`.
            "unix://".into()
        }
    }
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub name: String,
    pub contents: String,
}

/// `codexd.socket` and `codexd.service`.
pub fn systemd_units(spec: &UnitSpec) -> Result<Vec<UnitFile>, LifecycleError> {
    spec.check()?;
    let socket = format!(
        "[Unit]\n\
         Description=Codex daemon socket (app-server protocol)\n\
         \n\
         [Socket]\n\
         ListenStream={sock}\n\
         SocketMode=0600\n\
         DirectoryMode=0700\n\
         FileDescriptorName={FD_NAME}\n\
         Service={SERVICE_UNIT}\n\
         \n\
         [Install]\n\
         WantedBy=sockets.target\n",
        sock = systemd_path(&spec.bind),
    );
    let service = format!(
        "[Unit]\n\
         Description=Codex daemon (codexd)\n\
         Requires={SOCKET_UNIT}\n\
         After={SOCKET_UNIT}\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={exe} app-server --listen {listen}\n\
         Environment={env}\n\
         WatchdogSec=30\n\
         Restart=on-failure\n\
         RestartSec=1\n\
         Delegate=yes\n\
         KillMode=control-group\n\
         TimeoutStopSec=30\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        exe = systemd_word(&spec.codex_exe.display().to_string()),
        listen = systemd_word(&spec.listen_arg()),
        env = systemd_word(&format!("CODEX_HOME={}", spec.codex_home.display())),
    );
    Ok(vec![
        UnitFile {
            name: SOCKET_UNIT.into(),
            contents: socket,
        },
        UnitFile {
            name: SERVICE_UNIT.into(),
            contents: service,
        },
    ])
}

/// The LaunchAgent plist (`<label>.plist`).
pub fn launchd_plist(spec: &UnitSpec) -> Result<UnitFile, LifecycleError> {
    spec.check()?;
    let s = |v: &str| format!("<string>{}</string>", xml_escape(v));
    let args = [
        spec.codex_exe.display().to_string(),
        "app-server".into(),
        "--listen".into(),
        spec.listen_arg(),
    ]
    .iter()
    .map(|a| format!("\t\t{}\n", s(a)))
    .collect::<String>();
    let contents = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	{label}
	<key>ProgramArguments</key>
	<array>
{args}	</array>
	<key>EnvironmentVariables</key>
	<dict>
		<key>CODEX_HOME</key>
		{home}
	</dict>
	<key>Sockets</key>
	<dict>
		<key>{fd}</key>
		<dict>
			<key>SockPathName</key>
			{sock}
			<key>SockPathMode</key>
			<integer>384</integer>
			<key>SockFamily</key>
			<string>Unix</string>
			<key>SockType</key>
			<string>stream</string>
		</dict>
	</dict>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ProcessType</key>
	<string>Interactive</string>
	<key>StandardOutPath</key>
	{log}
	<key>StandardErrorPath</key>
	{log}
</dict>
</plist>
"#,
        label = s(LAUNCHD_LABEL),
        home = s(&spec.codex_home.display().to_string()),
        fd = FD_NAME,
        sock = s(&spec.socket.display().to_string()),
        log = s(&spec.log_file.display().to_string()),
    );
    Ok(UnitFile {
        name: format!("{LAUNCHD_LABEL}.plist"),
        contents,
    })
}

/// Which service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceManager {
    Systemd,
    Launchd,
}

impl ServiceManager {
    /// launchd on macOS, systemd elsewhere.
    pub fn for_this_os() -> Self {
        if cfg!(target_os = "macos") {
            Self::Launchd
        } else {
            Self::Systemd
        }
    }

    /// Where user units live: `$XDG_CONFIG_HOME/systemd/user` (default
    /// `~/.config/systemd/user`), `~/Library/LaunchAgents`.
    pub fn default_dir(self) -> Result<PathBuf, LifecycleError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let missing = || LifecycleError::Other("HOME is not set; pass --dir".into());
        Ok(match self {
            Self::Systemd => match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
                Some(x) => PathBuf::from(x).join("systemd").join("user"),
                None => home.ok_or_else(missing)?.join(".config/systemd/user"),
            },
            Self::Launchd => home.ok_or_else(missing)?.join("Library/LaunchAgents"),
        })
    }

    pub fn files(self, spec: &UnitSpec) -> Result<Vec<UnitFile>, LifecycleError> {
        match self {
            Self::Systemd => systemd_units(spec),
            Self::Launchd => Ok(vec![launchd_plist(spec)?]),
        }
    }

    /// The names of the files `files` writes.
    pub fn file_names(self) -> Vec<String> {
        match self {
            Self::Systemd => vec![SOCKET_UNIT.into(), SERVICE_UNIT.into()],
            Self::Launchd => vec![format!("{LAUNCHD_LABEL}.plist")],
        }
    }

    /// The commands that load what was written in `dir`.
    pub fn next_steps(self, dir: &Path) -> Vec<String> {
        match self {
            Self::Systemd => vec![format!(
                "systemctl --user daemon-reload && systemctl --user enable --now {SOCKET_UNIT}"
            )],
            Self::Launchd => vec![format!(
                "launchctl bootstrap gui/$(id -u) {}",
                dir.join(format!("{LAUNCHD_LABEL}.plist")).display()
            )],
        }
    }

    /// The commands that unload the service before its files are removed.
    pub fn stop_steps(self) -> Vec<String> {
        match self {
            Self::Systemd => vec![format!(
                "systemctl --user disable --now {SOCKET_UNIT} {SERVICE_UNIT}"
            )],
            Self::Launchd => vec![format!("launchctl bootout gui/$(id -u)/{LAUNCHD_LABEL}")],
        }
    }
}

/// Writes `files` into `dir` (created if needed); the paths written.
pub fn write_files(dir: &Path, files: &[UnitFile]) -> Result<Vec<PathBuf>, LifecycleError> {
    std::fs::create_dir_all(dir).map_err(|e| LifecycleError::io("create", dir, e))?;
    files
        .iter()
        .map(|f| {
            let p = dir.join(&f.name);
            let tmp = dir.join(format!(".{}.tmp", f.name));
            std::fs::write(&tmp, &f.contents)
                .and_then(|()| std::fs::rename(&tmp, &p))
                .map_err(|e| LifecycleError::io("write", &p, e))?;
            Ok(p)
        })
        .collect()
}

/// Removes the files `install` writes; the paths removed.
pub fn remove_files(dir: &Path, names: &[String]) -> Result<Vec<PathBuf>, LifecycleError> {
    let mut removed = Vec::new();
    for n in names {
        let p = dir.join(n);
        match std::fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LifecycleError::io("remove", &p, e)),
        }
    }
    Ok(removed)
}

/// A path in a unit file: `%` is systemd's specifier character.
fn systemd_path(p: &Path) -> String {
    p.display().to_string().replace('%', "%%")
}

/// One word of a command line or `Environment=`: specifiers escaped,
/// double-quoted when it holds whitespace, quotes or backslashes.
fn systemd_word(w: &str) -> String {
    let w = w.replace('%', "%%");
    if w.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        w
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UnitSpec {
        UnitSpec {
            codex_exe: "/opt/my codex/bin/codex".into(),
            codex_home: "/home/me/.codex".into(),
            socket: "/home/me/.codex/app-server-control/app-server-control.sock".into(),
            bind: "/home/me/.codex/app-server-control/app-server-control.sock".into(),
            log_file: "/home/me/.codex/app-server-daemon/daemon.stderr.log".into(),
        }
    }

    #[test]
    fn systemd_pair_has_the_keys_socket_activation_needs() {
        let files = systemd_units(&spec()).unwrap_or_default();
        let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, ServiceManager::Systemd.file_names());
        assert_eq!(
            vec![launchd_plist(&spec()).unwrap().name],
            ServiceManager::Launchd.file_names()
        );
        let socket = &files[0].contents;
        let service = &files[1].contents;
        assert!(socket
            .contains("ListenStream=/home/me/.codex/app-server-control/app-server-control.sock\n"));
        assert!(socket.contains("SocketMode=0600\n") && socket.contains("DirectoryMode=0700\n"));
        for k in [
            "Type=notify\n",
            "NotifyAccess=main\n",
            "WatchdogSec=",
            "Delegate=yes\n",
            "Restart=on-failure\n",
            "KillMode=control-group\n",
            "ExecStart=\"/opt/my codex/bin/codex\" app-server --listen unix:///home/me/.codex/app-server-control/app-server-control.sock\n",
        ] {
            assert!(service.contains(k), "{k} missing:\n{service}");
        }
    }

    #[test]
    fn the_default_socket_is_bound_at_its_short_path_and_linked_by_codexd() {
        let mut s = spec();
        s.bind = "/tmp/codex-daemon-1000/abc".into();
        let files = systemd_units(&s).unwrap();
        assert!(files[0]
            .contents
            .contains("ListenStream=/tmp/codex-daemon-1000/abc\n"));
        assert!(files[1].contents.contains(" app-server --listen unix://\n"));
    }

    #[test]
    fn relative_paths_and_long_sockets_are_refused() {
        let mut s = spec();
        s.codex_exe = "codex".into();
        assert!(systemd_units(&s).is_err());
        let mut s = spec();
        s.socket = PathBuf::from(format!("/{}", "x".repeat(120)));
        s.bind = s.socket.clone();
        assert!(launchd_plist(&s).is_err());
    }

    #[test]
    fn specifiers_are_escaped() {
        assert_eq!(systemd_word("/a%b"), "/a%%b");
        assert_eq!(systemd_word("a\"b c"), "\"a\\\"b c\"");
    }
}
