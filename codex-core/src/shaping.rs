//! Context shaping: an oversized tool output keeps its head and tail
//! verbatim while the local small model condenses the middle, before the
//! output enters the history the frontier model is sent. Best effort by
//! design: any failure (no model, deadline, overload, a useless answer, the
//! link down, the turn interrupted) gives exactly what plain truncation
//! gives, and the result never exceeds what plain truncation would send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::config::ContextShapingConfig;
use crate::memory::generate::{GeneratePurpose, Generator, LocalGenerate};
use crate::memory::MemoryServiceError;
use crate::util::{approx_token_count, truncate_middle};

/// How often a failed condensation is logged at `warn` (the rest: `debug`).
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Of the model's input, at most this share goes to notable lines.
const NOTABLE_SHARE: u64 = 2;
/// The prompt's own tags, dropped from an answer that echoes them.
const SCAFFOLD: &[&str] = &["<cut>", "</cut>", "<notable>", "</notable>"];
/// Words that make a line of the middle worth showing the model first.
const NOTABLE: &[&str] = &[
    "error",
    "fail",
    "panic",
    "fatal",
    "exception",
    "warning",
    "denied",
    "not found",
    "traceback",
];

const SYSTEM_PROMPT: &str = "You condense the middle part of a long command output for an \
assistant that will not see it. Reply with a short plain-text summary of what that part \
contains. Keep error messages, file paths, names, numbers and counts exactly as written. \
Do not guess, do not give advice, do not repeat the instructions.";

/// Why an output was truncated rather than shaped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    #[error("the output budget is too small to keep a head, a tail and a summary")]
    NoRoom,
    #[error("the local model: {0}")]
    Lane(#[from] MemoryServiceError),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("the turn was interrupted")]
    Cancelled,
    #[error("the local model's answer is unusable ({0})")]
    Unusable(&'static str),
}

/// The condensing pass of one thread: its config and the local lane.
pub struct ContextShaper {
    config: ContextShapingConfig,
    generator: Arc<dyn Generator>,
}

impl std::fmt::Debug for ContextShaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextShaper")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The marker before the summary (on a line of its own): the frontier
/// model learns what it means from its words alone.
pub fn condensed_marker(tokens: u64, lines: usize) -> String {
    format!("[… {tokens} tokens ({lines} lines) condensed by the local model; summary: …]\n")
}

/// The marker after the summary, before the verbatim tail.
pub const RESUMED_MARKER: &str = "\n[… end of summary; the output resumes verbatim …]\n";

impl ContextShaper {
    /// A shaper when `config` is active (enabled, with a model) and there is
    /// a lane to ask; `None`: outputs are truncated.
    pub fn new(
        config: &ContextShapingConfig,
        generator: Option<Arc<dyn Generator>>,
    ) -> Option<Self> {
        let generator = generator.filter(|_| config.active())?;
        Some(Self {
            config: config.clone(),
            generator,
        })
    }

    /// `text` as it enters the history under a budget of `budget` tokens,
    /// or `None` when it goes in whole. Never longer than plain truncation,
    /// never later than the configured deadline.
    pub async fn fit(&self, text: &str, budget: u64, cancel: &CancellationToken) -> Option<String> {
        let tokens = approx_token_count(text);
        let plain = (tokens > budget).then(|| truncate_middle(text, budget));
        if tokens <= self.config.min_tokens.unwrap_or(budget) {
            return plain;
        }
        let cap = plain.as_ref().map_or(text.len(), String::len);
        match self.shape_within(text, budget, cap, cancel).await {
            Ok(shaped) => Some(shaped),
            Err(e) => {
                report(&e);
                plain
            }
        }
    }

    /// Head + marker + summary + marker + tail, within the length plain
    /// truncation would give (`text` itself when it fits the budget).
    pub async fn shape(
        &self,
        text: &str,
        budget: u64,
        cancel: &CancellationToken,
    ) -> Result<String, ShapeError> {
        let cap = if approx_token_count(text) > budget {
            truncate_middle(text, budget).len()
        } else {
            text.len()
        };
        self.shape_within(text, budget, cap, cancel).await
    }

    /// [`Self::shape`] with the plain truncation's length already known
    /// (`cap` bytes), so a large output is not cut twice.
    async fn shape_within(
        &self,
        text: &str,
        budget: u64,
        cap: usize,
        cancel: &CancellationToken,
    ) -> Result<String, ShapeError> {
        let plan = Plan::new(&self.config, text, budget, cap)?;
        let middle = &text[plan.head_end..plan.tail_start];
        let middle_tokens = approx_token_count(middle);
        let marker = condensed_marker(middle_tokens, middle.lines().count());
        let request = LocalGenerate {
            purpose: GeneratePurpose::Shape,
            system: SYSTEM_PROMPT.to_string(),
            user: prompt(middle, middle_tokens, self.config.max_input_tokens),
            max_tokens: u32::try_from(self.config.max_summary_tokens).unwrap_or(u32::MAX),
            grammar: None,
        };
        let deadline = self.config.timeout;
        let answer = tokio::select! {
            r = tokio::time::timeout(deadline, self.generator.generate(request, deadline)) => r,
            _ = cancel.cancelled() => return Err(ShapeError::Cancelled),
        };
        let generated = answer.map_err(|_| ShapeError::Timeout(deadline.as_millis() as u64))??;
        let head = &text[..plan.head_end];
        let newline = if head.is_empty() || head.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        let room = cap
            .saturating_sub(plan.head_end + (text.len() - plan.tail_start))
            .saturating_sub(newline.len() + marker.len() + RESUMED_MARKER.len())
            .min(self.config.max_summary_tokens as usize * 4);
        let hit_max = generated.output_tokens as u64 >= self.config.max_summary_tokens;
        let summary = usable(&generated.text, middle.len(), room, hit_max)?;
        let mut out = String::with_capacity(cap);
        out.push_str(head);
        out.push_str(newline);
        out.push_str(&marker);
        out.push_str(&summary);
        out.push_str(RESUMED_MARKER);
        out.push_str(&text[plan.tail_start..]);
        Ok(out)
    }
}

/// Where the verbatim head ends and the verbatim tail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    head_end: usize,
    tail_start: usize,
}

impl Plan {
    fn new(
        config: &ContextShapingConfig,
        text: &str,
        budget: u64,
        cap: usize,
    ) -> Result<Plan, ShapeError> {
        let quarter = budget / 4;
        let head = config.head_tokens.unwrap_or(quarter) as usize * 4;
        let tail = config.tail_tokens.unwrap_or(quarter) as usize * 4;
        // The markers (a generous bound on their numbers) and a summary of
        // at least a few words must fit beside the head and tail.
        let overhead = 1 + condensed_marker(u64::MAX, usize::MAX).len() + RESUMED_MARKER.len();
        let min_summary = 64.min(config.max_summary_tokens as usize * 4);
        let room = cap
            .checked_sub(overhead + min_summary)
            .ok_or(ShapeError::NoRoom)?;
        let (head, tail) = if head + tail <= room {
            (head, tail)
        } else {
            // Shrunk to fit, in the configured proportion (head + tail > 0
            // here, as room >= 0).
            let h = (room * head).checked_div(head + tail).unwrap_or(0);
            (h, room - h)
        };
        let head_end = snap_back(text, head.min(text.len()));
        let tail_start = snap_forward(text, text.len().saturating_sub(tail).max(head_end));
        if tail_start - head_end < overhead + min_summary {
            // Too little in the middle to be worth a summary.
            return Err(ShapeError::NoRoom);
        }
        Ok(Plan {
            head_end,
            tail_start,
        })
    }
}

/// `at` moved back to a char boundary, and to just after a newline when
/// one is in the last quarter of the head (the head ends on a whole line).
fn snap_back(text: &str, at: usize) -> usize {
    let mut at = at;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    match text[..at].rfind('\n') {
        Some(nl) if nl + 1 >= at - at / 4 => nl + 1,
        _ => at,
    }
}

/// `at` moved forward to a char boundary, and to the start of a line when
/// one starts in the first quarter of the tail.
fn snap_forward(text: &str, at: usize) -> usize {
    let mut at = at;
    while !text.is_char_boundary(at) {
        at += 1;
    }
    let tail = text.len() - at;
    match text[at..].find('\n') {
        Some(nl) if nl < tail / 4 => at + nl + 1,
        _ => at,
    }
}

/// What the model is shown of the middle: its notable lines (errors,
/// failures, ...) first, then the middle itself, both within
/// `max_input_tokens`.
fn prompt(middle: &str, middle_tokens: u64, max_input_tokens: u64) -> String {
    let lines = middle.lines().count();
    let mut out = format!(
        "These {middle_tokens} tokens ({lines} lines) were cut from the middle of a command's \
         output. Summarize them in a few lines.\n"
    );
    if middle_tokens <= max_input_tokens {
        out.push_str("<cut>\n");
        out.push_str(middle);
        out.push_str("\n</cut>\n");
        return out;
    }
    let notable_budget = (max_input_tokens / NOTABLE_SHARE) as usize * 4;
    let mut notable = String::new();
    for line in middle.lines() {
        let lower = line.to_ascii_lowercase();
        if !NOTABLE.iter().any(|w| lower.contains(w)) {
            continue;
        }
        let line = truncate_middle(line, 64);
        if notable.len() + line.len() + 1 > notable_budget {
            break;
        }
        notable.push_str(&line);
        notable.push('\n');
    }
    if !notable.is_empty() {
        out.push_str("Lines of it that mention errors or failures:\n<notable>\n");
        out.push_str(&notable);
        out.push_str("</notable>\n");
    }
    let rest = max_input_tokens.saturating_sub(approx_token_count(&notable));
    out.push_str("An excerpt (itself cut in the middle):\n<cut>\n");
    out.push_str(&truncate_middle(middle, rest.max(1)));
    out.push_str("\n</cut>\n");
    out
}

/// The model's answer, trimmed and cut to `room` bytes, if it is a
/// summary at all. An answer cut short (by `room`, or `hit_max` tokens)
/// loses its unfinished last line when it has a finished one.
fn usable(
    answer: &str,
    middle_len: usize,
    room: usize,
    hit_max: bool,
) -> Result<String, ShapeError> {
    // Small models echo the prompt's tags; they mean nothing to the reader.
    let answer = answer
        .lines()
        .filter(|l| !SCAFFOLD.contains(&l.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    let answer = answer.trim();
    if answer.is_empty() {
        return Err(ShapeError::Unusable("empty"));
    }
    let odd = answer
        .chars()
        .filter(|c| (c.is_control() && !matches!(c, '\n' | '\t')) || *c == '\u{fffd}')
        .count();
    if odd * 10 > answer.chars().count() {
        return Err(ShapeError::Unusable("not text"));
    }
    if answer.len() >= middle_len {
        return Err(ShapeError::Unusable("no shorter than what it condenses"));
    }
    let mut end = room.min(answer.len());
    while !answer.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = answer[..end].trim_end();
    if hit_max || end < answer.len() {
        if let Some(nl) = cut.rfind('\n') {
            cut = cut[..nl].trim_end();
        }
    }
    if cut.is_empty() {
        return Err(ShapeError::NoRoom);
    }
    Ok(cut.to_string())
}

/// One `warn!` per [`WARN_EVERY`] (per process), the rest at `debug`: a
/// lane that is down must not flood the log once per tool call.
fn report(e: &ShapeError) {
    static LAST_WARN: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST_WARN.load(Ordering::Relaxed);
    let quiet = matches!(e, ShapeError::NoRoom | ShapeError::Cancelled);
    if !quiet
        && now.saturating_sub(last) >= WARN_EVERY.as_secs()
        && LAST_WARN
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!("context shaping: {e}; the tool output was truncated instead");
    } else {
        tracing::debug!("context shaping: {e}; the tool output was truncated instead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::generate::{GenerateFuture, LocalGenerated};
    use std::sync::Mutex;

    /// Answers every request with `answer` after `delay` (a real timer),
    /// or with `error`; keeps what it was asked.
    struct Lane {
        answer: String,
        delay: Duration,
        error: Option<MemoryServiceError>,
        asked: Mutex<Vec<LocalGenerate>>,
    }

    impl Lane {
        fn answering(answer: &str) -> Arc<Lane> {
            Arc::new(Lane {
                answer: answer.into(),
                delay: Duration::ZERO,
                error: None,
                asked: Mutex::new(Vec::new()),
            })
        }
        fn sleeping(delay: Duration) -> Arc<Lane> {
            Arc::new(Lane {
                answer: "too late".into(),
                delay,
                error: None,
                asked: Mutex::new(Vec::new()),
            })
        }
        fn failing(error: MemoryServiceError) -> Arc<Lane> {
            Arc::new(Lane {
                answer: String::new(),
                delay: Duration::ZERO,
                error: Some(error),
                asked: Mutex::new(Vec::new()),
            })
        }
        fn asked(&self) -> Vec<LocalGenerate> {
            self.asked.lock().unwrap().clone()
        }
    }

    impl Generator for Lane {
        fn generate(&self, request: LocalGenerate, _deadline: Duration) -> GenerateFuture {
            self.asked.lock().unwrap().push(request);
            let (answer, delay, error) = (self.answer.clone(), self.delay, self.error.clone());
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                match error {
                    Some(e) => Err(e),
                    None => Ok(LocalGenerated {
                        output_tokens: approx_token_count(&answer) as usize,
                        text: answer,
                    }),
                }
            })
        }
    }

    fn config() -> ContextShapingConfig {
        ContextShapingConfig {
            enabled: true,
            model: Some("/models/shape.gguf".into()),
            timeout: Duration::from_millis(200),
            ..Default::default()
        }
    }

    fn shaper(config: &ContextShapingConfig, lane: &Arc<Lane>) -> ContextShaper {
        let lane: Arc<dyn Generator> = lane.clone();
        ContextShaper::new(config, Some(lane)).unwrap()
    }

    /// 20,000 numbered lines (~150 kB), one error deep in the middle.
    fn big_output() -> String {
        let mut s = String::new();
        for i in 0..20_000 {
            if i == 9_876 {
                s.push_str("error: tests/it.rs:42: assertion failed\n");
            }
            s.push_str(&format!("line {i} of the build log\n"));
        }
        s
    }

    const BUDGET: u64 = 1_000;
    /// Generous: fit() must never wait on the lane much past timeout_ms.
    const BOUND: Duration = Duration::from_secs(30);

    async fn fit(s: &ContextShaper, text: &str, budget: u64) -> Option<String> {
        tokio::time::timeout(BOUND, s.fit(text, budget, &CancellationToken::new()))
            .await
            .expect("fit returned")
    }

    #[tokio::test]
    async fn head_and_tail_stay_verbatim_around_the_summary() {
        let text = big_output();
        let lane =
            Lane::answering("  Lines 250 to 19,750 of the build log; one error: tests/it.rs:42.\n");
        let out = fit(&shaper(&config(), &lane), &text, BUDGET).await.unwrap();
        let plain = truncate_middle(&text, BUDGET);
        assert!(out.len() <= plain.len(), "{} > {}", out.len(), plain.len());
        // A quarter of the budget each, snapped to whole lines.
        let quarter = BUDGET as usize; // bytes: tokens / 4 * 4
        assert!(out.starts_with(&text[..quarter * 3 / 4]), "{out}");
        assert!(
            out.ends_with(&text[text.len() - quarter * 3 / 4..]),
            "{out}"
        );
        let (head, rest) = out.split_once("[… ").unwrap();
        assert!(
            text.starts_with(head) && head.ends_with("of the build log\n"),
            "{head}"
        );
        assert!(
            rest.contains("lines) condensed by the local model; summary: …]\n"),
            "{rest}"
        );
        assert!(rest.contains(
            "\nLines 250 to 19,750 of the build log; one error: tests/it.rs:42.\n[… end of summary; the output resumes verbatim …]\nline "
        ), "{rest}");
        let tail = rest.rsplit_once(RESUMED_MARKER).unwrap().1;
        assert!(text.ends_with(tail) && tail.starts_with("line "), "{tail}");

        let asked = lane.asked();
        assert_eq!(asked.len(), 1);
        let r = &asked[0];
        assert_eq!(r.purpose, GeneratePurpose::Shape);
        assert_eq!(r.max_tokens, 128);
        assert!(r.grammar.is_none());
        assert!(!r.system.is_empty());
        // The middle is far over max_input_tokens: the error line is shown
        // first, and the excerpt is within the input budget.
        assert!(
            r.user
                .contains("<notable>\nerror: tests/it.rs:42: assertion failed\n</notable>"),
            "{}",
            r.user
        );
        assert!(approx_token_count(&r.user) < 384 + 200, "{}", r.user.len());
    }

    #[tokio::test]
    async fn echoed_prompt_tags_are_dropped_from_the_summary() {
        let text = big_output();
        let lane = Lane::answering("<notable>\nerror: tests/it.rs:42\n</notable>\n");
        let out = fit(&shaper(&config(), &lane), &text, BUDGET).await.unwrap();
        assert!(
            out.contains("summary: …]\nerror: tests/it.rs:42\n[… end"),
            "{out}"
        );
        let lane = Lane::answering("<cut>\n</cut>");
        let out = fit(&shaper(&config(), &lane), &text, BUDGET).await;
        assert_eq!(out, Some(truncate_middle(&text, BUDGET)));
    }

    #[tokio::test]
    async fn a_small_middle_is_shown_whole() {
        let text = "x".repeat(10_000);
        let lane = Lane::answering("ten thousand x");
        let out = fit(&shaper(&config(), &lane), &text, BUDGET).await.unwrap();
        assert!(out.contains("\nten thousand x\n"), "{out}");
        let user = &lane.asked()[0].user;
        assert!(
            user.contains("<cut>\nxxxx") && !user.contains("<notable>"),
            "{user}"
        );
    }

    #[tokio::test]
    async fn a_lane_past_its_deadline_gives_plain_truncation() {
        let text = big_output();
        let lane = Lane::sleeping(Duration::from_secs(3600));
        let s = shaper(&config(), &lane);
        let out = fit(&s, &text, BUDGET).await;
        assert_eq!(out, Some(truncate_middle(&text, BUDGET)));
        assert_eq!(
            s.shape(&text, BUDGET, &CancellationToken::new()).await,
            Err(ShapeError::Timeout(200))
        );
    }

    #[tokio::test]
    async fn lane_errors_and_useless_answers_give_plain_truncation() {
        let text = big_output();
        let plain = Some(truncate_middle(&text, BUDGET));
        for lane in [
            Lane::failing(MemoryServiceError::NoModel("no shaping model".into())),
            Lane::failing(MemoryServiceError::Unavailable("the link is closed".into())),
            Lane::answering(""),
            Lane::answering(" \n\t "),
            Lane::answering("\u{1}\u{2}\u{3}\u{fffd}\u{fffd}ab"),
        ] {
            let out = fit(&shaper(&config(), &lane), &text, BUDGET).await;
            assert_eq!(out, plain);
            assert_eq!(lane.asked().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_long_answer_is_cut_to_the_budget() {
        let text = big_output();
        let lane = Lane::answering(&"summary ".repeat(2_000));
        let mut cfg = config();
        cfg.max_summary_tokens = 4_000;
        let out = fit(&shaper(&cfg, &lane), &text, BUDGET).await.unwrap();
        assert!(out.len() <= truncate_middle(&text, BUDGET).len());
        assert!(out.contains("summary summary") && out.contains(RESUMED_MARKER));
        // Cut short: the unfinished last line goes when a finished one is
        // there.
        let lane = Lane::answering(&format!("{}and an unfin", "a finished line.\n".repeat(40)));
        let out = fit(&shaper(&config(), &lane), &text, BUDGET).await.unwrap();
        assert!(out.contains("a finished line.\n[… end of summary"), "{out}");
        // max_summary_tokens (default 128) bounds the summary too.
        let out = fit(&shaper(&config(), &lane), &text, 4 * BUDGET)
            .await
            .unwrap();
        let summary = out.split_once("summary: …]\n").unwrap().1;
        let summary = summary.split_once(RESUMED_MARKER).unwrap().0;
        assert!(summary.len() <= 128 * 4, "{}", summary.len());
    }

    #[tokio::test]
    async fn outputs_within_the_threshold_are_not_shaped() {
        let lane = Lane::answering("never asked");
        let s = shaper(&config(), &lane);
        assert_eq!(fit(&s, "short output\n", BUDGET).await, None);
        // min_tokens above the budget: truncated, not shaped.
        let mut cfg = config();
        cfg.min_tokens = Some(1_000_000);
        let text = big_output();
        let out = fit(&shaper(&cfg, &lane), &text, BUDGET).await;
        assert_eq!(out, Some(truncate_middle(&text, BUDGET)));
        assert!(lane.asked().is_empty());
    }

    #[tokio::test]
    async fn min_tokens_below_the_budget_shapes_outputs_that_fit() {
        let text = "y\n".repeat(3_000); // 1,500 tokens, within 10,000
        let lane = Lane::answering("3,000 lines of y");
        let mut cfg = config();
        cfg.min_tokens = Some(1_000);
        cfg.head_tokens = Some(100);
        cfg.tail_tokens = Some(100);
        let s = shaper(&cfg, &lane);
        let out = fit(&s, &text, 10_000).await.unwrap();
        assert!(out.len() < text.len(), "{out}");
        assert!(out.starts_with(&"y\n".repeat(150)) && out.ends_with(&"y\n".repeat(150)));
        assert!(out.contains("\n3,000 lines of y\n"), "{out}");
        // Its fallback is the output itself.
        let lane = Lane::failing(MemoryServiceError::NoModel("none".into()));
        assert_eq!(fit(&shaper(&cfg, &lane), &text, 10_000).await, None);
    }

    #[tokio::test]
    async fn no_room_or_an_interrupted_turn_gives_plain_truncation() {
        let text = big_output();
        let lane = Lane::answering("fine");
        let s = shaper(&config(), &lane);
        // A budget that holds barely more than the markers.
        assert_eq!(fit(&s, &text, 20).await, Some(truncate_middle(&text, 20)));
        assert!(lane.asked().is_empty());
        let lane = Lane::sleeping(Duration::from_secs(3600));
        let mut cfg = config();
        cfg.timeout = Duration::from_secs(3600);
        let s = shaper(&cfg, &lane);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let out = tokio::time::timeout(BOUND, s.fit(&text, BUDGET, &cancel))
            .await
            .unwrap();
        assert_eq!(out, Some(truncate_middle(&text, BUDGET)));
    }

    #[test]
    fn inert_without_a_model_or_a_lane() {
        let lane: Arc<dyn Generator> = Lane::answering("x");
        assert!(ContextShaper::new(&config(), None).is_none());
        let mut cfg = config();
        cfg.model = None;
        assert!(ContextShaper::new(&cfg, Some(lane.clone())).is_none());
        cfg = config();
        cfg.enabled = false;
        assert!(ContextShaper::new(&cfg, Some(lane)).is_none());
    }

    #[tokio::test]
    async fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "é漢🙂".repeat(5_000);
        let lane = Lane::answering("emoji");
        let out = fit(&shaper(&config(), &lane), &text, BUDGET).await.unwrap();
        assert!(out.contains("\nemoji\n") && out.len() <= truncate_middle(&text, BUDGET).len());
    }
}

/// The pass over a real model: SmolLM2 on a real `codex_local` lane (what
/// codex-memory hosts), run in-process. Skipped without the model files.
#[cfg(all(test, feature = "local-llm"))]
mod with_smollm2 {
    use super::*;
    use crate::memory::generate::{GenerateFuture, LocalGenerated};
    use codex_local::testing::{real_model, SMOLLM2_FILE};
    use codex_local::{ChatMessage, GenerateRequest, LaneOptions, LoadOptions, LocalLane};

    struct RealLane(LocalLane);

    impl Generator for RealLane {
        fn generate(&self, r: LocalGenerate, deadline: Duration) -> GenerateFuture {
            let req = GenerateRequest::chat(
                vec![
                    ChatMessage::new("system", r.system),
                    ChatMessage::new("user", r.user),
                ],
                r.max_tokens,
            );
            let pending = self
                .0
                .generate(req, deadline, |_| std::ops::ControlFlow::Continue(()));
            Box::pin(async move {
                let failed = |e: codex_local::LocalError| MemoryServiceError::Failed(e.to_string());
                let g = pending.map_err(failed)?.await.map_err(failed)?;
                Ok(LocalGenerated {
                    text: g.text,
                    output_tokens: g.output_tokens,
                })
            })
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn smollm2_condenses_a_build_log_between_its_head_and_tail() {
        let Some(model) = real_model(SMOLLM2_FILE) else {
            return;
        };
        let lane =
            LocalLane::start(&model, LoadOptions::default(), LaneOptions::default()).unwrap();
        let lane: Arc<dyn Generator> = Arc::new(RealLane(lane));
        let config = ContextShapingConfig {
            enabled: true,
            model: Some(model),
            max_input_tokens: 256,
            max_summary_tokens: 64,
            // Generous: a cold, shared 2-core machine.
            timeout: Duration::from_secs(120),
            ..Default::default()
        };
        let shaper = ContextShaper::new(&config, Some(lane)).unwrap();
        let mut text = String::new();
        for i in 0..3_000 {
            if i == 1_500 {
                text.push_str("error[E0308]: mismatched types in src/parser.rs:88\n");
            }
            text.push_str(&format!("   Compiling crate-{i} v0.{i}.0\n"));
        }
        let budget = 400;
        let out = shaper
            .shape(&text, budget, &CancellationToken::new())
            .await
            .unwrap();
        eprintln!("{out}");
        assert!(!out.contains("<notable>"), "{out}");
        assert!(out.len() <= truncate_middle(&text, budget).len());
        assert!(out.contains("condensed by the local model") && out.contains(RESUMED_MARKER));
        let head = out.split_once("[… ").unwrap().0;
        let tail = out.rsplit_once(RESUMED_MARKER).unwrap().1;
        assert!(text.starts_with(head) && head.len() >= 300, "{head}");
        assert!(text.ends_with(tail) && tail.len() >= 300, "{tail}");
    }
}
