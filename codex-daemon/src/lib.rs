//! `codex-daemon`: `codexd`, the supervisor.
//!
//! Planned shape (see ARCHITECTURE.md): transports and routing from
//! `codex-ipc`, one `codex-session` worker process per loaded thread,
//! subscriptions, resource policy and worker lifecycle. It never runs a model
//! turn or a tool itself. Nothing is implemented here yet; `codex exec` runs
//! its thread in-process through `codex-core` until the supervisor lands.
