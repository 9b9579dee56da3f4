"""Write the tiny random Llama of ``aiaas.llm.tiny`` as a GGUF file (float32 tensors), for the llamacpp engine's
tests: same weights as the Hugging Face directory, so greedy tokens can be compared with the torch forward.

Layout as llama.cpp's ``convert_hf_to_gguf.py`` writes a Llama: tensor names ``token_embd``, ``blk.N.attn_q``
... and Q/K rows permuted from Hugging Face's rotate-half order to llama.cpp's interleaved RoPE order. The
vocabulary is the byte-level BPE of ``tiny`` (``tokenizer.ggml.model = gpt2``); the engine tokenizes with the
HF tokenizer next to it, llama.cpp only needs the vocabulary to load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(hf_dir: Path, out: Path) -> Path:
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((hf_dir / "config.json").read_text())
    tok = json.loads((hf_dir / "tokenizer.json").read_text())
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("aiaas-tiny-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(cfg["hidden_size"] // heads)
    w.add_rope_freq_base(float(cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    vocab = cfg["vocab_size"]
    by_id = {i: t for t, i in tok["model"]["vocab"].items()}
    special = {a["id"]: a["content"] for a in tok.get("added_tokens", [])}
    tokens = [special.get(i) or by_id.get(i) or f"[PAD{i}]" for i in range(vocab)]
    types = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(vocab)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(int(cfg["eos_token_id"]))
    w.add_add_bos_token(False)
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    tensors = load_file(str(hf_dir / "model.safetensors"))
    for key, value in sorted(tensors.items()):
        arr = np.ascontiguousarray(value.astype(np.float32))
        if key == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif key == "model.norm.weight":
            name = "output_norm.weight"
        elif key == "lm_head.weight":
            name = "output.weight"
        else:
            parts = key.split(".")  # model.layers.N.<module>.weight
            module = ".".join(parts[3:-1])
            name = f"blk.{parts[2]}.{names[module]}.weight"
            if module == "self_attn.q_proj":
                arr = _permute(arr, heads)
            elif module == "self_attn.k_proj":
                arr = _permute(arr, kv_heads)
        w.add_tensor(name, np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
