# The README's two commands: `make demo` and `make test`. Setup is shared and idempotent.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.cadenza-installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test test-fast lint bench clean

# Reinstall only when the project's dependency list changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch from this machine's disk first; a bare `torch` would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,dags]'
	$(PY) -c "from cadenza.ffmpeg import ensure_ffmpeg; print('ffmpeg:', ensure_ffmpeg())"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/cadenza demo

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy cadenza

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
