//! Human-readable rendering of a turn: the answer streams to stdout; commands,
//! their exit codes, patches, plans, warnings and a progress spinner go to
//! stderr, so `codex exec "..." > answer.txt` captures just the answer.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use codex_core::protocol::TokenUsage as Usage;
use codex_ipc::app_server::turn_view::{
    ChangeKind, Item, ItemStatus, Plan, StepStatus, TurnEvent, TurnStatus,
};
use serde_json::Value;
use tokio::sync::mpsc;

const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const OUTPUT_TAIL_LINES: usize = 6;

pub struct Header {
    lines: Vec<String>,
}

impl Header {
    /// From the `thread/start` (or `thread/resume`) result.
    pub fn from_session(r: &Value) -> Self {
        let s = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let sandbox = match s("/sandbox/type") {
            "readOnly" => "read-only",
            "workspaceWrite" => "workspace-write",
            "dangerFullAccess" => "danger-full-access",
            other => other,
        };
        let approval = match r.get("approvalPolicy") {
            Some(Value::String(a)) => a.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let mut lines = vec![
            format!("codex exec · session {}", s("/thread/id")),
            format!(
                "model {} ({}) · sandbox {sandbox} · approval {approval}",
                s("/model"),
                s("/modelProvider"),
            ),
            format!("workdir {}", s("/cwd")),
        ];
        if let Some(p) = r.pointer("/thread/path").and_then(Value::as_str) {
            lines.push(format!("session file {p}"));
        }
        Self { lines }
    }
}

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
}

struct Renderer {
    style: Style,
    tty: bool,
    waiting_since: Option<Instant>,
    spinner_visible: bool,
    frame: usize,
    streamed: HashMap<String, bool>,
    open_line: bool,
    /// The turn's usage so far.
    usage: Usage,
    /// The error that ends the turn, announced just before its end.
    final_error: Option<String>,
}

impl Renderer {
    fn err(&mut self, line: &str) {
        self.clear_spinner();
        self.end_answer_line();
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    fn clear_spinner(&mut self) {
        if self.spinner_visible {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            let _ = std::io::stderr().flush();
            self.spinner_visible = false;
        }
    }

    fn end_answer_line(&mut self) {
        if self.open_line {
            let _ = writeln!(std::io::stdout());
            let _ = std::io::stdout().flush();
            self.open_line = false;
        }
    }

    fn answer(&mut self, text: &str) {
        self.clear_spinner();
        let mut out = std::io::stdout();
        let _ = write!(out, "{text}");
        let _ = out.flush();
        self.open_line = !text.ends_with('\n');
    }

    fn wait(&mut self) {
        self.waiting_since.get_or_insert_with(Instant::now);
    }

    fn stop_waiting(&mut self) {
        self.waiting_since = None;
        self.clear_spinner();
    }

    fn tick(&mut self) {
        let Some(since) = self.waiting_since else {
            return;
        };
        if !self.tty || self.open_line {
            return;
        }
        self.frame = (self.frame + 1) % SPINNER.len();
        let line = format!(
            "{} {}",
            SPINNER[self.frame],
            self.style.dim(&format!(
                "Working ({}s · Ctrl-C to interrupt)",
                since.elapsed().as_secs()
            ))
        );
        let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
        self.spinner_visible = true;
    }

    fn plan(&mut self, plan: &Plan) {
        let mut lines = vec![self.style.bold("Plan:")];
        if let Some(e) = &plan.explanation {
            lines.push(format!("  {}", self.style.dim(e)));
        }
        for s in &plan.plan {
            let mark = match s.status {
                StepStatus::Completed => self.style.green("[x]"),
                StepStatus::InProgress => self.style.cyan("[>]"),
                StepStatus::Pending => "[ ]".to_string(),
            };
            lines.push(format!("  {mark} {}", s.step));
        }
        self.err(&lines.join("\n"));
    }

    fn handle(&mut self, ev: TurnEvent) {
        match ev {
            TurnEvent::TurnStarted { .. } => {
                self.usage = Usage::default();
                self.final_error = None;
                self.wait()
            }
            TurnEvent::Warning(message) => {
                let l = self.style.yellow(&format!("warning: {message}"));
                self.err(&l);
            }
            TurnEvent::McpServerFailed { name, error } => {
                self.stop_waiting();
                let why = error.unwrap_or_else(|| format!("MCP server `{name}` failed"));
                let l = self.style.yellow(&format!("warning: {why}"));
                self.err(&l);
            }
            TurnEvent::AgentMessageDelta { item_id, delta } => {
                self.stop_waiting();
                self.streamed.insert(item_id, true);
                self.answer(&delta);
            }
            TurnEvent::ReasoningDelta => self.wait(),
            TurnEvent::ItemStarted(item) => {
                if let Some(script) = item.command_script() {
                    self.stop_waiting();
                    let l = format!("{} {}", self.style.cyan("$"), self.style.bold(script));
                    self.err(&l);
                    self.wait();
                }
            }
            TurnEvent::Plan(p) => self.plan(&p),
            TurnEvent::ItemCompleted(item) => self.completed(item),
            TurnEvent::CommandOutputDelta | TurnEvent::ThreadClosed => {}
            TurnEvent::TokenUsage(u) => self.usage.add(&u),
            TurnEvent::Error {
                message,
                details,
                will_retry: true,
                ..
            } => {
                let text = match details {
                    Some(d) => format!("{message} ({d})"),
                    None => message,
                };
                let l = self.style.yellow(&text);
                self.err(&l);
                self.wait();
            }
            TurnEvent::Error { message, .. } => self.final_error = Some(message),
            TurnEvent::TurnCompleted { status, error, .. } => {
                self.stop_waiting();
                let final_error = self.final_error.take();
                let l = match status {
                    TurnStatus::Completed => self.style.dim(&format!(
                        "tokens used: {} in · {} out · {} total",
                        self.usage.input_tokens, self.usage.output_tokens, self.usage.total_tokens
                    )),
                    TurnStatus::Interrupted if final_error.is_none() => {
                        self.style.yellow("turn interrupted")
                    }
                    _ => {
                        let message = final_error
                            .or(error)
                            .unwrap_or_else(|| "the turn failed".into());
                        self.style.red(&format!("error: {message}"))
                    }
                };
                self.err(&l);
            }
        }
    }

    fn completed(&mut self, item: Item) {
        match item {
            Item::AgentMessage { id, text } => {
                self.stop_waiting();
                if !self.streamed.remove(&id).unwrap_or(false) {
                    self.answer(&text);
                }
                self.end_answer_line();
                self.wait();
            }
            Item::Reasoning { summary, .. } if !summary.is_empty() => {
                let l = self.style.dim(&format!("thinking: {}", summary.join(" ")));
                self.err(&l);
            }
            Item::CommandExecution {
                status,
                aggregated_output,
                exit_code,
                duration_ms,
                ..
            } => {
                let secs = duration_ms.unwrap_or(0) as f64 / 1000.0;
                let status = match (status, exit_code) {
                    (ItemStatus::Declined, _) => self.style.yellow("  declined"),
                    (_, Some(0)) => self.style.green(&format!("  ✓ exit 0 ({secs:.2}s)")),
                    (_, Some(code)) => self.style.red(&format!("  ✗ exit {code} ({secs:.2}s)")),
                    (_, None) => self.style.red("  ✗ did not run"),
                };
                let mut lines = vec![];
                let output = aggregated_output.unwrap_or_default();
                let out: Vec<&str> = output.lines().collect();
                let skip = out.len().saturating_sub(OUTPUT_TAIL_LINES);
                if skip > 0 {
                    lines.push(self.style.dim(&format!("  │ … {skip} more lines")));
                }
                for l in &out[skip..] {
                    lines.push(self.style.dim(&format!("  │ {l}")));
                }
                lines.push(status);
                self.err(&lines.join("\n"));
                self.wait();
            }
            Item::FileChange {
                changes, status, ..
            } => {
                let files = changes
                    .iter()
                    .map(|c| {
                        let tag = match c.kind {
                            ChangeKind::Add => "A",
                            ChangeKind::Delete => "D",
                            ChangeKind::Update { .. } => "M",
                        };
                        format!("{tag} {}", c.path)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let l = match status {
                    ItemStatus::Completed => self.style.green(&format!("✎ patched: {files}")),
                    ItemStatus::Declined => {
                        self.style.yellow(&format!("✎ patch declined: {files}"))
                    }
                    ItemStatus::InProgress => return,
                    ItemStatus::Failed => self.style.red(&format!("✎ patch failed: {files}")),
                };
                self.err(&l);
                self.wait();
            }
            Item::McpToolCall {
                server,
                tool,
                status,
                error,
                ..
            } => {
                self.stop_waiting();
                let l = match status {
                    ItemStatus::Completed => self.style.green(&format!("⚙ {server}.{tool} ✓")),
                    _ => {
                        let why = error
                            .as_ref()
                            .and_then(|e| e.get("message"))
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("failed");
                        self.style.red(&format!("⚙ {server}.{tool} ✗ {why}"))
                    }
                };
                self.err(&l);
                self.wait();
            }
            _ => {}
        }
    }
}

pub async fn render(header: Header, mut events: mpsc::Receiver<TurnEvent>, color: bool) {
    let mut r = Renderer {
        style: Style { color },
        tty: std::io::stderr().is_terminal(),
        waiting_since: None,
        spinner_visible: false,
        frame: 0,
        streamed: HashMap::new(),
        open_line: false,
        usage: Usage::default(),
        final_error: None,
    };
    for l in &header.lines {
        let l = r.style.dim(l);
        r.err(&l);
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => r.handle(ev),
                None => break,
            },
            _ = ticker.tick() => r.tick(),
        }
    }
    r.clear_spinner();
    r.end_answer_line();
}
