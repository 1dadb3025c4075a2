"""Real-model fixtures of the PoUW tests: tiny random-weight llama GGUF files generated once per test
session (per xdist worker) into a temporary directory, and llama.cpp backends on them. Nothing is
downloaded; the weights are noise, the inference is real."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pouw.backends.llamacpp import LlamaCppBackend
from pouw.tinymodel import TinyModelFile

TINY_SEED = 1  # "the" model: workers and validators agree on it
OTHER_SEED = 2  # a different model of the same shape: a cheating worker's substitute


def _tiny(factory: pytest.TempPathFactory, name: str, seed: int) -> TinyModelFile:
    return TinyModelFile.write(factory.mktemp("models") / f"{name}.gguf", seed=seed)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFile:
    """The 2-layer, 64-wide llama of seed 1 (about 0.5 MB, f32)."""
    return _tiny(tmp_path_factory, "tiny-s1", TINY_SEED)


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFile:
    return _tiny(tmp_path_factory, "tiny-s2", OTHER_SEED)


@pytest.fixture(scope="session")
def tiny_backend(tiny_model: TinyModelFile) -> Iterator[LlamaCppBackend]:
    """llama.cpp on the tiny model: 2 slots, 1 thread, 256-token context (probed in a child first,
    as in production)."""
    backend = LlamaCppBackend(tiny_model.path, n_threads=1, slots=2, model_name="tiny-llama")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def other_backend(other_tiny_model: TinyModelFile) -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(other_tiny_model.path, n_threads=1, model_name="tiny-llama", probe=False)
    yield backend
    backend.close()
