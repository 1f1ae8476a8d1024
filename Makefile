# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Contributors: `make lint`, `make typecheck`, `make docs`, `make wheel-smoke` (pinned tools, the dev extra).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DEV    := $(VENV)/.dev-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test install install-dev bench clean lint typecheck docs docs-serve wheel-smoke

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[test,zoo]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

install-dev: $(DEV)

$(DEV): $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[test,zoo,dev]"
	rm -f $(VENV)/.dev-*
	touch $(DEV)

demo: $(STAMP)
	$(VENV)/bin/initlab compare --out runs/demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[test,zoo,bench]"
	$(PY) bench/engine.py
	$(PY) bench/diagnose.py
	$(PY) bench/vs_anyinit.py

lint: $(DEV)
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/ruff format --check src tests bench tools

typecheck: $(DEV)
	$(VENV)/bin/mypy

docs: $(DEV)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: $(DEV)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

wheel-smoke: $(DEV)
	.ci/wheel-smoke $(PY)

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache site dist build
