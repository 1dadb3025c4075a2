"""Inference backends of a PoUW worker: llama.cpp in-process (deterministic, can score) and any
OpenAI-compatible HTTP server (not deterministic, cannot score).

Owns nothing but the re-exports; see `base` for the interface every backend implements. Importing
this package does not load llama.cpp: `LlamaCppBackend` does that when it is constructed.
"""

from pouw.backends.base import (
    BackendError,
    BackendInfo,
    BackendUnavailableError,
    ContextOverflowError,
    GenerationResult,
    InferenceBackend,
    ModelLoadError,
    NotSupportedError,
    StreamPiece,
    Usage,
    model_sha256,
)
from pouw.backends.llamacpp import LlamaCppBackend
from pouw.backends.openai_http import OpenAIHttpBackend

__all__ = [
    "BackendError",
    "BackendInfo",
    "BackendUnavailableError",
    "ContextOverflowError",
    "GenerationResult",
    "InferenceBackend",
    "LlamaCppBackend",
    "ModelLoadError",
    "NotSupportedError",
    "OpenAIHttpBackend",
    "StreamPiece",
    "Usage",
    "model_sha256",
]
