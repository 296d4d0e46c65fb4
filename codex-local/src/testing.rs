//! For tests and benches: a minimal GGUF v3 writer and a tiny random-weight
//! llama model (2 layers, 64 wide, a byte vocabulary) that llama.cpp loads
//! in milliseconds. Deterministic: the same seed writes the same file.
//!
//! GGUF v3: little-endian header (magic, version, tensor and KV counts), the
//! KV pairs, the tensor infos (name, dims innermost first, type, offset),
//! then the tensor data, each aligned to `general.alignment` (32).

use std::io::Write;
use std::path::Path;

const ALIGNMENT: usize = 32;
const GGML_TYPE_F32: u32 = 0;

/// A GGUF metadata value.
#[derive(Debug, Clone)]
pub enum Value {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    F32Array(Vec<f32>),
    I32Array(Vec<i32>),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::StrArray(_) | Value::F32Array(_) | Value::I32Array(_) => 9,
        }
    }
}

/// An f32 tensor; `dims` innermost first (GGUF order: a `rows × cols`
/// matrix is `[cols, rows]`).
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub data: Vec<f32>,
}

/// Collects metadata and tensors, then writes the file.
#[derive(Debug, Default)]
pub struct GgufWriter {
    kv: Vec<(String, Value)>,
    tensors: Vec<Tensor>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % ALIGNMENT != 0 {
        out.push(0);
    }
}

impl GgufWriter {
    pub fn kv(&mut self, key: &str, value: Value) -> &mut Self {
        self.kv.push((key.to_string(), value));
        self
    }

    pub fn tensor(&mut self, name: &str, dims: &[u64], data: Vec<f32>) -> &mut Self {
        self.tensors.push(Tensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            data,
        });
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (key, value) in &self.kv {
            put_str(&mut out, key);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            match value {
                Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
                Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
                Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
                Value::Bool(v) => out.push(u8::from(*v)),
                Value::Str(s) => put_str(&mut out, s),
                Value::StrArray(items) => {
                    out.extend_from_slice(&8u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for s in items {
                        put_str(&mut out, s);
                    }
                }
                Value::F32Array(items) => {
                    out.extend_from_slice(&6u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for v in items {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
                Value::I32Array(items) => {
                    out.extend_from_slice(&5u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for v in items {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        let mut offset = 0usize;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&GGML_TYPE_F32.to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += (t.data.len() * 4).div_ceil(ALIGNMENT) * ALIGNMENT;
        }
        pad(&mut out);
        for t in &self.tensors {
            for v in &t.data {
                out.extend_from_slice(&v.to_le_bytes());
            }
            pad(&mut out);
        }
        out
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(&self.to_bytes())?;
        f.sync_all()
    }
}

/// A seeded normal generator (xorshift64* + Box-Muller): no `rand` needed.
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn sample(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    fn weights(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.sample() * 0.02).collect()
    }
}

/// Shape of the tiny llama.
pub const TINY_N_EMBD: u64 = 64;
pub const TINY_N_FF: u64 = 128;
pub const TINY_N_LAYER: u64 = 2;
pub const TINY_N_CTX: u32 = 256;
/// `<unk>`, `<s>`, `</s>`, the 256 byte tokens and `▁` (SentencePiece's
/// space, so that text round-trips).
pub const TINY_N_VOCAB: u64 = 260;

/// The tiny random llama as a writer (add keys before writing if a test
/// needs them, e.g. a chat template).
pub fn tiny_llama(seed: u64) -> GgufWriter {
    let mut rng = Normal(seed.max(1));
    let mut w = GgufWriter::default();
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    tokens.push("\u{2581}".into());
    // llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte.
    let mut types = vec![2, 3, 3];
    types.extend(std::iter::repeat_n(6, 256));
    types.push(1);
    w.kv("general.architecture", Value::Str("llama".into()))
        .kv("general.name", Value::Str("tiny-random-llama".into()))
        .kv("general.alignment", Value::U32(ALIGNMENT as u32))
        .kv("llama.context_length", Value::U32(TINY_N_CTX))
        .kv("llama.embedding_length", Value::U32(TINY_N_EMBD as u32))
        .kv("llama.feed_forward_length", Value::U32(TINY_N_FF as u32))
        .kv("llama.block_count", Value::U32(TINY_N_LAYER as u32))
        .kv("llama.attention.head_count", Value::U32(4))
        .kv("llama.attention.head_count_kv", Value::U32(4))
        .kv("llama.rope.dimension_count", Value::U32(16))
        .kv("llama.rope.freq_base", Value::F32(10_000.0))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("llama.vocab_size", Value::U32(TINY_N_VOCAB as u32))
        .kv("tokenizer.ggml.model", Value::Str("llama".into()))
        .kv("tokenizer.ggml.tokens", Value::StrArray(tokens))
        .kv(
            "tokenizer.ggml.scores",
            Value::F32Array(vec![0.0; TINY_N_VOCAB as usize]),
        )
        .kv("tokenizer.ggml.token_type", Value::I32Array(types))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(2))
        .kv("tokenizer.ggml.unknown_token_id", Value::U32(0))
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(true));
    let (e, f, v) = (TINY_N_EMBD, TINY_N_FF, TINY_N_VOCAB);
    let ones = |n: u64| vec![1.0f32; n as usize];
    w.tensor("token_embd.weight", &[e, v], rng.weights((e * v) as usize));
    for l in 0..TINY_N_LAYER {
        let name = |t: &str| format!("blk.{l}.{t}.weight");
        w.tensor(&name("attn_norm"), &[e], ones(e));
        for t in ["attn_q", "attn_k", "attn_v", "attn_output"] {
            w.tensor(&name(t), &[e, e], rng.weights((e * e) as usize));
        }
        w.tensor(&name("ffn_norm"), &[e], ones(e));
        w.tensor(&name("ffn_gate"), &[e, f], rng.weights((e * f) as usize));
        w.tensor(&name("ffn_up"), &[e, f], rng.weights((e * f) as usize));
        w.tensor(&name("ffn_down"), &[f, e], rng.weights((f * e) as usize));
    }
    w.tensor("output_norm.weight", &[e], ones(e));
    w.tensor("output.weight", &[e, v], rng.weights((e * v) as usize));
    w
}

/// Writes the tiny random llama to `path`.
pub fn write_tiny_llama(path: &Path, seed: u64) -> std::io::Result<()> {
    tiny_llama(seed).write(path)
}

/// Where the real models are: `$CODEX_MODELS_DIR`, else `<repo>/models`.
pub fn models_dir() -> std::path::PathBuf {
    match std::env::var_os("CODEX_MODELS_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => dir.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
    }
}

/// A real model file for a test: `Some(path)` when present; when absent,
/// prints why the test is skipped and returns `None`, or panics when
/// `CODEX_REQUIRE_MODELS=1`.
pub fn real_model(file: &str) -> Option<std::path::PathBuf> {
    let path = models_dir().join(file);
    if path.is_file() {
        return Some(path);
    }
    let msg = format!(
        "{} is missing: run `scripts/fetch-models` (or set CODEX_MODELS_DIR)",
        path.display()
    );
    if std::env::var("CODEX_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
        panic!("CODEX_REQUIRE_MODELS=1 but {msg}");
    }
    eprintln!("skipped: {msg}");
    None
}

pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const MINILM_FILE: &str = "all-MiniLM-L6-v2.f16.gguf";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_alignment() {
        let mut w = GgufWriter::default();
        w.kv("a", Value::U32(7))
            .tensor("t", &[3], vec![1.0, 2.0, 3.0]);
        let b = w.to_bytes();
        assert_eq!(&b[..4], b"GGUF");
        assert_eq!(u32::from_le_bytes([b[4], b[5], b[6], b[7]]), 3);
        // 12 bytes of tensor data, padded to the alignment.
        assert_eq!(b.len() % ALIGNMENT, 0);
        assert_eq!(
            &b[b.len() - 32..b.len() - 20],
            &[0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64]
        );
    }

    #[test]
    fn tiny_model_is_deterministic() {
        assert_eq!(tiny_llama(7).to_bytes(), tiny_llama(7).to_bytes());
        assert_ne!(tiny_llama(7).to_bytes(), tiny_llama(8).to_bytes());
    }
}
