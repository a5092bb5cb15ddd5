# moot's two commands: `make test` and `make demo`. Everything else here is what they call.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo install services image lint types pytest bench clean

test: install services image lint types pytest

demo: install
	$(PY) examples/runtime_hello.py

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall whenever the project metadata or the pins change (editable, strict mode so mypy sees it).
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/ensure-services.sh

# Build the Docker sandbox image from Debian packages unless an image with the same recipe hash exists.
image: install services
	$(PY) -m moot.executors.image --if-missing

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: install
	$(VENV)/bin/mypy

pytest: install services
	$(VENV)/bin/pytest

bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
