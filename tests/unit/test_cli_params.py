"""aipg-cli's parameter snapshot equals the server's declarations."""

from __future__ import annotations

from pathlib import Path

from rpc.methods import render_cli_params

SNAPSHOT = Path(__file__).resolve().parents[2] / "rpc" / "cli_params.py"


def test_cli_params_snapshot_is_current() -> None:
    assert SNAPSHOT.read_text() == render_cli_params(), (
        "rpc/cli_params.py is stale: regenerate it as its docstring says")
