"""Numba kernels are compiled once: a fresh process loads them from the on-disk cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (
    "import kawpow\n"
    "mix, final = kawpow.hash(0, bytes(32), 0)\n"
    "assert final.hex().startswith('e601a725'), final.hex()\n"
)


def _run(cache_dir: Path) -> str:
    env = dict(os.environ, NUMBA_DEBUG_CACHE="1", NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=True)
    return done.stdout + done.stderr


def test_second_process_does_not_recompile(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert "data saved" in first  # the first process compiled and stored the kernels
    second = _run(tmp_path)
    assert "data loaded" in second
    assert "data saved" not in second, "a fresh process recompiled a cached kernel"
