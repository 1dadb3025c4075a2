"""Shared fixtures of the chain tests: regtest params, one KawPoW context cache per module, the
block builder, and private datadir copies of a module's `base` chain (which each module defines)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_builder import ChainBuilder, open_chain, submit_all

import kawpow
from aipgd.chain.chainstate import ChainState
from aipgd.core.block import Block
from aipgd.core.params import ChainParams, get_params


@pytest.fixture(scope="module")
def params() -> ChainParams:
    return get_params("regtest")


@pytest.fixture(scope="module")
def contexts() -> kawpow.ContextCache:
    return kawpow.ContextCache(prefetch_window=0)


@pytest.fixture(scope="module")
def builder(params: ChainParams, contexts: kawpow.ContextCache) -> ChainBuilder:
    return ChainBuilder(params, contexts)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory, base: list[Block], params: ChainParams,
             contexts: kawpow.ContextCache) -> Path:
    """A datadir holding the module's `base` chain, built once per module."""
    netdir = tmp_path_factory.mktemp("base") / "regtest"
    with open_chain(netdir, params, contexts) as cs:
        submit_all(cs, base)
    return netdir


@pytest.fixture
def netdir(tmp_path: Path, base_dir: Path) -> Path:
    """A private copy of the base datadir for one test."""
    target = tmp_path / "regtest"
    shutil.copytree(base_dir, target)
    return target


@pytest.fixture
def chain(netdir: Path, params: ChainParams, contexts: kawpow.ContextCache) -> Iterator[ChainState]:
    with open_chain(netdir, params, contexts) as cs:
        yield cs
