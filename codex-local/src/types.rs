//! Plain data shared by the model and the lane.

/// One inference thread: on a small shared machine a second thread competes
/// with the agent and cargo, and throughput halves (LOCAL-MODEL.md).
pub const DEFAULT_N_THREADS: u32 = 1;
/// Context size when neither the options nor a smaller trained size say.
#[cfg_attr(not(feature = "local-llm"), allow(dead_code))]
pub const DEFAULT_MAX_N_CTX: u32 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Inference threads (default 1).
    pub n_threads: u32,
    /// Context size in tokens; `None`: the model's trained size, at most 4096.
    pub n_ctx: Option<u32>,
    /// Load for embeddings (pooling as the GGUF says, else mean).
    pub embeddings: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            n_threads: DEFAULT_N_THREADS,
            n_ctx: None,
            embeddings: false,
        }
    }
}

/// One chat message: `role` is `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub text: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            text: text.into(),
        }
    }
}

/// A greedy generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateRequest {
    /// Rendered with the model's chat template (a plain one when it has
    /// none). Ignored when `prompt` is set.
    pub messages: Vec<ChatMessage>,
    /// A raw prompt, tokenized as is (special tokens parsed).
    pub prompt: Option<String>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Generation stops before the first of these strings (not included).
    pub stop: Vec<String>,
    /// A GBNF grammar (llama.cpp's format, start rule `root`) every
    /// generated token must follow; generation ends when it is complete.
    pub grammar: Option<String>,
}

impl GenerateRequest {
    pub fn chat(messages: Vec<ChatMessage>, max_tokens: u32) -> Self {
        Self {
            messages,
            prompt: None,
            max_tokens,
            stop: Vec::new(),
            grammar: None,
        }
    }

    /// Constrains the output to `grammar` (GBNF, start rule `root`).
    pub fn with_grammar(mut self, grammar: impl Into<String>) -> Self {
        self.grammar = Some(grammar.into());
        self
    }

    pub fn raw(prompt: impl Into<String>, max_tokens: u32) -> Self {
        Self {
            messages: Vec::new(),
            prompt: Some(prompt.into()),
            max_tokens,
            stop: Vec::new(),
            grammar: None,
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The token callback asked to stop.
    Callback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub text: String,
    pub prompt_tokens: usize,
    pub output_tokens: usize,
    pub stop_reason: StopReason,
}
