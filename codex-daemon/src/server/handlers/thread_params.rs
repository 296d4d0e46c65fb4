//! What `thread/start` and `thread/resume` do with the params they do not
//! simply copy: permission profiles, the fields this server does not serve
//! (named in one `warning`), and the resume sources it refuses.

use codex_ipc::app_server::notifications::{ServerNotification, WarningNotification};
use codex_ipc::app_server::unserved;
use codex_ipc::jsonrpc::RpcError;
use serde_json::{Map, Value};

/// The built-in permission profiles (`permissionProfile/list`) and the
/// sandbox mode each one is.
const PROFILES: &[(&str, &str)] = &[
    (":read-only", "read-only"),
    (":workspace", "workspace-write"),
    (":danger-full-access", "danger-full-access"),
];

/// The sandbox mode of `sandbox` or `permissions` (one at most, as
/// upstream).
pub(super) fn sandbox_of(
    sandbox: Option<String>,
    permissions: Option<&str>,
) -> Result<Option<String>, RpcError> {
    let Some(profile) = permissions else {
        return Ok(sandbox);
    };
    if sandbox.is_some() {
        return Err(RpcError::invalid_request(
            "`permissions` cannot be combined with `sandbox`",
        ));
    }
    PROFILES
        .iter()
        .find(|(id, _)| *id == profile)
        .map(|(_, mode)| Some((*mode).to_string()))
        .ok_or_else(|| {
            RpcError::invalid_request(format!(
                "Invalid request: unknown permissions profile `{profile}`; this server has {}",
                PROFILES
                    .iter()
                    .map(|(id, _)| format!("`{id}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// `activePermissionProfile` of a thread started with `permissions` (the
/// built-in profiles extend nothing).
pub(super) fn active_profile(permissions: &Option<String>) -> Option<Value> {
    permissions
        .as_ref()
        .map(|id| serde_json::json!({"id": id, "extends": null}))
}

/// One `warning` naming the fields of `rest` that chose something this
/// server does not do (`None` when there are none).
pub(super) fn unserved_warning(
    method: &str,
    thread_id: &str,
    rest: &Map<String, Value>,
    defaults: &[(&str, Value)],
) -> Option<ServerNotification> {
    let keys = unserved::given_keys(rest, defaults);
    for k in &keys {
        tracing::info!("{method}: unserved param `{k}` ignored");
    }
    unserved::warning(method, &keys).map(|message| {
        WarningNotification {
            thread_id: thread_id.to_string(),
            message,
        }
        .into()
    })
}

/// The `warning` for settings given to `thread/resume` of a thread that is
/// already running (it keeps its own).
pub(super) fn kept_warning(
    thread_id: &str,
    given: &Map<String, Value>,
) -> Option<ServerNotification> {
    let keys = unserved::given_keys(given, &[]);
    if keys.is_empty() {
        return None;
    }
    let list = keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(
        WarningNotification {
            thread_id: thread_id.to_string(),
            message: format!(
                "thread/resume: the thread is already running and keeps its settings; not applied: {list}"
            ),
        }
        .into(),
    )
}

/// `thread/resume` sources other than the thread's own file are refused:
/// resuming something else under its id would be wrong.
pub(super) fn check_resume_source(
    path: Option<&str>,
    history: Option<&Value>,
    thread_file: Option<&std::path::Path>,
) -> Result<(), RpcError> {
    if history.is_some_and(unserved::is_given) {
        return Err(RpcError::invalid_request(
            "Invalid request: `history` is not supported here; resume by `threadId`",
        ));
    }
    match path.filter(|p| !p.is_empty()) {
        Some(p) if thread_file != Some(std::path::Path::new(p)) => {
            Err(RpcError::invalid_request(format!(
                "Invalid request: `path` is not supported here unless it is the thread's own file; resume by `threadId` (got `{p}`)"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_map_to_sandbox_modes() {
        assert_eq!(
            sandbox_of(None, Some(":read-only")).unwrap().as_deref(),
            Some("read-only")
        );
        assert_eq!(
            sandbox_of(None, Some(":workspace")).unwrap().as_deref(),
            Some("workspace-write")
        );
        let e = sandbox_of(Some("read-only".into()), Some(":workspace")).unwrap_err();
        assert_eq!(e.code, -32600);
        assert_eq!(e.message, "`permissions` cannot be combined with `sandbox`");
        assert!(sandbox_of(None, Some("mine"))
            .unwrap_err()
            .message
            .contains("unknown permissions profile `mine`"));
        assert_eq!(
            sandbox_of(Some("read-only".into()), None)
                .unwrap()
                .as_deref(),
            Some("read-only")
        );
    }

    #[test]
    fn resume_sources() {
        let f = std::path::Path::new("/h/sessions/a.jsonl");
        assert!(check_resume_source(Some(""), Some(&Value::Null), Some(f)).is_ok());
        assert!(check_resume_source(Some("/h/sessions/a.jsonl"), None, Some(f)).is_ok());
        assert!(check_resume_source(Some("/elsewhere.jsonl"), None, Some(f)).is_err());
        assert!(check_resume_source(None, Some(&serde_json::json!([{}])), Some(f)).is_err());
    }
}
