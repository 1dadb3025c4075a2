"""The tiny model generator: deterministic files, a loadable llama with a byte-level vocabulary and
a chat template, and logits peaky enough for margin-based verification."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf
import numpy as np

from pouw.backends.llamacpp import LlamaCppBackend
from pouw.jobspec import SamplingParams
from pouw.tinymodel import (
    BOS_ID,
    EOS_ID,
    TINY_CHAT_TEMPLATE,
    TinyModelFile,
    model_sha256,
    tiny_vocab,
    write_tiny_llama,
)


def test_same_arguments_write_byte_identical_files(tmp_path: Path, tiny_model: TinyModelFile) -> None:
    again = tmp_path / "again.gguf"
    digest = write_tiny_llama(again, seed=1)
    assert digest == tiny_model.sha256
    assert again.read_bytes() == tiny_model.path.read_bytes()


def test_different_seeds_are_different_models(tiny_model: TinyModelFile,
                                              other_tiny_model: TinyModelFile) -> None:
    assert tiny_model.sha256 != other_tiny_model.sha256
    assert tiny_model.path.stat().st_size == other_tiny_model.path.stat().st_size


def test_model_sha256_is_the_file_sha256(tiny_model: TinyModelFile) -> None:
    assert model_sha256(tiny_model.path) == hashlib.sha256(tiny_model.path.read_bytes()).digest()
    assert len(tiny_model.sha256) == 32


def test_file_is_a_llama_gguf_with_byte_vocabulary_and_chat_template(tiny_model: TinyModelFile) -> None:
    reader = gguf.GGUFReader(str(tiny_model.path))

    def scalar(key: str) -> object:
        field = reader.get_field(key)
        assert field is not None, key
        return field.contents()

    assert scalar("general.architecture") == "llama"
    assert scalar("llama.block_count") == 2
    assert scalar("llama.embedding_length") == 64
    assert scalar("tokenizer.ggml.model") == "llama"
    assert scalar("tokenizer.chat_template") == TINY_CHAT_TEMPLATE
    tokens, _scores, _types = tiny_vocab()
    assert scalar("tokenizer.ggml.tokens") == tokens
    assert tokens[BOS_ID] == "<s>" and tokens[EOS_ID] == "</s>"
    assert [f"<0x{b:02X}>" for b in range(256)] == tokens[3:259]
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output.weight", "blk.1.ffn_down.weight"} <= names


def test_options_change_shape_and_precision(tmp_path: Path) -> None:
    path = tmp_path / "wide.gguf"
    write_tiny_llama(path, seed=3, n_layers=1, n_embd=32, n_head=2, n_ff=64, n_ctx=128, f16=True)
    reader = gguf.GGUFReader(str(path))
    q = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight")
    assert q.tensor_type == gguf.GGMLQuantizationType.F16
    assert [int(x) for x in q.shape] == [32, 32]
    backend = LlamaCppBackend(path, probe=False)
    try:
        assert backend.info().context_length == 128
        assert backend.info().embedding_dims == 32
        result = backend.generate(backend.prompt_tokens("hi"), SamplingParams(max_tokens=4))
        assert len(result.tokens) == 4
    finally:
        backend.close()


def test_greedy_logits_are_not_near_ties(tiny_backend: LlamaCppBackend) -> None:
    """logit_scale 8: the top-1/top-2 gap along greedy outputs has a median well above 1 logit and
    falls under the default greedy margin (0.1) at only a few percent of positions."""
    gaps: list[float] = []
    for i in range(6):
        prompt = tiny_backend.prompt_tokens(f"sample text number {i}")
        result = tiny_backend.generate(prompt, SamplingParams(max_tokens=40))
        logits = np.sort(tiny_backend.score(prompt, result.tokens), axis=1)
        gaps.extend((logits[:, -1] - logits[:, -2]).tolist())
    assert np.median(gaps) > 1.0
    assert np.mean(np.array(gaps) < 0.1) < 0.1
