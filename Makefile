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
	$(PY) -m pip install -q -e '.[dev,dags,onnx,dask]'
	$(PY) -c "from cadenza.common.ffmpeg import ensure_ffmpeg; print('ffmpeg:', ensure_ffmpeg())"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/cadenza demo

# Debian's chromium for the report's headless-browser test; installed only when missing and
# apt-get is usable as root, otherwise the test skips and says why.
.PHONY: chromium
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
		echo "chromium could not be installed: the report's browser test will skip"; \
	else echo "no chromium and no root apt-get: the report's browser test will skip"; fi

# Two workers (this project's CI machines have two cores); a test module's tests share one worker.
PYTEST_PARALLEL := -n 2 --dist loadfile

test: setup chromium
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q $(PYTEST_PARALLEL)

test-fast: setup
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy cadenza

bench: setup
	# the full rehearsal (all 5,521 rows) takes hours and wants the machine alone: here, a 100-row slice
	for b in benchmarks/bench_*.py; do \
		case $$b in *bench_musiccaps_full.py) args="--rows 100";; *) args="";; esac; \
		$(PY) $$b $$args || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
