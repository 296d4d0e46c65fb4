//! Human-readable rendering of a turn: the answer streams to stdout; commands,
//! their exit codes, patches, plans, warnings and a progress spinner go to
//! stderr, so `codex exec "..." > answer.txt` captures just the answer.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use codex_core::protocol::{
    CommandStatus, Event, FileChangeKind, PatchStatus, StepStatus, ThreadItem, TodoListItem,
};
use codex_ipc::link::ThreadReady;
use tokio::sync::mpsc;

const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const OUTPUT_TAIL_LINES: usize = 6;

pub struct Header {
    lines: Vec<String>,
}

impl Header {
    pub fn from_ready(r: &ThreadReady) -> Self {
        let mut lines = vec![
            format!("codex exec · session {}", r.thread_id),
            format!(
                "model {} ({}) · sandbox {} · approval {}",
                r.model,
                r.model_provider,
                r.sandbox_policy.mode(),
                r.approval_policy
            ),
            format!("workdir {}", r.cwd.display()),
        ];
        if let Some(p) = &r.rollout_path {
            lines.push(format!("session file {}", p.display()));
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

    fn plan(&mut self, plan: &TodoListItem) {
        let mut lines = vec![self.style.bold("Plan:")];
        if let Some(e) = &plan.explanation {
            lines.push(format!("  {}", self.style.dim(e)));
        }
        for s in &plan.steps {
            let mark = match s.status {
                StepStatus::Completed => self.style.green("[x]"),
                StepStatus::InProgress => self.style.cyan("[>]"),
                StepStatus::Pending => "[ ]".to_string(),
            };
            lines.push(format!("  {mark} {}", s.step));
        }
        self.err(&lines.join("\n"));
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::TurnStarted { .. } => self.wait(),
            Event::Warning { message } => {
                let l = self.style.yellow(&format!("warning: {message}"));
                self.err(&l);
            }
            Event::AgentMessageDelta { item_id, delta, .. } => {
                self.stop_waiting();
                self.streamed.insert(item_id, true);
                self.answer(&delta);
            }
            Event::ReasoningSummaryDelta { .. } => self.wait(),
            Event::ItemStarted { item, .. } => match item {
                ThreadItem::CommandExecution(c) => {
                    self.stop_waiting();
                    let l = format!("{} {}", self.style.cyan("$"), self.style.bold(&c.script));
                    self.err(&l);
                    self.wait();
                }
                ThreadItem::TodoList(p) => self.plan(&p),
                _ => {}
            },
            Event::ItemUpdated { item, .. } => {
                if let ThreadItem::TodoList(p) = item {
                    self.plan(&p);
                }
            }
            Event::ItemCompleted { item, .. } => self.completed(item),
            Event::CommandOutputDelta { .. } | Event::TokenUsage { .. } => {}
            Event::StreamRetry {
                message, details, ..
            } => {
                let l = self.style.yellow(&format!("{message} ({details})"));
                self.err(&l);
                self.wait();
            }
            Event::TurnCompleted { usage, .. } => {
                self.stop_waiting();
                let l = self.style.dim(&format!(
                    "tokens used: {} in · {} out · {} total",
                    usage.input_tokens, usage.output_tokens, usage.total_tokens
                ));
                self.err(&l);
            }
            Event::TurnFailed { error, .. } => {
                self.stop_waiting();
                let l = self.style.red(&format!("error: {}", error.message));
                self.err(&l);
            }
            Event::TurnAborted { .. } => {
                self.stop_waiting();
                let l = self.style.yellow("turn interrupted");
                self.err(&l);
            }
        }
    }

    fn completed(&mut self, item: ThreadItem) {
        match item {
            ThreadItem::AgentMessage(m) => {
                self.stop_waiting();
                if !self.streamed.remove(&m.id).unwrap_or(false) {
                    self.answer(&m.text);
                }
                self.end_answer_line();
                self.wait();
            }
            ThreadItem::Reasoning(r) if !r.summary.is_empty() => {
                let l = self
                    .style
                    .dim(&format!("thinking: {}", r.summary.join(" ")));
                self.err(&l);
            }
            ThreadItem::CommandExecution(c) => {
                let secs = c.duration_ms.unwrap_or(0) as f64 / 1000.0;
                let status = match (c.status, c.exit_code) {
                    (CommandStatus::Declined, _) => self.style.yellow("  declined"),
                    (_, Some(0)) => self.style.green(&format!("  ✓ exit 0 ({secs:.2}s)")),
                    (_, Some(code)) => self.style.red(&format!("  ✗ exit {code} ({secs:.2}s)")),
                    (_, None) => self.style.red("  ✗ did not run"),
                };
                let mut lines = vec![];
                let out: Vec<&str> = c.aggregated_output.lines().collect();
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
            ThreadItem::FileChange(f) => {
                let files = f
                    .changes
                    .iter()
                    .map(|c| {
                        let tag = match c.kind {
                            FileChangeKind::Add => "A",
                            FileChangeKind::Delete => "D",
                            FileChangeKind::Update { .. } => "M",
                        };
                        format!("{tag} {}", c.path.display())
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let l = match f.status {
                    PatchStatus::Completed => self.style.green(&format!("✎ patched: {files}")),
                    PatchStatus::Declined => {
                        self.style.yellow(&format!("✎ patch declined: {files}"))
                    }
                    _ => self.style.red(&format!("✎ patch failed: {files}")),
                };
                self.err(&l);
                self.wait();
            }
            ThreadItem::Error(e) => {
                let l = self.style.yellow(&format!("warning: {}", e.message));
                self.err(&l);
            }
            _ => {}
        }
    }
}

pub async fn render(header: Header, mut events: mpsc::Receiver<Event>, color: bool) {
    let mut r = Renderer {
        style: Style { color },
        tty: std::io::stderr().is_terminal(),
        waiting_since: None,
        spinner_visible: false,
        frame: 0,
        streamed: HashMap::new(),
        open_line: false,
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
