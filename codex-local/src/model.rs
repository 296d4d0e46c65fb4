//! A GGUF model loaded through llama.cpp (`llama-cpp-2`). Contexts are made
//! per call (the KV cache is a few tens of MB and is cleared anyway), so a
//! `LocalModel` is plain data that can move to the thread that runs it.

use std::num::NonZeroU32;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::stream::{Step, TextAssembler};
use crate::types::DEFAULT_MAX_N_CTX;
use crate::{
    l2_normalize, ChatMessage, GenerateRequest, Generated, LoadOptions, LocalError, StopReason,
};

/// Prompt tokens decoded per `llama_decode` call.
const PROMPT_BATCH: u32 = 512;
/// Ends a turn of the plain fallback template.
const FALLBACK_STOP: &str = "\nUser:";

/// llama.cpp's backend may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp's own log lines go to `tracing` (target `llama.cpp`)
            // instead of straight to stderr.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Inference(format!("cannot initialise llama.cpp: {e}")))
}

/// A clear error before llama.cpp sees the file: missing, or not a GGUF.
fn check_file(path: &Path) -> Result<(), LocalError> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LocalError::MissingFile {
                path: path.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(LocalError::Load {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let mut magic = [0u8; 4];
    match f.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) => Err(LocalError::NotGguf {
            path: path.to_path_buf(),
            reason: "not a GGUF file (it does not start with the GGUF magic)".into(),
        }),
        Err(_) => Err(LocalError::NotGguf {
            path: path.to_path_buf(),
            reason: "not a GGUF file (shorter than a GGUF header)".into(),
        }),
    }
}

pub struct LocalModel {
    model: LlamaModel,
    path: PathBuf,
    opts: LoadOptions,
    n_ctx: u32,
    pooling: LlamaPoolingType,
    template: Option<LlamaChatTemplate>,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("path", &self.path)
            .field("n_ctx", &self.n_ctx)
            .finish_non_exhaustive()
    }
}

impl LocalModel {
    pub fn load(path: impl AsRef<Path>, opts: LoadOptions) -> Result<Self, LocalError> {
        let path = path.as_ref().to_path_buf();
        check_file(&path)?;
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default())
            .map_err(|e| LocalError::Load {
                path: path.clone(),
                reason: format!("{e} (llama.cpp rejected the file; see its log lines)"),
            })?;
        let trained = model.n_ctx_train().max(1);
        let n_ctx = opts.n_ctx.unwrap_or(trained.min(DEFAULT_MAX_N_CTX)).max(8);
        let arch = model
            .meta_val_str("general.architecture")
            .unwrap_or_default();
        let pooling = model
            .meta_val_str(&format!("{arch}.pooling_type"))
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .map(LlamaPoolingType::from)
            .filter(|p| !matches!(p, LlamaPoolingType::Unspecified | LlamaPoolingType::None))
            // A model that does not say (a causal LM) is mean-pooled.
            .unwrap_or(LlamaPoolingType::Mean);
        if opts.embeddings && model.n_embd() <= 0 {
            return Err(LocalError::NoEmbeddings {
                path,
                reason: "the model has no embedding width".into(),
            });
        }
        let template = model.chat_template(None).ok();
        Ok(Self {
            model,
            path,
            opts,
            n_ctx,
            pooling,
            template,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The context size in tokens.
    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// Width of an embedding vector.
    pub fn embedding_dim(&self) -> usize {
        usize::try_from(self.model.n_embd()).unwrap_or(0)
    }

    /// Whether the GGUF carries a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// Token ids of `text`, with the model's BOS/CLS/SEP as its vocabulary
    /// asks; special-token text is not parsed.
    pub fn tokenize(&self, text: &str) -> Vec<i32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), true, false)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    /// The text of `tokens` (special tokens render as nothing).
    pub fn detokenize(&self, tokens: &[i32]) -> String {
        if tokens.is_empty() {
            return String::new();
        }
        let tokens: Vec<LlamaToken> = tokens.iter().map(|t| LlamaToken(*t)).collect();
        let bytes = self.model.vocab().detokenize(&tokens, false, false);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// One L2-normalised embedding per text (pooled as the GGUF says; mean
    /// when it does not say). A text longer than the context is truncated.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LocalError> {
        self.embed_until(texts, &|| None)
    }

    /// Greedy generation; `on_token` sees the text as it is produced and can
    /// stop it; `cancel` stops it with [`LocalError::Cancelled`].
    pub fn generate(
        &self,
        req: &GenerateRequest,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
        cancel: &AtomicBool,
    ) -> Result<Generated, LocalError> {
        self.generate_until(req, on_token, &|| {
            cancel
                .load(Ordering::Relaxed)
                .then_some(LocalError::Cancelled)
        })
    }

    fn context(&self, embeddings: bool, n_batch: u32) -> Result<LlamaContext<'_>, LocalError> {
        let threads = i32::try_from(self.opts.n_threads.max(1)).unwrap_or(1);
        let mut params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_seq_max(1)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        if embeddings {
            params = params.with_embeddings(true).with_pooling_type(self.pooling);
        }
        self.model
            .new_context(backend()?, params)
            .map_err(|e| LocalError::Inference(format!("cannot create a context: {e}")))
    }

    pub(crate) fn embed_until(
        &self,
        texts: &[&str],
        interrupted: &dyn Fn() -> Option<LocalError>,
    ) -> Result<Vec<Vec<f32>>, LocalError> {
        if !self.opts.embeddings {
            return Err(LocalError::NoEmbeddings {
                path: self.path.clone(),
                reason: "loaded for generation; load it with `embeddings: true`".into(),
            });
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // A non-causal model must see a whole sequence in one ubatch.
        let mut ctx = self.context(true, self.n_ctx)?;
        let mut batch = LlamaBatch::new(self.n_ctx as usize, 1);
        let vocab = self.model.vocab();
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            if let Some(e) = interrupted() {
                return Err(e);
            }
            let mut tokens = vocab.tokenize(text.as_bytes(), true, false);
            tokens.truncate(self.n_ctx as usize);
            if tokens.is_empty() {
                out.push(vec![0.0; self.embedding_dim()]);
                continue;
            }
            ctx.clear_kv_cache();
            batch.clear();
            batch
                .add_sequence(&tokens, 0, true)
                .map_err(|e| LocalError::Inference(e.to_string()))?;
            ctx.decode(&mut batch)
                .map_err(|e| LocalError::Inference(format!("decode: {e}")))?;
            let mut v = ctx
                .embeddings_seq_ith(0)
                .map_err(|_| LocalError::NoEmbeddings {
                    path: self.path.clone(),
                    reason: "llama.cpp returned no pooled embedding".into(),
                })?
                .to_vec();
            l2_normalize(&mut v);
            out.push(v);
        }
        Ok(out)
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> (String, bool) {
        if let Some(t) = &self.template {
            let msgs: Result<Vec<LlamaChatMessage>, _> = messages
                .iter()
                .map(|m| LlamaChatMessage::new(m.role.replace('\0', ""), m.text.replace('\0', "")))
                .collect();
            match msgs.map(|msgs| self.model.apply_chat_template(t, &msgs, true)) {
                Ok(Ok(s)) => return (s, false),
                Ok(Err(e)) => tracing::debug!("chat template not usable ({e}); plain template"),
                Err(e) => tracing::debug!("chat message rejected ({e}); plain template"),
            }
        }
        (plain_template(messages), true)
    }

    pub(crate) fn generate_until(
        &self,
        req: &GenerateRequest,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
        interrupted: &dyn Fn() -> Option<LocalError>,
    ) -> Result<Generated, LocalError> {
        if self.opts.embeddings {
            return Err(LocalError::Inference(format!(
                "{} was loaded for embeddings, not generation",
                self.path.display()
            )));
        }
        let (prompt, fallback) = match &req.prompt {
            Some(p) => (p.clone(), false),
            None => self.render_chat(&req.messages),
        };
        let mut stops = req.stop.clone();
        if fallback {
            stops.push(FALLBACK_STOP.into());
        }
        // Before any decoding: a bad grammar fails at once.
        let mut grammar = req
            .grammar
            .as_deref()
            .map(|g| grammar_sampler(&self.model, g))
            .transpose()?;
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        if tokens.len() >= self.n_ctx as usize {
            return Err(LocalError::ContextOverflow {
                prompt_tokens: tokens.len(),
                n_ctx: self.n_ctx,
            });
        }
        let n_batch = PROMPT_BATCH.min(self.n_ctx);
        let mut ctx = self.context(false, n_batch)?;
        let mut batch = LlamaBatch::new(n_batch as usize, 1);
        let decode_err =
            |e: llama_cpp_2::DecodeError| LocalError::Inference(format!("decode: {e}"));
        let add_err =
            |e: llama_cpp_2::llama_batch::BatchAddError| LocalError::Inference(e.to_string());
        let mut pos: i32 = 0;
        let last = tokens.len().saturating_sub(1);
        for (c, chunk) in tokens.chunks(n_batch as usize).enumerate() {
            if let Some(e) = interrupted() {
                return Err(e);
            }
            batch.clear();
            for (i, t) in chunk.iter().enumerate() {
                let is_last = c * n_batch as usize + i == last;
                batch.add(*t, pos, &[0], is_last).map_err(add_err)?;
                pos += 1;
            }
            ctx.decode(&mut batch).map_err(decode_err)?;
        }
        let mut logits_at = batch.n_tokens() - 1;
        let mut sampler = LlamaSampler::greedy();
        let mut text = TextAssembler::new(&stops);
        let mut output_tokens = 0usize;
        let reason = loop {
            if let Some(e) = interrupted() {
                return Err(e);
            }
            if output_tokens >= req.max_tokens as usize {
                break StopReason::MaxTokens;
            }
            if pos >= self.n_ctx as i32 {
                break StopReason::ContextFull;
            }
            // `sample` also accepts the token into the sampler.
            let token = match grammar.as_mut() {
                Some(g) => constrained_greedy(&ctx, logits_at, g)?,
                None => sampler.sample(&ctx, logits_at),
            };
            if vocab.is_eog(token) {
                break StopReason::EndOfGeneration;
            }
            output_tokens += 1;
            let piece = vocab.token_to_piece(token, false, None);
            match text.push(&piece) {
                Step::Continue(s) => {
                    if !s.is_empty() && on_token(&s).is_break() {
                        break StopReason::Callback;
                    }
                }
                Step::Stop(s) => {
                    if !s.is_empty() {
                        let _ = on_token(&s);
                    }
                    break StopReason::StopString;
                }
            }
            batch.clear();
            batch.add(token, pos, &[0], true).map_err(add_err)?;
            pos += 1;
            ctx.decode(&mut batch).map_err(decode_err)?;
            logits_at = 0;
        };
        let tail = text.finish();
        if !tail.is_empty()
            && matches!(
                reason,
                StopReason::MaxTokens | StopReason::EndOfGeneration | StopReason::ContextFull
            )
        {
            let _ = on_token(&tail);
        }
        Ok(Generated {
            text: text.text().to_string(),
            prompt_tokens: tokens.len(),
            output_tokens,
            stop_reason: reason,
        })
    }
}

/// The grammar sampler for `gbnf` (start rule `root`). llama.cpp reports a
/// syntax error only in its log, so the error says where to look.
fn grammar_sampler(model: &LlamaModel, gbnf: &str) -> Result<LlamaSampler, LocalError> {
    let has_root = gbnf.lines().any(|l| {
        l.trim_start()
            .strip_prefix("root")
            .is_some_and(|rest| rest.trim_start().starts_with("::="))
    });
    if !has_root {
        return Err(LocalError::Grammar(
            "it has no `root ::= ...` rule (the start rule)".into(),
        ));
    }
    LlamaSampler::grammar(model, gbnf, "root").map_err(|e| {
        LocalError::Grammar(match e {
            llama_cpp_2::GrammarError::NullGrammar => {
                "llama.cpp could not parse it as GBNF (a syntax error or an undefined rule; its log line says where)".into()
            }
            other => other.to_string(),
        })
    })
}

/// The greedy token the grammar allows, accepted into the grammar. The
/// best token is tried alone first (llama.cpp's common sampler does the
/// same) and the whole vocabulary filtered only when the grammar rejects
/// it: filtering 50k candidates per token would double the cost. Only an
/// allowed token is ever accepted (llama.cpp aborts on any other).
fn constrained_greedy(
    ctx: &LlamaContext<'_>,
    idx: i32,
    grammar: &mut LlamaSampler,
) -> Result<LlamaToken, LocalError> {
    let logits = ctx.get_logits_ith(idx);
    let best = argmax(logits.iter().copied().enumerate());
    let Some((best, logit)) = best else {
        return Err(LocalError::Inference("the model produced no logits".into()));
    };
    let token = |i: usize| LlamaToken(i32::try_from(i).unwrap_or(i32::MAX));
    let mut one =
        LlamaTokenDataArray::new(vec![LlamaTokenData::new(token(best), logit, 0.0)], false);
    one.apply_sampler(grammar);
    let chosen = if one.data.first().is_some_and(|d| d.logit().is_finite()) {
        token(best)
    } else {
        let mut all = LlamaTokenDataArray::new(
            logits
                .iter()
                .enumerate()
                .map(|(i, l)| LlamaTokenData::new(token(i), *l, 0.0))
                .collect(),
            false,
        );
        all.apply_sampler(grammar);
        let allowed = all
            .data
            .iter()
            .filter(|d| d.logit().is_finite())
            .map(|d| (d.id(), d.logit()));
        match argmax(allowed) {
            Some((t, _)) => t,
            None => {
                return Err(LocalError::Grammar(
                    "no token of the model's vocabulary can continue it".into(),
                ))
            }
        }
    };
    grammar.accept(chosen);
    Ok(chosen)
}

/// The first item with the highest score (greedy's tie-break).
fn argmax<T>(items: impl Iterator<Item = (T, f32)>) -> Option<(T, f32)> {
    let mut best: Option<(T, f32)> = None;
    for (t, l) in items {
        if best.as_ref().is_none_or(|(_, b)| l > *b) {
            best = Some((t, l));
        }
    }
    best
}

/// For a model without a chat template.
fn plain_template(messages: &[ChatMessage]) -> String {
    let mut s = String::new();
    for m in messages {
        let role = match m.role.as_str() {
            "system" | "developer" => "System",
            "assistant" => "Assistant",
            _ => "User",
        };
        s.push_str(role);
        s.push_str(": ");
        s.push_str(m.text.trim());
        s.push('\n');
    }
    s.push_str("Assistant:");
    s
}
