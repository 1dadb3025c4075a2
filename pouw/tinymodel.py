"""Tiny random-weight llama models, written as GGUF files, so that tests run real llama.cpp offline.

Owns `write_tiny_llama`: a deterministic generator of a small llama-architecture model (random
weights from numpy's RandomState, a byte-level SentencePiece vocabulary and a chat template). Two
seeds give two different "models" with different hashes. It must never download anything and never
be used to serve real jobs: the weights are noise, only the computation is real.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pouw.backends.base import model_sha256

__all__ = ["TINY_CHAT_TEMPLATE", "TinyModelFile", "model_sha256", "tiny_vocab", "write_tiny_llama"]

# SentencePiece token types as llama.cpp reads them (gguf.TokenType).
_NORMAL, _UNKNOWN, _CONTROL, _BYTE = 1, 2, 3, 6

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
_SPACE = "\u2581"  # SentencePiece's visible space; llama.cpp maps it back to " " when detokenizing

# A few merges so that common English text does not always fall back to bytes; scores rank merges
# (SentencePiece merges the best-scoring pair first).
_MERGES = ("th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ou", "es", "or", "is", "it",
           _SPACE + "t", _SPACE + "a", _SPACE + "s", _SPACE + "w", _SPACE + "o", _SPACE + "i",
           _SPACE + "the", _SPACE + "and", _SPACE + "of", _SPACE + "to")

# A minimal chat format: each turn is "<|role|>\n" + content + "</s>\n" (EOS closes a turn, so the
# model's EOS is also the natural end of an assistant answer).
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True, slots=True)
class TinyModelFile:
    """A generated model file and its sha256 (what a JobSpec's model reference names)."""

    path: Path
    sha256: bytes

    @classmethod
    def write(cls, path: str | os.PathLike[str], *, seed: int, **options: Any) -> TinyModelFile:
        return cls(Path(path), write_tiny_llama(path, seed=seed, **options))


def tiny_vocab() -> tuple[list[str], list[float], list[int]]:
    """The vocabulary: <unk>, <s>, </s>, the 256 byte tokens, the visible space, printable ASCII and
    the merges above (379 tokens). Any UTF-8 text tokenizes (byte fallback) and detokenizes back
    unchanged, except U+2581 itself, which SentencePiece reads as a space."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [_UNKNOWN, _CONTROL, _CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [_BYTE] * 256
    pieces = [_SPACE] + [chr(c) for c in range(0x21, 0x7F)]
    tokens += pieces + list(_MERGES)
    types += [_NORMAL] * (len(pieces) + len(_MERGES))
    # SentencePiece merges the adjacent pair whose merged piece scores highest; only the merges'
    # scores decide anything (earlier in _MERGES = merged first).
    scores = [0.0] * (3 + 256) + [-float(i) for i in range(len(pieces))]
    scores += [-1.0 - 0.1 * i for i in range(len(_MERGES))]
    return tokens, scores, types


def write_tiny_llama(path: str | os.PathLike[str], *, seed: int, n_layers: int = 2, n_embd: int = 64,
                     n_head: int = 4, n_head_kv: int | None = None, n_ff: int = 128, n_ctx: int = 256,
                     f16: bool = False, logit_scale: float = 8.0, eos_boost: float = 1.75) -> bytes:
    """Write a random-weight llama model to `path` and return the file's sha256 (32 bytes).

    Same arguments give a byte-identical file. `logit_scale` is the standard deviation of the
    output logits (the output matrix is drawn with std logit_scale / sqrt(n_embd) against an
    RMS-normalised hidden state). At 8.0 the top-1/top-2 logit gap along greedy answers has a
    median of about 2.0 and a 5th percentile of about 0.14 (below the greedy margin of 0.1 at ~3%
    of positions), and the top token's probability at temperature 1 has a median of about 0.8: not
    near-ties, yet sampling still spreads. `eos_boost` scales EOS's row of the output matrix, so
    that answers end by EOS at a realistic rate (at 1.75 about a sixth of 8-16 token answers).
    """
    gguf = importlib.import_module("gguf")  # untyped enough that a module object is as good

    if n_embd % n_head:
        raise ValueError("n_embd must be a multiple of n_head")
    n_head_kv = n_head if n_head_kv is None else n_head_kv
    if n_head % n_head_kv:
        raise ValueError("n_head must be a multiple of n_head_kv")
    head_dim = n_embd // n_head
    tokens, scores, types = tiny_vocab()
    n_vocab = len(tokens)
    rng = np.random.RandomState(seed)
    wtype = np.float16 if f16 else np.float32

    def matrix(rows: int, cols: int, std: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * std).astype(wtype)

    def norm(n: int) -> np.ndarray:
        # Norm gains near 1 (not exactly 1) so that they carry weight-dependent information too.
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(f"aipg-tiny-llama-s{seed}")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(1 if f16 else 0)  # LLAMA_FTYPE_MOSTLY_F16 / ALL_F32
    writer.add_vocab_size(n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(UNK_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)  # so detokenize(tokenize(s)) == s
    writer.add_chat_template(TINY_CHAT_TEMPLATE)

    # Embeddings ~ N(0, 1) per component; projections ~ N(0, 1/fan_in) so every block adds a
    # contribution of the same size as the residual stream and the output depends on the context.
    writer.add_tensor("token_embd.weight", matrix(n_vocab, n_embd, 1.0))
    kv_dim = head_dim * n_head_kv
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", norm(n_embd))
        writer.add_tensor(f"blk.{i}.attn_q.weight", matrix(n_embd, n_embd, n_embd ** -0.5))
        writer.add_tensor(f"blk.{i}.attn_k.weight", matrix(kv_dim, n_embd, n_embd ** -0.5))
        writer.add_tensor(f"blk.{i}.attn_v.weight", matrix(kv_dim, n_embd, n_embd ** -0.5))
        writer.add_tensor(f"blk.{i}.attn_output.weight", matrix(n_embd, n_embd, n_embd ** -0.5))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", norm(n_embd))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", matrix(n_ff, n_embd, n_embd ** -0.5))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", matrix(n_ff, n_embd, n_embd ** -0.5))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", matrix(n_embd, n_ff, n_ff ** -0.5))
    writer.add_tensor("output_norm.weight", norm(n_embd))
    output = matrix(n_vocab, n_embd, logit_scale * n_embd ** -0.5)
    output[EOS_ID] *= eos_boost  # a larger EOS row: answers end by EOS now and then
    writer.add_tensor("output.weight", output)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, target)
    return model_sha256(target)
