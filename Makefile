# The two commands (README.md): `make run` and `make test`. Both work on a fresh
# Debian/Ubuntu clone with only Python 3.11, gcc and make installed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATADIR ?= $(CURDIR)/.aipg
# pytest-xdist worker count; CI has 2 cores.
JOBS   ?= auto

.PHONY: run test lint typecheck bench sysdeps clean

# System packages that no wheel provides: the CPU OpenCL runtime (pocl) so that
# pyopencl finds a platform through /etc/OpenCL/vendors on machines without GPU drivers.
# (The pocl-binary-distribution wheel is not used: it fails kernel builds on AMD EPYC.)
sysdeps:
	@if ! ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    echo "installing pocl-opencl-icd (CPU OpenCL runtime)"; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq pocl-opencl-icd ocl-icd-libopencl1 >/dev/null; \
	  else echo "warning: no OpenCL ICD and no apt-get; OpenCL tests will be skipped" >&2; fi; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install -q -e '.[test,gpu]'
	touch $(STAMP)

run: sysdeps $(STAMP)
	mkdir -p $(DATADIR)
	$(VENV)/bin/aipgd -regtest -datadir=$(DATADIR) -printtoconsole

test: sysdeps $(STAMP)
	$(PY) -m ruff check aipgd kawpow rpc pouw tests contrib
	$(PY) -m mypy
	$(PY) -m pytest -n $(JOBS) --dist loadfile tests

lint: $(STAMP)
	$(PY) -m ruff check aipgd kawpow rpc pouw tests contrib

typecheck: $(STAMP)
	$(PY) -m mypy

bench: sysdeps $(STAMP)
	$(PY) contrib/bench/kawpow_bench.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
