"""Fixtures for functional tests: each test gets fresh aipgd nodes in its own tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from framework import TestNode


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., TestNode]]:
    nodes: list[TestNode] = []

    def factory(name: str = "node0", **kwargs: object) -> TestNode:
        node = TestNode(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        node.cleanup()


@pytest.fixture
def node(make_node: Callable[..., TestNode]) -> TestNode:
    return make_node()
