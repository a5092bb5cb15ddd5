# moot's two commands: `make test` and `make demo`. Everything else here is what they call.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test demo install services image lint types pytest bench clean local-runtime

test: install services image lint types pytest

# The demo: llama-cpp-python (compiled once per machine, then from ~/.cache/moot/wheels), the
# verified embedded model, then `moot demo`. With MOOT_BASE_URL or OPENAI_API_KEY set, a server
# model is used instead and nothing is compiled or downloaded.
demo: install
	@$(VENV)/bin/moot model install-runtime --if-needed
	@if [ -z "$${MOOT_BASE_URL}$${OPENAI_API_KEY}" ]; then $(VENV)/bin/moot model fetch; fi
	$(VENV)/bin/moot demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall when the pins, the metadata or the set of package files change: the strict editable
# install (which mypy can see) links each file, so a new module needs a new install.
install: $(PY)
	@{ cat pyproject.toml constraints.txt; find observability runtime models agents groupchat executors journal testing cli bench server -name '*.py' -o -name py.typed -o -name '*.html' | sort; } > $(VENV)/.manifest.new
	@if ! cmp -s $(VENV)/.manifest.new $(VENV)/.manifest; then \
	  echo "installing moot and its pinned dependencies into $(VENV)"; \
	  $(PY) -m pip install -q -c constraints.txt -e '.[dev]' --config-settings editable_mode=strict && \
	  mv $(VENV)/.manifest.new $(VENV)/.manifest; \
	fi

services:
	bash scripts/ensure-services.sh

# Build the Docker sandbox image from Debian packages unless an image with the same recipe hash exists.
image: install services
	$(VENV)/bin/moot image build

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: install
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests

# When this machine has compiled llama-cpp-python before (`moot model install-runtime` keeps the
# wheel), install it so the embedded model's own test runs too; nothing is compiled here.
local-runtime: install
	@wheel=$$(ls $${MOOT_WHEEL_CACHE:-$$HOME/.cache/moot/wheels}/llama_cpp_python-*.whl 2>/dev/null | head -n 1); \
	if [ -n "$$wheel" ] && ! $(PY) -c "import llama_cpp" 2>/dev/null; then \
	  echo "installing the cached llama-cpp-python wheel: $$wheel"; \
	  $(PY) -m pip install -q -c constraints.txt "$$wheel"; \
	fi

# The whole suite with branch coverage; the floor keeps untested code from creeping in.
pytest: install services local-runtime
	$(VENV)/bin/pytest --cov --cov-report=term:skip-covered --cov-fail-under=80

bench: install services image
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
